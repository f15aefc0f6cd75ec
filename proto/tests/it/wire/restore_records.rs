//! The records of restores on the wire: a restore record, its steps, the
//! maintenance state and the evidence carry the documented fields in order
//! (nil for absent values), the steps come in the documented order, the
//! statuses and step states encode as the documented strings, and records
//! from a peer that leaves optional fields out or adds new ones still read.

use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::{Evidence, MaintenanceInfo, RestoreRecord, RestoreStatus, StepState};
use rmpv::Value;
use time::macros::datetime;

use super::fixtures::{
    evidence, failed_restore, interrupted_restore, maintenance_off, maintenance_on, queued_restore,
    restore_records, running_restore, succeeded_restore, STEP_NAMES,
};
use super::{field, keys, map, pack, unpack};

const RECORD_FIELDS: [&str; 13] = [
    "restore_id",
    "backup_id",
    "dry_run",
    "with_globals",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "database",
    "scratch_database",
    "rollback_database",
    "steps",
    "failure",
];

const STEP_FIELDS: [&str; 7] = [
    "name",
    "state",
    "started_at",
    "finished_at",
    "done",
    "total",
    "detail",
];

#[test]
fn restore_records_have_the_documented_fields_with_nil_for_absent_values() {
    for record in restore_records() {
        let value = unpack(&encode(&record).unwrap());
        assert_eq!(keys(&value), RECORD_FIELDS);
        let steps = field(&value, "steps").as_array().unwrap();
        let names: Vec<&str> = steps
            .iter()
            .map(|s| field(s, "name").as_str().unwrap())
            .collect();
        assert_eq!(names, STEP_NAMES, "every record lists every step, in order");
        for step in steps {
            assert_eq!(keys(step), STEP_FIELDS);
        }
    }

    let queued = unpack(&encode(&queued_restore()).unwrap());
    for absent in ["started_at", "finished_at", "rollback_database", "failure"] {
        assert!(field(&queued, absent).is_nil(), "{absent}");
    }
    assert_eq!(field(&queued, "dry_run").as_bool(), Some(true));
    assert_eq!(field(&queued, "status").as_str(), Some("queued"));
    assert_eq!(
        field(&queued, "created_at").as_str(),
        Some("2026-01-02T04:05:06Z")
    );
    let first = &field(&queued, "steps").as_array().unwrap()[0];
    assert_eq!(field(first, "state").as_str(), Some("pending"));
    for absent in ["started_at", "finished_at", "done", "total", "detail"] {
        assert!(field(first, absent).is_nil(), "{absent}");
    }

    let running = unpack(&encode(&running_restore()).unwrap());
    let steps = field(&running, "steps").as_array().unwrap();
    assert_eq!(field(&steps[1], "done").as_u64(), Some(1 << 32), "bytes");
    assert_eq!(field(&steps[6], "state").as_str(), Some("running"));
    assert_eq!(field(&steps[6], "done").as_u64(), Some(3), "tables");
    assert_eq!(field(&steps[6], "total").as_u64(), Some(10));
    assert!(field(&steps[6], "finished_at").is_nil());
    assert_eq!(
        field(&running, "started_at").as_str(),
        Some("2026-01-02T04:05:06.25Z")
    );

    let done = unpack(&encode(&succeeded_restore()).unwrap());
    assert_eq!(
        field(&done, "rollback_database").as_str(),
        Some("app_berkut_old_0a0b0c0d")
    );
    assert_eq!(
        field(&done, "finished_at").as_str(),
        Some("2026-01-02T04:06:00+03:00")
    );
    let globals = &field(&done, "steps").as_array().unwrap()[3];
    assert_eq!(field(globals, "state").as_str(), Some("skipped"));

    let failed = unpack(&encode(&failed_restore()).unwrap());
    assert_eq!(keys(field(&failed, "failure")), ["code", "reason"]);
    assert_eq!(
        field(field(&failed, "failure"), "code").as_str(),
        Some("invalid")
    );
    let interrupted = unpack(&encode(&interrupted_restore()).unwrap());
    assert_eq!(field(&interrupted, "status").as_str(), Some("interrupted"));
}

#[test]
fn evidence_and_maintenance_have_the_documented_fields() {
    let value = unpack(&encode(&evidence()).unwrap());
    assert_eq!(
        keys(&value),
        [
            "record",
            "archive_sha256",
            "digests",
            "counts",
            "verdict",
            "logs"
        ]
    );
    assert_eq!(keys(field(&value, "record")), RECORD_FIELDS);
    assert_eq!(field(&value, "verdict").as_str(), Some("passed"));
    let digests = field(&value, "digests").as_array().unwrap();
    assert_eq!(keys(&digests[0]), ["part", "expected", "found"]);
    let counts = field(&value, "counts").as_array().unwrap();
    for count in counts {
        assert_eq!(keys(count), ["schema", "table", "expected", "found"]);
    }
    assert_eq!(field(&counts[0], "found").as_u64(), Some(1_000_000));
    assert!(field(&counts[1], "expected").is_nil());
    assert!(field(&counts[2], "found").is_nil());
    assert_eq!(field(&counts[2], "expected").as_i64(), Some(i64::MAX));
    let logs = field(&value, "logs").as_array().unwrap();
    assert_eq!(keys(&logs[0]), ["step", "text"]);
    assert_eq!(field(&logs[1], "step").as_str(), Some("data"));

    let on = unpack(&encode(&maintenance_on()).unwrap());
    assert_eq!(keys(&on), ["active", "restore_id", "since", "reason"]);
    assert_eq!(field(&on, "active").as_bool(), Some(true));
    assert_eq!(
        field(&on, "restore_id").as_str(),
        Some("r-20260102T040506Z-0a0b0c0d")
    );
    let off = unpack(&encode(&maintenance_off()).unwrap());
    assert_eq!(keys(&off), ["active", "restore_id", "since", "reason"]);
    for absent in ["restore_id", "since", "reason"] {
        assert!(field(&off, absent).is_nil(), "{absent}");
    }
}

#[test]
fn restore_statuses_and_step_states_use_the_documented_strings() {
    let s = |v: Vec<u8>| unpack(&v).as_str().unwrap().to_owned();
    for (status, name, finished) in [
        (RestoreStatus::Queued, "queued", false),
        (RestoreStatus::Running, "running", false),
        (RestoreStatus::Succeeded, "succeeded", true),
        (RestoreStatus::Failed, "failed", true),
        (RestoreStatus::Interrupted, "interrupted", true),
    ] {
        assert_eq!(s(encode(&status).unwrap()), name);
        assert_eq!(status.as_str(), name);
        assert_eq!(status.is_finished(), finished, "{name}");
        let back: RestoreStatus = decode_message(&pack(&name.into())).unwrap();
        assert_eq!(back, status);
    }
    for (state, name) in [
        (StepState::Pending, "pending"),
        (StepState::Running, "running"),
        (StepState::Done, "done"),
        (StepState::Failed, "failed"),
        (StepState::Skipped, "skipped"),
    ] {
        assert_eq!(s(encode(&state).unwrap()), name);
    }
    for wrong in ["Interrupted", "cancelled", ""] {
        assert!(decode_message::<RestoreStatus>(&pack(&wrong.into())).is_err());
    }
}

#[test]
fn restore_records_with_optional_fields_left_out_or_new_fields_added_still_read() {
    let step = |name: &str| map(vec![("name", name.into()), ("state", "pending".into())]);
    let minimal = map(vec![
        ("restore_id", "r-20260102T040506Z-0a0b0c0d".into()),
        ("backup_id", "20260102T030405Z-0a0b0c0d".into()),
        ("dry_run", true.into()),
        ("with_globals", false.into()),
        ("status", "queued".into()),
        ("created_at", "2026-01-02T07:05:06+03:00".into()),
        ("database", "app".into()),
        ("scratch_database", "app_berkut_drill_0a0b0c0d".into()),
        (
            "steps",
            Value::Array(STEP_NAMES.iter().map(|n| step(n)).collect()),
        ),
    ]);
    let record: RestoreRecord = decode_message(&pack(&minimal)).unwrap();
    assert_eq!(record, queued_restore());
    assert_eq!(record.created_at, datetime!(2026-01-02 04:05:06 UTC));
    assert_eq!(record.step("data").unwrap().state, StepState::Pending);
    assert!(record.step("restore_everything").is_none());

    let mut newer = minimal.clone();
    if let Value::Map(pairs) = &mut newer {
        pairs.push(("verified_by".into(), "someone".into()));
    }
    assert_eq!(
        decode_message::<RestoreRecord>(&pack(&newer)).unwrap(),
        queued_restore()
    );

    let bare: MaintenanceInfo =
        decode_message(&pack(&map(vec![("active", false.into())]))).unwrap();
    assert_eq!(bare, maintenance_off());
    let only_record = map(vec![("record", minimal)]);
    let evidence: Evidence = decode_message(&pack(&only_record)).unwrap();
    assert_eq!(evidence.record, queued_restore());
    assert!(evidence.digests.is_empty() && evidence.counts.is_empty());
    assert!(evidence.logs.is_empty() && evidence.verdict.is_none());
}
