//! Restores and maintenance on the wire: the operations, streamed messages
//! and replies carry the documented tags and fields, omitted request fields
//! take their defaults, restore ids are validated wherever they are
//! decoded, and a bad restore request is `invalid` with its request id.
//! (Which operations are served during maintenance is the daemon's rule,
//! tested by its `handlers` tests against `SERVED_IN_MAINTENANCE`'s list in
//! PROTOCOL.md.)

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::wire::frame::{decode_message, encode, DecodeError};
use berkut_proto::wire::{ops, ClientMessage, Operation, Reply, ServerMessage};
use rmpv::Value;

use super::fixtures::{
    backup_id, evidence, maintenance_on, restore_id, restore_operations, running_restore,
};
use super::{field, invalid_id, keys, map, op, pack, request, unpack};

/// The operations `docs/PROTOCOL.md` says stay available in maintenance.
pub(super) const SERVED_IN_MAINTENANCE: [&str; 6] = [
    "status",
    "restore_status",
    "maintenance_status",
    "maintenance_watch",
    "maintenance_clear",
    "metrics",
];

#[test]
fn restore_and_maintenance_operations_have_the_documented_tags_and_fields() {
    let mut names = Vec::new();
    for operation in restore_operations() {
        let value = unpack(&encode(&operation).unwrap());
        let name = field(&value, "type").as_str().unwrap().to_owned();
        assert_eq!(operation.name(), name);
        let expected: &[&str] = match name.as_str() {
            "restore_start" => &["type", "backup_id", "dry_run", "with_globals", "wait"],
            "restore_status" => &["type", "restore_id", "wait"],
            "drill_run" => &["type", "backup_id", "wait"],
            "restore_evidence"
            | "restore_rollback"
            | "restore_cleanup"
            | "restore_evidence_export" => &["type", "restore_id"],
            "maintenance_status" | "maintenance_watch" | "maintenance_clear" => &["type"],
            other => panic!("unexpected operation {other}"),
        };
        assert_eq!(keys(&value), expected, "{name}");
        if expected.contains(&"restore_id") {
            let id = field(&value, "restore_id").as_str();
            assert_eq!(id, Some(restore_id().as_str()));
        }
        if expected.contains(&"backup_id") {
            let id = field(&value, "backup_id").as_str();
            assert_eq!(id, Some(backup_id().as_str()));
        }
        names.push(name);
    }
    for name in [
        "drill_run",
        "restore_start",
        "restore_status",
        "restore_evidence",
        "restore_evidence_export",
        "restore_rollback",
        "restore_cleanup",
        "maintenance_status",
        "maintenance_watch",
        "maintenance_clear",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
}

#[test]
fn streamed_messages_and_replies_have_the_documented_tags_and_fields() {
    let progress = ServerMessage::RestoreProgress {
        id: 5,
        restore: running_restore(),
    };
    let event = ServerMessage::Event {
        id: 6,
        maintenance: maintenance_on(),
    };
    assert_eq!(
        (progress.request_id(), event.request_id()),
        (Some(5), Some(6))
    );
    let value = unpack(&encode(&progress).unwrap());
    assert_eq!(keys(&value), ["type", "id", "restore"]);
    assert_eq!(field(&value, "type").as_str(), Some("restore_progress"));
    let value = unpack(&encode(&event).unwrap());
    assert_eq!(keys(&value), ["type", "id", "maintenance"]);
    assert_eq!(field(&value, "type").as_str(), Some("event"));

    for (reply, name) in [
        (
            Reply::Restore {
                restore: running_restore(),
            },
            "restore",
        ),
        (
            Reply::Evidence {
                evidence: Box::new(evidence()),
            },
            "evidence",
        ),
        (
            Reply::Maintenance {
                maintenance: maintenance_on(),
            },
            "maintenance",
        ),
    ] {
        let value = unpack(&encode(&reply).unwrap());
        assert_eq!(keys(&value), ["type", name]);
        assert_eq!(field(&value, "type").as_str(), Some(name));
    }
}

#[test]
fn omitted_restore_fields_take_the_documented_defaults() {
    let cases = [
        (
            op(
                "restore_start",
                vec![
                    ("backup_id", backup_id().as_str().into()),
                    ("dry_run", true.into()),
                ],
            ),
            Operation::RestoreStart(ops::RestoreStart {
                backup_id: backup_id(),
                dry_run: true,
                with_globals: false,
                wait: false,
            }),
        ),
        (
            op(
                "restore_status",
                vec![("restore_id", restore_id().as_str().into())],
            ),
            Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: restore_id(),
                wait: false,
            }),
        ),
        (
            op("maintenance_status", vec![]),
            Operation::MaintenanceStatus(ops::MaintenanceStatus {}),
        ),
        (
            op("maintenance_watch", vec![]),
            Operation::MaintenanceWatch(ops::MaintenanceWatch {}),
        ),
        (
            op("maintenance_clear", vec![]),
            Operation::MaintenanceClear(ops::MaintenanceClear {}),
        ),
    ];
    for (bare, expected) in cases {
        assert_eq!(
            decode_message::<ClientMessage>(&request(3.into(), bare)).unwrap(),
            ClientMessage::Request {
                on_behalf_of: None,
                id: 3,
                op: expected
            }
        );
    }
}

/// A real restore replaces the live database: it must be asked for, never
/// implied by a missing field.
#[test]
fn a_restore_without_dry_run_is_invalid() {
    let bare = op(
        "restore_start",
        vec![("backup_id", backup_id().as_str().into())],
    );
    match decode_message::<ClientMessage>(&request(4.into(), bare)) {
        Err(DecodeError::Invalid { id, message }) => {
            assert_eq!(id, Some(4));
            assert!(message.contains("dry_run"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restore_ids_are_validated_wherever_they_are_decoded() {
    let good = "r-20260102T040506Z-0a0b0c0d";
    let id: RestoreId = good.parse().unwrap();
    assert_eq!((id.as_str(), id.suffix()), (good, "0a0b0c0d"));
    assert_eq!(id.to_string(), good);
    assert_eq!(encode(&id).unwrap(), pack(&good.into()));
    assert_eq!(
        decode_message::<RestoreId>(&pack(&good.into())).unwrap(),
        id
    );
    let generated = RestoreId::generate(time::macros::datetime!(2026-01-02 06:05:06 +02:00));
    assert!(generated.as_str().starts_with("r-20260102T040506Z-"));
    assert_eq!(generated.as_str().parse::<RestoreId>().unwrap(), generated);

    let hostile = [
        "",
        "r-",
        "..",
        "r-..",
        "r-../../etc/passwd",
        "/etc/passwd",
        "r-20260102T040506Z-0a0b0c0d/..",
        "r-20260102T040506Z-0a0b0c0d.json",
        "r-20260102T040506Z-0a0b0c0\0",
        "r-20260102T040506Z-0A0B0C0D",
        "r-20260102T040506Z-0a0b0c0",
        "r-20260102T040506Z-0a0b0c0d0",
        "r-20260102T040506Z_0a0b0c0d",
        "R-20260102T040506Z-0a0b0c0d",
        "r_20260102T040506Z-0a0b0c0d",
        "r-20260102t040506z-0a0b0c0d",
        "r-2026010xT040506Z-0a0b0c0d",
        " r-20260102T040506Z-0a0b0c0d",
        "r-20260102T040506Z-0a0b0c0d\n",
        "r-２0260102T040506Z-0a0b0c0d",
        "rr-20260102T040506Z-0a0b0c0d",
        // A backup id is not a restore id, and the other way round.
        "20260102T040506Z-0a0b0c0d",
        "x-20260102T040506Z-0a0b0c0d",
    ];
    for bad in hostile {
        assert!(bad.parse::<RestoreId>().is_err(), "{bad:?}");
        assert!(
            decode_message::<RestoreId>(&pack(&bad.into())).is_err(),
            "{bad:?}"
        );
        for kind in [
            "restore_status",
            "restore_evidence",
            "restore_rollback",
            "restore_cleanup",
        ] {
            let body = request(13.into(), op(kind, vec![("restore_id", bad.into())]));
            assert_eq!(
                invalid_id::<ClientMessage>(&body),
                Some(13),
                "{kind} {bad:?}"
            );
        }
        let mut record = unpack(&encode(&running_restore()).unwrap());
        if let Value::Map(pairs) = &mut record {
            pairs[0].1 = bad.into();
        }
        let reply = pack(&map(vec![
            ("type", "reply".into()),
            ("id", 1.into()),
            (
                "reply",
                map(vec![("type", "restore".into()), ("restore", record)]),
            ),
        ]));
        assert!(decode_message::<ServerMessage>(&reply).is_err(), "{bad:?}");
    }
    assert!(good.parse::<BackupId>().is_err());
    let body = request(
        14.into(),
        op("restore_start", vec![("backup_id", good.into())]),
    );
    assert_eq!(invalid_id::<ClientMessage>(&body), Some(14));
}

#[test]
fn a_bad_restore_request_is_invalid_with_its_id() {
    let start = |pairs: Vec<(&str, Value)>| {
        let mut all = vec![("backup_id", Value::from(backup_id().as_str()))];
        all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
        all.extend(pairs);
        op("restore_start", all)
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "restore_start without backup_id",
            op("restore_start", vec![]),
        ),
        ("backup_id is nil", start(vec![("backup_id", Value::Nil)])),
        (
            "backup_id hostile",
            start(vec![("backup_id", "../x".into())]),
        ),
        ("dry_run as an integer", start(vec![("dry_run", 1.into())])),
        (
            "dry_run as a string",
            start(vec![("dry_run", "true".into())]),
        ),
        (
            "with_globals nil",
            start(vec![("with_globals", Value::Nil)]),
        ),
        ("wait as an integer", start(vec![("wait", 0.into())])),
        ("restore_status without id", op("restore_status", vec![])),
        (
            "restore id as an integer",
            op("restore_status", vec![("restore_id", 20260102.into())]),
        ),
        (
            "restore_status wait nil",
            op(
                "restore_status",
                vec![
                    ("restore_id", restore_id().as_str().into()),
                    ("wait", Value::Nil),
                ],
            ),
        ),
        (
            "restore_evidence without id",
            op("restore_evidence", vec![]),
        ),
        (
            "restore_rollback without id",
            op("restore_rollback", vec![]),
        ),
        ("restore_cleanup without id", op("restore_cleanup", vec![])),
        (
            "backup id under the old name",
            op("restore_start", vec![("id", backup_id().as_str().into())]),
        ),
        (
            "an unknown maintenance operation",
            op("maintenance_on", vec![]),
        ),
    ];
    for (what, operation) in cases {
        assert_eq!(
            invalid_id::<ClientMessage>(&request(22.into(), operation)),
            Some(22),
            "{what}"
        );
    }
}
