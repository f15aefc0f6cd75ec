//! Decoding a frame body: what is Malformed (not exactly one MessagePack
//! value, or nested deeper than `MAX_DEPTH`) versus Invalid (MessagePack but
//! no message, with the request id recovered when there is one); integers of
//! any width and fields in any order; and backup ids validated wherever they
//! are decoded.

use berkut_proto::ids::BackupId;
use berkut_proto::wire::frame::{decode_message, encode, MAX_DEPTH};
use berkut_proto::wire::{ops, ClientMessage, Operation, ServerMessage};
use rmpv::Value;

use super::fixtures::backup_id;
use super::{invalid_id, is_malformed, map, op, pack, request};

#[test]
fn bodies_that_are_not_one_messagepack_value_are_malformed() {
    let good = request(1.into(), op("status", vec![]));
    let mut trailing = good.clone();
    trailing.push(0xc0);
    let mut two = good.clone();
    two.extend(&good);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("never used marker 0xc1", vec![0xc1]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("cut in a key", good[..5].to_vec()),
        ("trailing nil", trailing),
        ("two messages in one frame", two),
        ("str32 announcing 4 GiB", vec![0xdb, 0xff, 0xff, 0xff, 0xff]),
        (
            "bin32 announcing 4 GiB",
            vec![0xc6, 0xff, 0xff, 0xff, 0xff, 0],
        ),
        (
            "array32 announcing 4 G elements",
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        ),
        ("map16 with a missing value", vec![0xde, 0, 1, 0xa1, b'a']),
        ("JSON", br#"{"type":"hello"}"#.to_vec()),
    ];
    for (what, body) in cases {
        assert!(is_malformed::<ClientMessage>(&body), "{what}");
        assert!(is_malformed::<ServerMessage>(&body), "{what}");
    }
    assert!(decode_message::<ClientMessage>(&good).is_ok());
}

#[test]
fn nesting_is_limited_to_max_depth() {
    assert_eq!(MAX_DEPTH, 32);
    // Bare arrays around a nil: MAX_DEPTH - 1 levels are still MessagePack
    // (though no message), MAX_DEPTH levels are not accepted at all.
    let nested = |levels: usize| {
        let mut b = vec![0x91; levels];
        b.push(0xc0);
        b
    };
    assert!(!is_malformed::<ClientMessage>(&nested(MAX_DEPTH - 1)));
    assert!(is_malformed::<ClientMessage>(&nested(MAX_DEPTH)));
    assert!(is_malformed::<ClientMessage>(&nested(100_000)));

    // The same limit counts the message's own map: an ignored field may
    // nest MAX_DEPTH - 2 levels inside a hello.
    let hello_with = |levels: usize| {
        let mut b = pack(&map(vec![
            ("type", "hello".into()),
            ("protocol_version", 1.into()),
            ("client", "c".into()),
        ]));
        b[0] += 1; // one more entry in the fixmap
        b.extend(pack(&"x".into()));
        b.extend(nested(levels));
        b
    };
    assert!(decode_message::<ClientMessage>(&hello_with(MAX_DEPTH - 2)).is_ok());
    assert!(is_malformed::<ClientMessage>(&hello_with(MAX_DEPTH - 1)));
}

#[test]
fn valid_messagepack_that_is_no_message_is_invalid_with_the_id_when_there_is_one() {
    let with_id: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown operation",
            request(5.into(), op("frobnicate", vec![])),
        ),
        (
            "label of the wrong type",
            request(6.into(), op("backup_create", vec![("label", 42.into())])),
        ),
        (
            "nil for a field that has a default",
            request(6.into(), op("backup_create", vec![("label", Value::Nil)])),
        ),
        (
            "unknown scope",
            request(7.into(), op("backup_create", vec![("scope", "all".into())])),
        ),
        (
            "bool as an integer",
            request(7.into(), op("backup_create", vec![("wait", 1.into())])),
        ),
        ("missing id", request(8.into(), op("backup_show", vec![]))),
        (
            "a map with an id and no type",
            pack(&map(vec![("id", 3.into())])),
        ),
        (
            "hostile backup id",
            request(8.into(), op("backup_delete", vec![("id", "../x".into())])),
        ),
        (
            "missing op",
            pack(&map(vec![("type", "request".into()), ("id", 9.into())])),
        ),
        ("op is not a map", request(9.into(), "status".into())),
        (
            "unknown message type",
            pack(&map(vec![("type", "goodbye".into()), ("id", 10.into())])),
        ),
    ];
    for (what, body) in with_id {
        let id = invalid_id::<ClientMessage>(&body);
        assert!(id.is_some(), "{what}: no id recovered");
    }
    assert_eq!(
        invalid_id::<ClientMessage>(&request(5.into(), op("frobnicate", vec![]))),
        Some(5)
    );

    let without_id: Vec<(&str, Vec<u8>)> = vec![
        ("a bare integer", pack(&42.into())),
        ("nil", vec![0xc0]),
        ("an empty map", vec![0x80]),
        (
            "a request without id",
            pack(&map(vec![("type", "request".into())])),
        ),
        ("id as a string", request("3".into(), op("status", vec![]))),
        ("negative id", request((-1).into(), op("status", vec![]))),
        (
            "fractional id",
            request(Value::F64(1.0), op("status", vec![])),
        ),
        (
            "hello without client",
            pack(&map(vec![
                ("type", "hello".into()),
                ("protocol_version", 1.into()),
            ])),
        ),
        (
            "protocol_version beyond u32",
            pack(&map(vec![
                ("type", "hello".into()),
                ("protocol_version", (1u64 << 32).into()),
                ("client", "c".into()),
            ])),
        ),
    ];
    for (what, body) in without_id {
        assert_eq!(invalid_id::<ClientMessage>(&body), None, "{what}");
    }

    // Four million nils are one valid MessagePack value, and no message.
    let mut nils = vec![0xdd];
    nils.extend_from_slice(&4_000_000u32.to_be_bytes());
    nils.resize(5 + 4_000_000, 0xc0);
    assert_eq!(invalid_id::<ClientMessage>(&nils), None);
}

#[test]
fn integers_may_use_any_messagepack_width_and_fields_any_order() {
    // id 5 as int64 (0xd3), as uint64 (0xcf) and as a positive fixint.
    let status_op = pack(&op("status", vec![]));
    for id_bytes in [
        vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 5],
        vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 5],
        vec![0xcd, 0, 5],
        vec![0x05],
    ] {
        let mut body = vec![0x83];
        body.extend(pack(&"op".into()));
        body.extend(&status_op);
        body.extend(pack(&"id".into()));
        body.extend(&id_bytes);
        body.extend(pack(&"type".into()));
        body.extend(pack(&"request".into()));
        assert_eq!(
            decode_message::<ClientMessage>(&body).unwrap(),
            ClientMessage::Request {
                on_behalf_of: None,
                id: 5,
                op: Operation::Status(ops::Status {})
            },
            "{id_bytes:02x?}"
        );
    }
}

#[test]
fn backup_ids_are_validated_wherever_they_are_decoded() {
    let hostile = [
        "",
        ".",
        "..",
        "../../etc/passwd",
        "/etc/passwd",
        "20260102T030405Z-0a0b0c0d/..",
        "20260102T030405Z-0a0b0c0d.bscc",
        "20260102T030405Z-0a0b0c0\0",
        "20260102T030405Z-0A0B0C0D",
        "20260102T030405Z-0a0b0c0",
        "20260102T030405Z-0a0b0c0d0",
        "20260102T030405Z_0a0b0c0d",
        "20260102t030405z-0a0b0c0d",
        "2026010xT030405Z-0a0b0c0d",
        " 20260102T030405Z-0a0b0c0d",
        "20260102T030405Z-0a0b0c0d\n",
        "２0260102T030405Z-0a0b0c0d",
    ];
    for bad in hostile {
        assert!(bad.parse::<BackupId>().is_err(), "{bad:?}");
        assert!(
            decode_message::<BackupId>(&pack(&bad.into())).is_err(),
            "{bad:?}"
        );
        for kind in [
            "backup_show",
            "backup_delete",
            "job_attach",
            "backup_pin",
            "backup_unpin",
        ] {
            let body = request(11.into(), op(kind, vec![("id", bad.into())]));
            assert_eq!(
                invalid_id::<ClientMessage>(&body),
                Some(11),
                "{kind} {bad:?}"
            );
        }
        let reply = pack(&map(vec![
            ("type", "reply".into()),
            ("id", 1.into()),
            (
                "reply",
                map(vec![("type", "deleted".into()), ("id", bad.into())]),
            ),
        ]));
        assert!(decode_message::<ServerMessage>(&reply).is_err(), "{bad:?}");
    }
    // Not a string at all.
    let body = request(12.into(), op("backup_show", vec![("id", 20260102.into())]));
    assert_eq!(invalid_id::<ClientMessage>(&body), Some(12));
    let good = "20260102T030405Z-0a0b0c0d";
    assert_eq!(
        decode_message::<BackupId>(&pack(&good.into()))
            .unwrap()
            .as_str(),
        good
    );
    assert_eq!(encode(&backup_id()).unwrap(), pack(&good.into()));
}
