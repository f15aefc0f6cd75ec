//! The backup plan on the wire: the plan and pin operations and the `plan`
//! reply carry the documented tags, a `PlanSpec` takes the documented
//! defaults for what it leaves out, presets are kebab-case strings, plans
//! and the fields the plan added to records have the documented shape, and
//! a bad `plan_set` is `invalid` with its request id.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::{ops, ClientMessage, Operation, PlanInfo, PlanSpec, Preset, Reply};
use rmpv::Value;

use super::fixtures::{
    backup_id, breached_status, daily_spec, pinned_record, plan_specs, unset_plan, weekly_plan,
};
use super::{field, invalid_id, keys, map, op, pack, request, unpack};

#[test]
fn plan_and_pin_operations_and_the_plan_reply_have_the_documented_tags() {
    let cases = [
        (
            Operation::BackupPin(ops::BackupPin { id: backup_id() }),
            "backup_pin",
        ),
        (
            Operation::BackupUnpin(ops::BackupUnpin { id: backup_id() }),
            "backup_unpin",
        ),
        (Operation::PlanShow(ops::PlanShow {}), "plan_show"),
        (
            Operation::PlanSet(ops::PlanSet { plan: daily_spec() }),
            "plan_set",
        ),
        (Operation::PlanEnable(ops::PlanEnable {}), "plan_enable"),
        (Operation::PlanDisable(ops::PlanDisable {}), "plan_disable"),
    ];
    for (operation, name) in cases {
        let value = unpack(&encode(&operation).unwrap());
        assert_eq!(field(&value, "type").as_str(), Some(name));
        assert_eq!(operation.name(), name);
        let expected: &[&str] = match name {
            "backup_pin" | "backup_unpin" => &["type", "id"],
            "plan_set" => &["type", "plan"],
            _ => &["type"],
        };
        assert_eq!(keys(&value), expected, "{name}");
    }
    // The bare forms a client in another language sends.
    for (name, expected) in [
        ("plan_show", Operation::PlanShow(ops::PlanShow {})),
        ("plan_enable", Operation::PlanEnable(ops::PlanEnable {})),
        ("plan_disable", Operation::PlanDisable(ops::PlanDisable {})),
    ] {
        let body = request(3.into(), op(name, vec![]));
        assert_eq!(
            decode_message::<ClientMessage>(&body).unwrap(),
            ClientMessage::Request {
                on_behalf_of: None,
                id: 3,
                op: expected
            }
        );
    }
    let body = request(
        4.into(),
        op("backup_pin", vec![("id", backup_id().as_str().into())]),
    );
    assert_eq!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            on_behalf_of: None,
            id: 4,
            op: Operation::BackupPin(ops::BackupPin { id: backup_id() })
        }
    );

    let reply = unpack(
        &encode(&Reply::Plan {
            plan: weekly_plan(),
        })
        .unwrap(),
    );
    assert_eq!(keys(&reply), ["type", "plan"]);
    assert_eq!(field(&reply, "type").as_str(), Some("plan"));
}

#[test]
fn omitted_plan_fields_take_the_documented_defaults() {
    let daily = map(vec![("preset", "daily".into()), ("at", "02:00".into())]);
    let spec: PlanSpec = decode_message(&pack(&daily)).unwrap();
    assert_eq!(spec, daily_spec());
    assert_eq!(
        (
            spec.retention_days,
            spec.keep_last_successful,
            spec.catch_up,
            spec.scope,
            spec.include_files,
        ),
        (30, 7, true, Scope::Full, false)
    );
    assert_eq!((spec.weekday, spec.timezone, spec.cron), (None, None, None));

    let body = request(5.into(), op("plan_set", vec![("plan", daily)]));
    assert_eq!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            on_behalf_of: None,
            id: 5,
            op: Operation::PlanSet(ops::PlanSet { plan: daily_spec() })
        }
    );
    // The optional strings may also be sent as nil.
    let with_nils = map(vec![
        ("preset", "cron".into()),
        ("at", Value::Nil),
        ("weekday", Value::Nil),
        ("timezone", Value::Nil),
        ("cron", "0 3 * * *".into()),
    ]);
    let spec: PlanSpec = decode_message(&pack(&with_nils)).unwrap();
    assert_eq!(spec.preset, Preset::Cron);
    assert_eq!((spec.at, spec.cron.as_deref()), (None, Some("0 3 * * *")));
    assert_eq!((spec.retention_days, spec.keep_last_successful), (30, 7));

    // A plan from an older daemon with only `enabled` still reads.
    let bare: PlanInfo = decode_message(&pack(&map(vec![("enabled", false.into())]))).unwrap();
    assert_eq!(bare, unset_plan());
}

#[test]
fn presets_are_kebab_case_strings() {
    let presets = [
        (Preset::Daily, "daily"),
        (Preset::Weekly, "weekly"),
        (Preset::MonthlyStart, "monthly-start"),
        (Preset::MonthlyEnd, "monthly-end"),
        (Preset::Cron, "cron"),
    ];
    for (preset, name) in presets {
        assert_eq!(encode(&preset).unwrap(), pack(&name.into()), "{name}");
        assert_eq!(
            decode_message::<Preset>(&pack(&name.into())).unwrap(),
            preset
        );
        assert_eq!(preset.as_str(), name);
        assert_eq!(name.parse::<Preset>().unwrap(), preset);
    }
    for wrong in [
        "monthly_start",
        "MonthlyStart",
        "Daily",
        "DAILY",
        "hourly",
        "",
    ] {
        assert!(
            decode_message::<Preset>(&pack(&wrong.into())).is_err(),
            "{wrong:?}"
        );
        assert!(wrong.parse::<Preset>().is_err(), "{wrong:?}");
    }
}

#[test]
fn plans_have_the_documented_fields_with_nil_for_absent_values() {
    const SPEC_FIELDS: [&str; 10] = [
        "preset",
        "at",
        "weekday",
        "timezone",
        "cron",
        "scope",
        "include_files",
        "retention_days",
        "keep_last_successful",
        "catch_up",
    ];
    for spec in plan_specs() {
        assert_eq!(keys(&unpack(&encode(&spec).unwrap())), SPEC_FIELDS);
    }
    let monthly = unpack(&encode(&plan_specs()[2]).unwrap());
    assert_eq!(field(&monthly, "preset").as_str(), Some("monthly-start"));
    assert!(field(&monthly, "weekday").is_nil());

    let weekly = unpack(&encode(&weekly_plan()).unwrap());
    let mut info_fields = vec!["enabled"];
    info_fields.extend(SPEC_FIELDS);
    info_fields.extend(["next_run", "last_success"]);
    assert_eq!(keys(&weekly), info_fields);
    assert_eq!(field(&weekly, "preset").as_str(), Some("weekly"));
    assert_eq!(field(&weekly, "weekday").as_str(), Some("sunday"));
    assert_eq!(
        field(&weekly, "next_run").as_str(),
        Some("2026-01-04T01:30:00Z")
    );
    assert_eq!(
        field(&weekly, "last_success").as_str(),
        Some("2025-12-28T01:30:00.123456789Z")
    );

    let unset = unpack(&encode(&unset_plan()).unwrap());
    assert_eq!(keys(&unset), info_fields);
    for absent in ["preset", "at", "weekday", "timezone", "cron", "next_run"] {
        assert!(field(&unset, absent).is_nil(), "{absent}");
    }
    assert_eq!(field(&unset, "enabled").as_bool(), Some(false));
    assert_eq!(field(&unset, "scope").as_str(), Some("full"));
    assert_eq!(field(&unset, "retention_days").as_u64(), Some(0));
}

#[test]
fn pinned_and_the_rpo_watch_encode_as_documented() {
    let pinned = unpack(&encode(&pinned_record()).unwrap());
    assert_eq!(field(&pinned, "pinned").as_bool(), Some(true));
    let status = unpack(&encode(&breached_status()).unwrap());
    assert_eq!(
        field(&status, "newest_success_at").as_str(),
        Some("2026-01-01T02:00:00.5Z")
    );
    assert_eq!(
        field(&status, "newest_success_age_seconds").as_u64(),
        Some(1 << 32)
    );
    assert_eq!(field(&status, "rpo_limit_seconds").as_u64(), Some(95_040));
    assert_eq!(field(&status, "rpo_breached").as_bool(), Some(true));
}

#[test]
fn a_bad_plan_request_is_invalid_with_its_id() {
    let plan = |pairs: Vec<(&str, Value)>| {
        let mut all = vec![("preset", Value::from("daily")), ("at", "02:00".into())];
        all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
        all.extend(pairs);
        map(all)
    };
    let cases: Vec<(&str, Value)> = vec![
        ("no plan", op("plan_set", vec![])),
        ("plan is nil", op("plan_set", vec![("plan", Value::Nil)])),
        (
            "plan is a string",
            op("plan_set", vec![("plan", "daily".into())]),
        ),
        (
            "no preset",
            op(
                "plan_set",
                vec![("plan", map(vec![("at", "02:00".into())]))],
            ),
        ),
        (
            "unknown preset",
            op(
                "plan_set",
                vec![("plan", plan(vec![("preset", "hourly".into())]))],
            ),
        ),
        (
            "snake_case preset",
            op(
                "plan_set",
                vec![("plan", plan(vec![("preset", "monthly_end".into())]))],
            ),
        ),
        (
            "at as an integer",
            op("plan_set", vec![("plan", plan(vec![("at", 200.into())]))]),
        ),
        (
            "negative retention",
            op(
                "plan_set",
                vec![("plan", plan(vec![("retention_days", (-1).into())]))],
            ),
        ),
        (
            "retention beyond u32",
            op(
                "plan_set",
                vec![("plan", plan(vec![("retention_days", (1u64 << 32).into())]))],
            ),
        ),
        (
            "nil for a field that has a default",
            op(
                "plan_set",
                vec![("plan", plan(vec![("keep_last_successful", Value::Nil)]))],
            ),
        ),
        (
            "catch_up as an integer",
            op(
                "plan_set",
                vec![("plan", plan(vec![("catch_up", 1.into())]))],
            ),
        ),
        (
            "unknown scope",
            op(
                "plan_set",
                vec![("plan", plan(vec![("scope", "all".into())]))],
            ),
        ),
        ("backup_pin without id", op("backup_pin", vec![])),
        ("backup_unpin without id", op("backup_unpin", vec![])),
    ];
    for (what, operation) in cases {
        assert_eq!(
            invalid_id::<ClientMessage>(&request(21.into(), operation)),
            Some(21),
            "{what}"
        );
    }
}
