//! Archive transfers and key rotation on the wire: `backup_download`,
//! `backup_import` and `store_rewrap`, the pieces of both directions, the
//! `continue` of an import and the `downloaded` and `rewrapped` replies
//! carry the documented tags and fields; the bytes of a piece travel as
//! MessagePack `bin` of the right width, never as an array; `end` defaults
//! to `false`; bad pieces and requests are `invalid` with their id; none of
//! the three operations is served during maintenance; and the document
//! shows the frames, fields and errors these tests see.

use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::{ops, ClientMessage, Operation, ServerMessage};
use rmpv::Value;

use super::examples::{protocol_doc, section, table_names};
use super::fixtures::{
    all_operations, backup_id, piece, transfer_operations, transfer_replies, upload_pieces,
    PIECE_SIZES,
};
use super::{field, frame, invalid_id, keys, map, op, pack, request, unhex, unpack};

#[test]
fn transfer_messages_have_the_documented_tags_and_fields() {
    for operation in transfer_operations() {
        let value = unpack(&encode(&operation).unwrap());
        let name = field(&value, "type").as_str().unwrap().to_owned();
        assert_eq!(operation.name(), name);
        let expected: &[&str] = match name.as_str() {
            "backup_download" => &["type", "id"],
            "backup_import" => &["type", "size"],
            "store_rewrap" | "store_rescan" => &["type"],
            other => panic!("unexpected operation {other}"),
        };
        assert_eq!(keys(&value), expected, "{name}");
        if name == "backup_download" {
            assert_eq!(field(&value, "id").as_str(), Some(backup_id().as_str()));
        }
    }
    for piece in upload_pieces() {
        let value = unpack(&encode(&piece).unwrap());
        assert_eq!(keys(&value), ["type", "id", "data", "end"]);
        assert_eq!(field(&value, "type").as_str(), Some("data"));
    }
    let download = ServerMessage::Data {
        id: 3,
        offset: 262_144,
        data: piece(5),
    };
    let value = unpack(&encode(&download).unwrap());
    assert_eq!(keys(&value), ["type", "id", "offset", "data"]);
    assert_eq!(field(&value, "offset").as_u64(), Some(262_144));
    let value = unpack(&encode(&ServerMessage::Continue { id: 9 }).unwrap());
    assert_eq!(keys(&value), ["type", "id"]);
    assert_eq!(field(&value, "type").as_str(), Some("continue"));

    for reply in transfer_replies() {
        let value = unpack(&encode(&reply).unwrap());
        match field(&value, "type").as_str().unwrap() {
            "backup" => {
                let record = field(&value, "backup");
                assert_eq!(field(record, "origin").as_str(), Some("imported"));
            }
            "downloaded" => {
                assert_eq!(keys(&value), ["type", "id", "size_bytes", "sha256"]);
                assert_eq!(field(&value, "sha256").as_str().map(str::len), Some(64));
            }
            "rewrapped" => {
                assert_eq!(
                    keys(&value),
                    ["type", "rewrapped", "unchanged", "busy", "failed"]
                );
                for list in ["rewrapped", "busy", "failed"] {
                    let ids = field(&value, list).as_array().unwrap();
                    assert!(ids.iter().all(|id| id.as_str().is_some()), "{list}");
                }
            }
            "rescanned" => {
                assert_eq!(
                    keys(&value),
                    [
                        "type",
                        "found",
                        "missing",
                        "added",
                        "unverified",
                        "store_alarm"
                    ]
                );
                for list in ["found", "missing", "added", "unverified"] {
                    let ids = field(&value, list).as_array().unwrap();
                    assert!(ids.iter().all(|id| id.as_str().is_some()), "{list}");
                }
            }
            other => panic!("unexpected reply {other}"),
        }
    }
}

/// The raw bytes of the value under `data` in an encoded message, found by
/// walking the map rather than by decoding the value.
fn raw_data(bytes: &[u8]) -> &[u8] {
    let entries = bytes[0]
        .checked_sub(0x80)
        .filter(|n| *n < 16)
        .expect("a fixmap");
    let mut rest = &bytes[1..];
    for _ in 0..entries {
        let key = rmpv::decode::read_value(&mut rest).unwrap();
        if key.as_str() == Some("data") {
            return rest;
        }
        rmpv::decode::read_value(&mut rest).unwrap();
    }
    panic!("no data field");
}

/// `bin 8`, `bin 16` or `bin 32` by length, with its big-endian length.
fn bin_header(len: usize) -> Vec<u8> {
    match len {
        0..=0xff => vec![0xc4, len as u8],
        0x100..=0xffff => [vec![0xc5], (len as u16).to_be_bytes().to_vec()].concat(),
        _ => [vec![0xc6], (len as u32).to_be_bytes().to_vec()].concat(),
    }
}

#[test]
fn data_bytes_travel_as_bin_never_as_an_array() {
    let mut sizes = PIECE_SIZES.to_vec();
    sizes.extend([256 * 1024, 1 << 20]);
    for len in sizes {
        let data = piece(len);
        let header = bin_header(len);
        let upload = ClientMessage::Data {
            id: 1,
            data: data.clone(),
            end: false,
        };
        let download = ServerMessage::Data {
            id: 1,
            offset: 0,
            data: data.clone(),
        };
        for bytes in [encode(&upload).unwrap(), encode(&download).unwrap()] {
            let raw = raw_data(&bytes);
            assert!(
                matches!(raw[0], 0xc4..=0xc6),
                "{len} bytes: marker {:#04x}",
                raw[0]
            );
            assert_eq!(raw[..header.len()], header[..], "{len} bytes");
            assert_eq!(raw[header.len()..][..len], data[..], "{len} bytes");
            assert_eq!(field(&unpack(&bytes), "data"), &Value::Binary(data.clone()));
        }
    }
}

/// A client `data` message made by hand.
fn hand_made_piece(fields: Vec<(&str, Value)>) -> Vec<u8> {
    let mut pairs = vec![("type", Value::from("data"))];
    pairs.extend(fields);
    pack(&map(pairs))
}

#[test]
fn end_defaults_to_false_and_a_piece_needs_its_id_and_bytes() {
    let bytes = Value::Binary(b"BSC".to_vec());
    let without_end = hand_made_piece(vec![("id", 4.into()), ("data", bytes.clone())]);
    assert_eq!(
        decode_message::<ClientMessage>(&without_end).unwrap(),
        ClientMessage::Data {
            id: 4,
            data: b"BSC".to_vec(),
            end: false
        }
    );
    let with_end = hand_made_piece(vec![
        ("end", true.into()),
        ("data", Value::Binary(vec![])),
        ("id", 4.into()),
    ]);
    assert_eq!(
        decode_message::<ClientMessage>(&with_end).unwrap(),
        ClientMessage::Data {
            id: 4,
            data: vec![],
            end: true
        }
    );
    for (what, fields, id) in [
        ("no data", vec![("id", 5.into())], Some(5)),
        ("no id", vec![("data", bytes.clone())], None),
        (
            "a nil end",
            vec![
                ("id", 6.into()),
                ("data", bytes.clone()),
                ("end", Value::Nil),
            ],
            Some(6),
        ),
        (
            "an end of 1",
            vec![("id", 7.into()), ("data", bytes.clone()), ("end", 1.into())],
            Some(7),
        ),
        (
            "nil data",
            vec![("id", 8.into()), ("data", Value::Nil)],
            Some(8),
        ),
    ] {
        let body = hand_made_piece(fields);
        assert_eq!(invalid_id::<ClientMessage>(&body), id, "{what}");
    }
}

#[test]
fn bad_transfer_requests_are_invalid_with_their_id() {
    let cases = [
        ("an import without a size", op("backup_import", vec![])),
        (
            "a negative size",
            op("backup_import", vec![("size", (-1).into())]),
        ),
        (
            "a size as a string",
            op("backup_import", vec![("size", "10".into())]),
        ),
        ("a download without an id", op("backup_download", vec![])),
        (
            "a download of an upper-case id",
            op(
                "backup_download",
                vec![("id", "20260102T030405Z-0A0B0C0D".into())],
            ),
        ),
        (
            "a download of a restore id",
            op(
                "backup_download",
                vec![("id", "r-20260102T040506Z-0a0b0c0d".into())],
            ),
        ),
    ];
    for (what, operation) in cases {
        let body = request(41.into(), operation);
        assert_eq!(invalid_id::<ClientMessage>(&body), Some(41), "{what}");
    }
    // Fields a newer client might add are ignored.
    let body = request(
        42.into(),
        op("store_rewrap", vec![("dry_run", true.into())]),
    );
    assert_eq!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            on_behalf_of: None,
            id: 42,
            op: Operation::StoreRewrap(ops::StoreRewrap {})
        }
    );
}

#[test]
fn no_transfer_is_served_in_maintenance() {
    let all = all_operations();
    for operation in transfer_operations() {
        assert!(all.contains(&operation), "the fixtures lack {operation:?}");
    }
    for name in ["backup_download", "backup_import", "store_rewrap"] {
        assert!(all.iter().any(|o| o.name() == name), "{name}");
    }
}

const CONTINUE_FRAME: &str = "
    00000013
    82
    a4 74797065 a8 636f6e74696e7565
    a2 6964 02";

const LAST_PIECE_FRAME: &str = "
    0000001e
    84
    a4 74797065 a4 64617461
    a2 6964 02
    a4 64617461 c4 03 425343
    a3 656e64 c3";

/// The fields of the table that follows `**`name`**` in `text`.
fn message_fields<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let start = text
        .find(&format!("**`{name}`**"))
        .unwrap_or_else(|| panic!("no **`{name}`**"));
    let rest = &text[start + 4..];
    let end = rest.find("**`").unwrap_or(rest.len());
    table_names(&rest[..end])
}

#[test]
fn the_document_shows_the_transfer_frames_fields_and_errors() {
    let doc = protocol_doc();
    let continue_ = ServerMessage::Continue { id: 2 };
    let last = ClientMessage::Data {
        id: 2,
        data: b"BSC".to_vec(),
        end: true,
    };
    for (what, body, documented) in [
        ("continue", encode(&continue_).unwrap(), CONTINUE_FRAME),
        ("last piece", encode(&last).unwrap(), LAST_PIECE_FRAME),
    ] {
        assert_eq!(frame(&body), unhex(documented), "{what}");
        let line = hex::encode(frame(&body));
        assert!(
            doc.lines().any(|l| l.trim() == line),
            "docs/PROTOCOL.md lacks the {what} frame as one line:\n{line}"
        );
    }
    assert_eq!(
        decode_message::<ClientMessage>(&unhex(LAST_PIECE_FRAME)[4..]).unwrap(),
        last
    );

    let client = section(&doc, "### 5.1 ");
    assert_eq!(
        message_fields(client, "data"),
        ["type", "id", "data", "end"]
    );
    let server = section(&doc, "### 5.2 ");
    assert_eq!(
        message_fields(server, "data"),
        ["type", "id", "offset", "data"]
    );
    assert_eq!(message_fields(server, "continue"), ["type", "id"]);
    for reply in transfer_replies().into_iter().skip(1) {
        let value = unpack(&encode(&reply).unwrap());
        let name = field(&value, "type").as_str().unwrap().to_owned();
        let row = server
            .lines()
            .find(|l| l.starts_with(&format!("| `\"{name}\"` |")))
            .unwrap_or_else(|| panic!("5.2 has no row for the reply {name}"));
        for key in keys(&value).into_iter().skip(1) {
            assert!(row.contains(&format!("`{key}`")), "{name} lacks {key}");
        }
    }

    for (heading, codes) in [
        (
            "### 6.22 `backup_download`",
            &["not_found", "invalid", "unavailable", "maintenance"][..],
        ),
        (
            "### 6.23 `backup_import`",
            &[
                "too_large",
                "invalid",
                "conflict",
                "unavailable",
                "maintenance",
            ][..],
        ),
        (
            // Per-archive failures are reported in `failed`, not as errors.
            "### 6.24 `store_rewrap`",
            &["maintenance"][..],
        ),
    ] {
        let text = section(&doc, heading);
        let names = table_names(text);
        for code in codes {
            assert!(names.contains(code), "{heading} has no row for {code}");
        }
    }
    let import = section(&doc, "### 6.23 `backup_import`");
    for words in [
        "BERKUT_BACKUP_UPLOAD_MAX_BYTES",
        "`continue`",
        "`end: true`",
    ] {
        assert!(import.contains(words), "6.23 does not mention {words}");
    }
    let rewrap = section(&doc, "### 6.24 `store_rewrap`");
    assert!(rewrap.contains("BERKUT_BACKUP_OLD_KEY_FILES"));
    section(&doc, "### 6.25 Transfers for applications");
}
