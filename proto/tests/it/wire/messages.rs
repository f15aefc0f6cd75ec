//! Messages on the wire: every variant round-trips, messages are maps tagged
//! by `type` with the documented names, records and statuses carry the
//! documented fields in order (nil for absent values), error bodies leave out
//! what they do not have, and enumerations and error codes encode as the
//! documented strings.

use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::{BackupStatus, ErrorBody, ErrorCode, JobKind, Phase, ServerMessage};
use rmpv::Value;

use super::fixtures::{
    all_client_messages, all_operations, all_replies, all_server_messages, busy_status,
    failed_record, progress, queued_record, succeeded_record,
};
use super::{field, keys, map, pack, round_trip, unpack, DOCUMENTED_CODES};

#[test]
fn every_message_round_trips() {
    for msg in all_client_messages() {
        round_trip(&msg);
    }
    for op in all_operations() {
        round_trip(&op);
    }
    for msg in all_server_messages() {
        round_trip(&msg);
    }
    for reply in all_replies() {
        round_trip(&reply);
    }
}

#[test]
fn messages_are_maps_tagged_by_type_with_the_documented_names() {
    let type_of = |bytes: Vec<u8>| {
        let value = unpack(&bytes);
        field(&value, "type").as_str().unwrap().to_owned()
    };
    let client: Vec<String> = all_client_messages()
        .iter()
        .map(|m| type_of(encode(m).unwrap()))
        .collect();
    for name in ["hello", "request", "data"] {
        assert!(client.iter().any(|t| t == name), "{name}");
    }
    assert!(client
        .iter()
        .all(|t| t == "hello" || t == "request" || t == "data"));
    let ops: Vec<String> = all_operations()
        .iter()
        .map(|o| {
            let t = type_of(encode(o).unwrap());
            assert_eq!(t, o.name());
            t
        })
        .collect();
    for name in [
        "status",
        "backup_create",
        "backup_list",
        "backup_show",
        "backup_delete",
        "job_attach",
        "backup_pin",
        "backup_unpin",
        "plan_show",
        "plan_set",
        "plan_enable",
        "plan_disable",
        "restore_start",
        "restore_status",
        "restore_evidence",
        "restore_rollback",
        "restore_cleanup",
        "maintenance_status",
        "maintenance_watch",
        "maintenance_clear",
        "backup_download",
        "backup_import",
        "store_rewrap",
        "store_rescan",
        "audit_tail",
        "audit_verify",
        "metrics",
        "notify_test",
    ] {
        assert!(ops.iter().any(|t| t == name), "{name}");
    }
    let server: Vec<String> = all_server_messages()
        .iter()
        .map(|m| type_of(encode(m).unwrap()))
        .collect();
    for name in [
        "welcome",
        "progress",
        "restore_progress",
        "event",
        "data",
        "continue",
        "reply",
        "error",
    ] {
        assert!(server.iter().any(|t| t == name), "{name}");
    }
    let replies: Vec<String> = all_replies()
        .iter()
        .map(|r| type_of(encode(r).unwrap()))
        .collect();
    for name in [
        "status",
        "backup",
        "backups",
        "deleted",
        "plan",
        "restore",
        "evidence",
        "maintenance",
        "downloaded",
        "rewrapped",
        "rescanned",
        "audit",
        "audit_verified",
        "metrics",
        "notify_tested",
    ] {
        assert!(replies.iter().any(|t| t == name), "{name}");
    }
}

#[test]
fn records_have_the_documented_fields_with_nil_for_absent_values() {
    let rec = unpack(&encode(&queued_record()).unwrap());
    assert_eq!(
        keys(&rec),
        [
            "id",
            "label",
            "scope",
            "include_files",
            "origin",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "size_bytes",
            "sha256",
            "key_id",
            "database",
            "failure",
            "pinned",
        ]
    );
    assert_eq!(field(&rec, "pinned").as_bool(), Some(false));
    for absent in [
        "started_at",
        "finished_at",
        "size_bytes",
        "sha256",
        "key_id",
        "database",
        "failure",
    ] {
        assert!(field(&rec, absent).is_nil(), "{absent}");
    }
    assert_eq!(
        field(&rec, "created_at").as_str(),
        Some("2026-01-02T03:04:05Z")
    );

    let done = unpack(&encode(&succeeded_record()).unwrap());
    assert_eq!(
        field(&done, "started_at").as_str(),
        Some("2026-01-02T03:04:06.25Z")
    );
    assert_eq!(field(&done, "size_bytes").as_u64(), Some(123_456_789));
    assert_eq!(field(&done, "status").as_str(), Some("succeeded"));

    let failed = unpack(&encode(&failed_record()).unwrap());
    assert_eq!(
        field(&failed, "finished_at").as_str(),
        Some("2026-01-02T03:04:07+03:00")
    );
    let failure = field(&failed, "failure");
    assert_eq!(keys(failure), ["code", "reason"]);
    assert_eq!(field(failure, "code").as_str(), Some("unavailable"));
    assert_eq!(field(&failed, "origin").as_str(), Some("scheduled"));
    assert_eq!(field(&failed, "scope").as_str(), Some("schema"));

    let progress = unpack(&encode(&progress(Phase::Dump)).unwrap());
    assert_eq!(
        keys(&progress),
        [
            "job_id",
            "phase",
            "tables_done",
            "tables_total",
            "bytes_done"
        ]
    );

    let status = unpack(&encode(&busy_status()).unwrap());
    assert_eq!(
        keys(&status),
        [
            "version",
            "protocol_version",
            "started_at",
            "uptime_seconds",
            "max_parallel",
            "running",
            "queued",
            "jobs",
            "backups",
            "newest_success_at",
            "newest_success_age_seconds",
            "rpo_limit_seconds",
            "rpo_breached",
            "dev_mode",
        ]
    );
    assert!(field(&status, "newest_success_at").is_nil());
    assert_eq!(
        field(&status, "newest_success_age_seconds").as_u64(),
        Some(60)
    );
    assert_eq!(field(&status, "rpo_limit_seconds").as_u64(), Some(93_600));
    assert_eq!(field(&status, "rpo_breached").as_bool(), Some(false));
    let jobs = field(&status, "jobs").as_array().unwrap();
    assert_eq!(
        keys(&jobs[0]),
        [
            "id",
            "kind",
            "status",
            "queued_at",
            "started_at",
            "progress"
        ]
    );
    assert_eq!(field(&jobs[0], "kind").as_str(), Some("backup"));
    assert_eq!(
        field(&jobs[0], "started_at").as_str(),
        Some("2026-01-02T03:04:05.000000001Z")
    );
    assert!(field(&jobs[1], "started_at").is_nil());
}

#[test]
fn error_bodies_leave_out_what_they_do_not_have() {
    let plain = unpack(
        &encode(&ServerMessage::Error {
            id: None,
            error: ErrorBody::new(ErrorCode::TooLarge, "frame too large"),
        })
        .unwrap(),
    );
    assert_eq!(keys(&plain), ["type", "error"]);
    assert_eq!(keys(field(&plain, "error")), ["code", "message"]);

    let full = unpack(
        &encode(&ServerMessage::Error {
            id: Some(7),
            error: ErrorBody {
                code: ErrorCode::Internal,
                message: "internal error".into(),
                correlation_id: Some("00000000deadbeef".into()),
            },
        })
        .unwrap(),
    );
    assert_eq!(keys(&full), ["type", "id", "error"]);
    assert_eq!(
        keys(field(&full, "error")),
        ["code", "message", "correlation_id"]
    );
    // An explicit nil id is read as no id.
    let nil_id = pack(&map(vec![
        ("type", "error".into()),
        ("id", Value::Nil),
        (
            "error",
            map(vec![("code", "invalid".into()), ("message", "m".into())]),
        ),
    ]));
    assert!(matches!(
        decode_message::<ServerMessage>(&nil_id).unwrap(),
        ServerMessage::Error { id: None, .. }
    ));
}

#[test]
fn enumerations_use_the_documented_strings() {
    let s = |v: Vec<u8>| unpack(&v).as_str().unwrap().to_owned();
    let scopes = [
        (Scope::Full, "full"),
        (Scope::Database, "database"),
        (Scope::Schema, "schema"),
    ];
    for (scope, name) in scopes {
        assert_eq!(s(encode(&scope).unwrap()), name);
        assert_eq!(scope.as_str(), name);
    }
    for (origin, name) in [
        (Origin::Manual, "manual"),
        (Origin::Scheduled, "scheduled"),
        (Origin::Imported, "imported"),
    ] {
        assert_eq!(s(encode(&origin).unwrap()), name);
    }
    for (status, name) in [
        (BackupStatus::Queued, "queued"),
        (BackupStatus::Running, "running"),
        (BackupStatus::Succeeded, "succeeded"),
        (BackupStatus::Failed, "failed"),
    ] {
        assert_eq!(s(encode(&status).unwrap()), name);
    }
    for phase in [
        Phase::Queued,
        Phase::Connecting,
        Phase::Globals,
        Phase::Dump,
        Phase::Files,
        Phase::Finishing,
        Phase::Done,
    ] {
        assert_eq!(s(encode(&phase).unwrap()), phase.as_str());
    }
    assert_eq!(s(encode(&JobKind::Backup).unwrap()), "backup");
}

#[test]
fn error_codes_are_the_documented_snake_case_strings() {
    for (code, name) in DOCUMENTED_CODES {
        let bytes = encode(&code).unwrap();
        assert_eq!(bytes, pack(&name.into()), "{name}");
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
        assert_eq!(decode_message::<ErrorCode>(&bytes).unwrap(), code);
    }
}
