//! Reading a `data` message (a piece of an upload or a download) without
//! copying its bytes. Messages are internally tagged enums, and serde
//! decodes those by first copying the whole map, bytes included, into a
//! value tree; for a megabyte piece that is two fresh buffers and two
//! copies per frame, which profiling showed to be most of the cost of an
//! import after SHA-256 and Poly1305. `data` messages are therefore read
//! here, straight from the frame, into a view that borrows the piece.
//!
//! Only a frame that is exactly a well-formed `data` message takes this
//! path; anything else (another type, a missing or ill-typed field, a frame
//! over the limits) gets `None`, and the caller decodes it the ordinary way,
//! which gives the usual errors in the protocol's words.
//!
//! The sending side likewise writes a piece from the buffer it is in:
//! [`FrameAround`] is the frame without its data, which goes between the
//! two halves.

use serde::{Deserialize, Serialize};

use super::frame::{encode, MAX_FRAME_LEN};
use super::scan::{scan, REPLY_LIMITS, REQUEST_LIMITS};

/// A `data` frame laid out around its piece: `head` (the length prefix
/// and the message up to the piece, the `bin` header included), then the
/// piece's bytes, then `tail` (the fields after it). Together they are
/// byte for byte what `encode` writes for the whole message.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameAround {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

/// The frame of `empty` (a `data` message whose data is empty) with `len`
/// bytes of data in its place. `None` if the encoding is not laid out as
/// expected (one `data` field holding an empty `bin`) or the frame would
/// pass `MAX_FRAME_LEN`; the caller then encodes the message whole.
pub fn frame_around(empty: &impl Serialize, len: usize) -> Option<FrameAround> {
    let body = encode(empty).ok()?;
    // The key `data` (a 4-byte str) and an empty bin, `c4 00`; the type's
    // value is also "data", but followed by another key, never by a bin.
    const FIELD: [u8; 7] = [0xa4, b'd', b'a', b't', b'a', 0xc4, 0x00];
    // The last match: an `id` before the field may hold the same bytes;
    // nothing after it (`end` and its bool, or nothing) can.
    let at = body.windows(FIELD.len()).rposition(|w| w == FIELD)?;
    let mut head = Vec::with_capacity(4 + at + 10);
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&body[..at + 5]);
    // The bin header in its shortest form, as `encode` writes it.
    rmp::encode::write_bin_len(&mut head, u32::try_from(len).ok()?).ok()?;
    let tail = body[at + FIELD.len()..].to_vec();
    let frame = head.len() - 4 + len + tail.len();
    if frame > MAX_FRAME_LEN {
        return None;
    }
    head[..4].copy_from_slice(&u32::try_from(frame).ok()?.to_be_bytes());
    Some(FrameAround { head, tail })
}

/// A `data` message, borrowing its bytes from the frame. Downloads carry
/// `offset`; uploads carry `end` instead.
#[derive(Debug, PartialEq, Eq)]
pub struct DataView<'a> {
    pub id: u64,
    pub offset: Option<u64>,
    pub data: &'a [u8],
    pub end: bool,
}

impl DataView<'_> {
    /// Where the piece's bytes lie in `body`, the frame they were read
    /// from, so that a caller holding the frame's buffer can keep the
    /// bytes without copying them.
    pub fn range_in(&self, body: &[u8]) -> std::ops::Range<usize> {
        let start = (self.data.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
        start..start + self.data.len()
    }
}

/// The fields of a `data` message, read only from a map with string keys,
/// each at most once (as the ordinary decode reads messages: serde's
/// derived structs would also take an array, or numbers for keys, which
/// the ordinary decode refuses or reads otherwise).
struct Wire<'a> {
    kind: &'a str,
    id: u64,
    offset: Option<u64>,
    data: &'a [u8],
    end: bool,
}

impl<'de> Deserialize<'de> for Wire<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(WireVisitor)
    }
}

struct WireVisitor;

impl<'de> serde::de::Visitor<'de> for WireVisitor {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a data message")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        use serde::de::Error;
        let (mut kind, mut id, mut offset, mut data, mut end) = (None, None, None, None, None);
        fn once<T, E: Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "type" => once(&mut kind, map.next_value::<&'de str>()?, "type")?,
                "id" => once(&mut id, map.next_value::<u64>()?, "id")?,
                "offset" => once(&mut offset, map.next_value::<u64>()?, "offset")?,
                "data" => {
                    let bytes = map.next_value::<&'de serde_bytes::Bytes>()?;
                    once(&mut data, &bytes[..], "data")?
                }
                "end" => once(&mut end, map.next_value::<bool>()?, "end")?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Wire {
            kind: kind.ok_or_else(|| A::Error::missing_field("type"))?,
            id: id.ok_or_else(|| A::Error::missing_field("id"))?,
            offset,
            data: data.ok_or_else(|| A::Error::missing_field("data"))?,
            end: end.unwrap_or(false),
        })
    }
}

/// A client's `data` message (an upload's piece), read as the daemon reads
/// requests (within the request limits).
pub fn upload_piece(body: &[u8]) -> Option<DataView<'_>> {
    view(body, true)
}

/// The daemon's `data` message (a download's piece).
pub fn download_piece(body: &[u8]) -> Option<DataView<'_>> {
    view(body, false)
}

fn view(body: &[u8], request: bool) -> Option<DataView<'_>> {
    let limits = if request {
        REQUEST_LIMITS
    } else {
        REPLY_LIMITS
    };
    scan(body, limits).ok()?;
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(super::frame::MAX_DEPTH);
    let wire = Wire::deserialize(&mut de).ok()?;
    // `scan` has made sure the frame is one value with nothing after it.
    if wire.kind != "data" {
        return None;
    }
    // An upload's piece has no offset, a download's always has one.
    if request == wire.offset.is_some() {
        return None;
    }
    Some(DataView {
        id: wire.id,
        offset: wire.offset,
        data: wire.data,
        end: wire.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{decode_message, decode_request, encode};
    use crate::wire::{ClientMessage, ServerMessage};

    #[test]
    fn an_upload_piece_is_read_as_the_ordinary_decode_reads_it() {
        for len in [0usize, 1, 255, 256, 65_535, 65_536, 1 << 20] {
            for end in [false, true] {
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let msg = ClientMessage::Data {
                    id: 7 + len as u64,
                    data: data.clone(),
                    end,
                };
                let body = encode(&msg).unwrap();
                let view = upload_piece(&body).expect("a data message");
                assert_eq!(view.id, 7 + len as u64);
                assert_eq!(view.data, &data[..]);
                assert_eq!(view.end, end);
                assert_eq!(&body[view.range_in(&body)], &data[..]);
                assert_eq!(decode_request(&body).unwrap(), msg);
                assert_eq!(download_piece(&body), None, "an upload is not a download");
            }
        }
    }

    #[test]
    fn a_download_piece_is_read_as_the_ordinary_decode_reads_it() {
        let data = vec![9u8; 300_000];
        let msg = ServerMessage::Data {
            id: 3,
            offset: 1 << 40,
            data: data.clone(),
        };
        let body = encode(&msg).unwrap();
        let view = download_piece(&body).expect("a data message");
        assert_eq!(
            (view.id, view.offset, view.data, view.end),
            (3, Some(1 << 40), &data[..], false)
        );
        assert_eq!(decode_message::<ServerMessage>(&body).unwrap(), msg);
        assert_eq!(upload_piece(&body), None, "a download is not an upload");
    }

    #[test]
    fn a_frame_laid_out_around_its_piece_is_the_message_encoded_whole() {
        for len in [0usize, 1, 255, 256, 65_535, 65_536, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let client = |data| ClientMessage::Data {
                id: u64::MAX - 1,
                data,
                end: true,
            };
            let server = |data| ServerMessage::Data {
                id: 3,
                offset: 1 << 40,
                data,
            };
            for (empty, whole) in [
                (encode(&client(vec![])), encode(&client(data.clone()))),
                (encode(&server(vec![])), encode(&server(data.clone()))),
            ] {
                let (empty, whole) = (empty.unwrap(), whole.unwrap());
                let value: rmpv::Value = rmp_serde::from_slice(&empty).unwrap();
                let around = frame_around(&value, len).expect("laid out as expected");
                let mut frame = around.head.clone();
                frame.extend_from_slice(&data);
                frame.extend_from_slice(&around.tail);
                assert_eq!(&frame[..4], &(whole.len() as u32).to_be_bytes());
                assert_eq!(&frame[4..], &whole[..], "{len} bytes");
            }
        }
        let too_long = frame_around(
            &ClientMessage::Data {
                id: 1,
                data: vec![],
                end: false,
            },
            MAX_FRAME_LEN,
        );
        assert_eq!(too_long, None);
        // An id whose bytes look like the field itself.
        let tricky = ClientMessage::Data {
            id: 0xa464_6174_61c4_0001,
            data: vec![],
            end: true,
        };
        let around = frame_around(&tricky, 3).unwrap();
        let mut frame = around.head;
        frame.extend_from_slice(&[1, 2, 3]);
        frame.extend_from_slice(&around.tail);
        let whole = encode(&ClientMessage::Data {
            id: 0xa464_6174_61c4_0001,
            data: vec![1, 2, 3],
            end: true,
        })
        .unwrap();
        assert_eq!(&frame[4..], &whole[..]);
        let no_data = ClientMessage::Hello {
            protocol_version: 1,
            client: "data".into(),
        };
        assert_eq!(frame_around(&no_data, 10), None);
    }

    #[test]
    fn anything_but_a_well_formed_data_message_is_left_to_the_ordinary_decode() {
        let hello = encode(&ClientMessage::Hello {
            protocol_version: 1,
            client: "x".into(),
        })
        .unwrap();
        let mut trailing = encode(&ClientMessage::Data {
            id: 1,
            data: vec![1, 2, 3],
            end: false,
        })
        .unwrap();
        trailing.push(0xc0);
        let string_data = rmp_serde::to_vec_named(&serde_json::json!({
            "type": "data", "id": 1, "data": "not bytes"
        }))
        .unwrap();
        let no_id = rmp_serde::to_vec_named(&serde_json::json!({
            "type": "data", "data": []
        }))
        .unwrap();
        // The ordinary decode takes a string for bytes too; what matters is
        // that both paths agree.
        let ordinary = decode_request(&string_data).ok();
        let fast = upload_piece(&string_data).map(|v| v.data.to_vec());
        assert_eq!(
            fast,
            ordinary.map(|m| match m {
                ClientMessage::Data { data, .. } => data,
                other => panic!("{other:?}"),
            })
        );
        // Shapes serde's derived structs would take but the ordinary decode
        // refuses (an array, numbers for keys) or reads otherwise (a number
        // key for `end`).
        let array =
            rmp_serde::to_vec(&("data", 5u64, (), serde_bytes::Bytes::new(b"x"), true)).unwrap();
        let mut numbered = vec![0x84];
        for (k, v) in [
            (0u8, rmpv::Value::from("data")),
            (1, rmpv::Value::from(5)),
            (3, rmpv::Value::Binary(vec![1])),
            (4, rmpv::Value::Boolean(true)),
        ] {
            numbered.push(k);
            rmpv::encode::write_value(&mut numbered, &v).unwrap();
        }
        let mut end_by_number = vec![0x84];
        for (k, v) in [
            (rmpv::Value::from("type"), rmpv::Value::from("data")),
            (rmpv::Value::from("id"), rmpv::Value::from(5)),
            (rmpv::Value::from("data"), rmpv::Value::Binary(vec![1])),
            (rmpv::Value::from(4), rmpv::Value::Boolean(true)),
        ] {
            rmpv::encode::write_value(&mut end_by_number, &k).unwrap();
            rmpv::encode::write_value(&mut end_by_number, &v).unwrap();
        }
        let ordinary = decode_request(&end_by_number).unwrap();
        assert!(matches!(ordinary, ClientMessage::Data { end: false, .. }));
        for body in [
            &hello[..],
            &array,
            &numbered,
            &end_by_number,
            &trailing,
            &no_id,
            &[],
            &[0xc1],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(upload_piece(body), None, "{body:02x?}");
            assert_eq!(download_piece(body), None, "{body:02x?}");
        }
    }
}
