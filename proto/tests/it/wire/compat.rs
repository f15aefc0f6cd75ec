//! Compatibility between versions: fields a sender leaves out take their
//! defaults, fields a newer peer adds are ignored at every level, and an
//! error code this version does not know reads as `unknown` instead of
//! failing the whole message.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    BackupRecord, ClientMessage, ErrorBody, ErrorCode, Failure, Operation, Reply, ServerMessage,
    StatusInfo,
};
use rmpv::Value;
use time::macros::datetime;

use super::fixtures::{backup_id, example_status, queued_record, succeeded_record};
use super::{map, op, pack, request, unpack};

#[test]
fn a_record_whose_optional_fields_are_left_out_still_decodes() {
    let minimal = map(vec![
        ("id", "20260102T030405Z-0a0b0c0d".into()),
        ("label", "nightly".into()),
        ("scope", "full".into()),
        ("include_files", false.into()),
        ("origin", "manual".into()),
        ("status", "queued".into()),
        ("created_at", "2026-01-02T03:04:05Z".into()),
    ]);
    let rec: BackupRecord = decode_message(&pack(&minimal)).unwrap();
    assert_eq!(rec, queued_record());
    // A daemon from before pinning sends no `pinned`: not pinned.
    assert!(!rec.pinned);
    // Other offsets and precisions are read as RFC 3339 too.
    let mut later = minimal.clone();
    if let Value::Map(pairs) = &mut later {
        pairs[6].1 = "2026-01-02T06:04:05.123+03:00".into();
    }
    let rec: BackupRecord = decode_message(&pack(&later)).unwrap();
    assert_eq!(rec.created_at, datetime!(2026-01-02 03:04:05.123 UTC));
    // A time that is not RFC 3339 is refused.
    if let Value::Map(pairs) = &mut later {
        pairs[6].1 = "2026-01-02 03:04:05".into();
    }
    assert!(decode_message::<BackupRecord>(&pack(&later)).is_err());
}

#[test]
fn a_status_from_before_the_rpo_watch_still_decodes() {
    let mut status = unpack(&encode(&example_status()).unwrap());
    if let Value::Map(pairs) = &mut status {
        let new = [
            "newest_success_at",
            "newest_success_age_seconds",
            "rpo_limit_seconds",
            "rpo_breached",
        ];
        pairs.retain(|(k, _)| !new.contains(&k.as_str().unwrap()));
        assert_eq!(pairs.len(), 10);
    }
    let old: StatusInfo = decode_message(&pack(&status)).unwrap();
    assert_eq!(old, example_status());
    assert_eq!((old.rpo_limit_seconds, old.rpo_breached), (None, false));
}

#[test]
fn omitted_request_fields_take_their_defaults() {
    let body = request(1.into(), op("backup_create", vec![]));
    assert_eq!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            on_behalf_of: None,
            id: 1,
            op: Operation::BackupCreate(ops::BackupCreate {
                label: String::new(),
                scope: Scope::Full,
                include_files: false,
                wait: false,
            })
        }
    );
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    let future = || -> (&'static str, Value) {
        (
            "added_in_v9",
            map(vec![("nested", Value::Array(vec![1.into(), "x".into()]))]),
        )
    };
    let hello = pack(&map(vec![
        ("type", "hello".into()),
        future(),
        ("protocol_version", 1.into()),
        ("client", "c".into()),
    ]));
    assert!(decode_message::<ClientMessage>(&hello).is_ok());
    let req = pack(&map(vec![
        ("type", "request".into()),
        ("id", 2.into()),
        future(),
        (
            "op",
            op(
                "backup_show",
                vec![("id", "20260102T030405Z-0a0b0c0d".into()), future()],
            ),
        ),
    ]));
    assert_eq!(
        decode_message::<ClientMessage>(&req).unwrap(),
        ClientMessage::Request {
            on_behalf_of: None,
            id: 2,
            op: Operation::BackupShow(ops::BackupShow { id: backup_id() })
        }
    );
    let welcome = pack(&map(vec![
        ("type", "welcome".into()),
        ("protocol_version", 1.into()),
        ("server", "berkutd 9".into()),
        future(),
    ]));
    assert!(decode_message::<ServerMessage>(&welcome).is_ok());

    // A reply whose record carries a field this version does not know.
    let mut record = unpack(&encode(&succeeded_record()).unwrap());
    if let Value::Map(pairs) = &mut record {
        pairs.push(("verified_at".into(), "2026-01-03T00:00:00Z".into()));
    }
    let reply = pack(&map(vec![
        ("type", "reply".into()),
        ("id", 3.into()),
        (
            "reply",
            map(vec![("type", "backup".into()), ("backup", record)]),
        ),
    ]));
    assert_eq!(
        decode_message::<ServerMessage>(&reply).unwrap(),
        ServerMessage::Reply {
            id: 3,
            reply: Reply::Backup {
                backup: succeeded_record()
            }
        }
    );
}

#[test]
fn an_unknown_error_code_reads_as_unknown() {
    for newer in ["rate_limited", "", "NOT_FOUND", "Invalid"] {
        assert_eq!(
            decode_message::<ErrorCode>(&pack(&newer.into())).unwrap(),
            ErrorCode::Unknown,
            "{newer:?}"
        );
    }
    let from_a_newer_daemon = pack(&map(vec![
        ("type", "error".into()),
        ("id", 4.into()),
        (
            "error",
            map(vec![
                ("code", "rate_limited".into()),
                ("message", "slow down".into()),
                ("retry_after_seconds", 5.into()),
            ]),
        ),
    ]));
    assert_eq!(
        decode_message::<ServerMessage>(&from_a_newer_daemon).unwrap(),
        ServerMessage::Error {
            id: Some(4),
            error: ErrorBody::new(ErrorCode::Unknown, "slow down"),
        }
    );
    let failure = pack(&map(vec![
        ("code", "quota_exceeded".into()),
        ("reason", "r".into()),
    ]));
    assert_eq!(
        decode_message::<Failure>(&failure).unwrap().code,
        ErrorCode::Unknown
    );
}
