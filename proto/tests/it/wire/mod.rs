//! The wire protocol as `docs/PROTOCOL.md` describes it: framing and its
//! limits, what decodes and what does not (and how a failure is classified),
//! the shape of every message on the wire and how it stays compatible with
//! newer peers, the backup plan and pinning, restores and maintenance,
//! archive transfers (pieces as `bin`) and key rotation, `on_behalf_of`,
//! roles and the audit operations (and the role table), the exact bytes of
//! the documented examples (and that the document lists every operation,
//! message, reply and record field), the Rust client (and its downloads and
//! uploads) against a scripted server, and properties over arbitrary input.
//! If one of these tests has to change, the document has to change with it.
//! This module holds the small helpers every subject shares; the sample
//! messages live in `fixtures`.

mod access;
mod client;
mod client_transfer;
mod compat;
mod decode;
mod errors;
mod examples;
mod fixtures;
mod framing;
mod messages;
mod plan;
mod props;
mod restore;
mod restore_records;
mod transfer;

use std::time::Duration;

use berkut_proto::wire::frame::{decode_message, encode, DecodeError};
use berkut_proto::wire::ErrorCode;
use rmpv::Value;

/// Long enough for any honest operation in these tests; a read that waits
/// for bytes that never come runs into it instead of hanging the suite.
const PATIENCE: Duration = Duration::from_secs(5);

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// A MessagePack map with string keys, in the order given.
fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn pack(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

fn unpack(bytes: &[u8]) -> Value {
    rmpv::decode::read_value(&mut &bytes[..]).unwrap()
}

/// The value under `key` in a map.
fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value
        .as_map()
        .unwrap_or_else(|| panic!("not a map: {value}"))
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {key:?} in {value}"))
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect()
}

/// A hand-made request frame body.
fn request(id: Value, op: Value) -> Vec<u8> {
    pack(&map(vec![
        ("type", "request".into()),
        ("id", id),
        ("op", op),
    ]))
}

fn op(kind: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut pairs = vec![("type", Value::from(kind))];
    pairs.extend(fields);
    map(pairs)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn round_trip<T>(msg: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode(msg).unwrap();
    assert_eq!(&decode_message::<T>(&bytes).unwrap(), msg);
    // Decoding the same bytes through a generic MessagePack reader and
    // re-encoding them (as a client in another language would) changes
    // nothing either.
    let again = pack(&unpack(&bytes));
    assert_eq!(&decode_message::<T>(&again).unwrap(), msg);
}

fn invalid_id<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> Option<u64> {
    match decode_message::<T>(body) {
        Err(DecodeError::Invalid { id, .. }) => id,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn is_malformed<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> bool {
    matches!(decode_message::<T>(body), Err(DecodeError::Malformed(_)))
}

/// The table of `docs/PROTOCOL.md`, in its order.
const DOCUMENTED_CODES: [(ErrorCode, &str); 10] = [
    (ErrorCode::Invalid, "invalid"),
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::Conflict, "conflict"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::Maintenance, "maintenance"),
    (ErrorCode::TooLarge, "too_large"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::VersionMismatch, "version_mismatch"),
    (ErrorCode::Internal, "internal"),
    (ErrorCode::Unknown, "unknown"),
];
