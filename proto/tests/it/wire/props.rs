//! Properties over arbitrary input: decoding random or damaged bytes never
//! panics, arbitrary operations (plans, restores, transfers and the audit
//! operations included), made on behalf of any user or none, error bodies and the pieces of downloads and uploads round-trip (the
//! pieces as `bin`), and a backup id and a restore id each decode exactly
//! when they have the documented shape.

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::manifest::Scope;
use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    ClientMessage, ErrorBody, OnBehalfOf, Operation, PlanSpec, Preset, Role, ServerMessage,
};
use proptest::prelude::*;
use rmpv::Value;

use super::fixtures::{all_client_messages, all_server_messages};
use super::{field, keys, pack, unpack, DOCUMENTED_CODES};

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Full),
        Just(Scope::Database),
        Just(Scope::Schema)
    ]
}

fn any_backup_id() -> impl Strategy<Value = BackupId> {
    "[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}".prop_map(|s| s.parse().unwrap())
}

fn any_restore_id() -> impl Strategy<Value = RestoreId> {
    "r-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}".prop_map(|s| s.parse().unwrap())
}

fn any_restore_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (any_backup_id(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(backup_id, dry_run, with_globals, wait)| Operation::RestoreStart(ops::RestoreStart {
                backup_id,
                dry_run,
                with_globals,
                wait,
            })
        ),
        (any_restore_id(), any::<bool>()).prop_map(|(restore_id, wait)| Operation::RestoreStatus(
            ops::RestoreStatus { restore_id, wait }
        )),
        any_restore_id()
            .prop_map(|restore_id| Operation::RestoreEvidence(ops::RestoreEvidence { restore_id })),
        any_restore_id()
            .prop_map(|restore_id| Operation::RestoreRollback(ops::RestoreRollback { restore_id })),
        any_restore_id()
            .prop_map(|restore_id| Operation::RestoreCleanup(ops::RestoreCleanup { restore_id })),
        Just(Operation::MaintenanceStatus(ops::MaintenanceStatus {})),
        Just(Operation::MaintenanceWatch(ops::MaintenanceWatch {})),
        Just(Operation::MaintenanceClear(ops::MaintenanceClear {})),
    ]
}

fn any_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::Status(ops::Status {})),
        Just(Operation::list_first_page()),
        (".{0,250}", scope(), any::<bool>(), any::<bool>()).prop_map(
            |(label, scope, include_files, wait)| Operation::BackupCreate(ops::BackupCreate {
                label,
                scope,
                include_files,
                wait,
            })
        ),
        any_backup_id().prop_map(|id| Operation::BackupShow(ops::BackupShow { id })),
        any_backup_id().prop_map(|id| Operation::BackupDelete(ops::BackupDelete { id })),
        any_backup_id().prop_map(|id| Operation::JobAttach(ops::JobAttach { id })),
        any_backup_id().prop_map(|id| Operation::BackupPin(ops::BackupPin { id })),
        any_backup_id().prop_map(|id| Operation::BackupUnpin(ops::BackupUnpin { id })),
        Just(Operation::PlanShow(ops::PlanShow {})),
        Just(Operation::PlanEnable(ops::PlanEnable {})),
        Just(Operation::PlanDisable(ops::PlanDisable {})),
        any_plan().prop_map(|plan| Operation::PlanSet(ops::PlanSet { plan })),
        any_restore_operation(),
        (any_backup_id(), any::<u64>())
            .prop_map(|(id, offset)| Operation::BackupDownload(ops::BackupDownload { id, offset })),
        any::<u64>().prop_map(|size| Operation::BackupImport(ops::BackupImport { size })),
        Just(Operation::StoreRewrap(ops::StoreRewrap {})),
        Just(Operation::StoreRescan(ops::StoreRescan {})),
        Just(Operation::DrillRun(ops::DrillRun::default())),
        (any::<u32>(), proptest::option::of(any::<u64>()))
            .prop_map(|(lines, before)| Operation::AuditTail(ops::AuditTail { lines, before })),
        Just(Operation::AuditVerify(ops::AuditVerify {})),
        Just(Operation::Metrics(ops::Metrics {})),
        Just(Operation::NotifyTest(ops::NotifyTest {})),
    ]
}

/// No user, or any user with any role.
fn any_on_behalf_of() -> impl Strategy<Value = Option<OnBehalfOf>> {
    let role = prop_oneof![Just(Role::Viewer), Just(Role::Operator), Just(Role::Admin)];
    proptest::option::of((".{0,40}", role).prop_map(|(user, role)| OnBehalfOf { user, role }))
}

/// Bytes of a piece: short ones, and some around the `bin 16`/`bin 32` edge.
fn any_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(any::<u8>(), 65_530..65_540),
    ]
}

fn preset() -> impl Strategy<Value = Preset> {
    prop_oneof![
        Just(Preset::Daily),
        Just(Preset::Weekly),
        Just(Preset::MonthlyStart),
        Just(Preset::MonthlyEnd),
        Just(Preset::Cron),
    ]
}

/// Any plan the wire can carry; the daemon, not the decoder, validates it.
fn any_plan() -> impl Strategy<Value = PlanSpec> {
    let text = || proptest::option::of("\\PC{0,40}");
    (
        (preset(), text(), text(), text(), text()),
        (
            scope(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (preset, at, weekday, timezone, cron),
                (scope, include_files, retention_days, keep_last_successful, catch_up),
            )| PlanSpec {
                preset,
                at,
                weekday,
                timezone,
                cron,
                scope,
                include_files,
                retention_days,
                keep_last_successful,
                catch_up,
            },
        )
}

fn shape_of_a_restore_id(s: &str) -> bool {
    s.strip_prefix("r-").is_some_and(shape_of_a_backup_id)
}

fn shape_of_a_backup_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_message::<ClientMessage>(&body);
        let _ = decode_message::<ServerMessage>(&body);
    }

    #[test]
    fn decoding_damaged_messages_never_panics(
        n in 0usize..64,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let messages = all_server_messages();
        let mut body = encode(&messages[n % messages.len()]).unwrap();
        let at = at.index(body.len());
        body[at] = byte;
        let _ = decode_message::<ServerMessage>(&body);
        let _ = decode_message::<ServerMessage>(&body[..cut.index(body.len())]);
        let requests = all_client_messages();
        let mut body = encode(&requests[n % requests.len()]).unwrap();
        let at = at.min(body.len() - 1);
        body[at] = byte;
        let _ = decode_message::<ClientMessage>(&body);
    }

    #[test]
    fn operations_round_trip(id in any::<u64>(), op in any_operation(), on_behalf_of in any_on_behalf_of()) {
        let present = on_behalf_of.is_some();
        let msg = ClientMessage::Request { on_behalf_of, id, op: op.clone() };
        let bytes = encode(&msg).unwrap();
        let has_key = keys(&unpack(&bytes)).contains(&"on_behalf_of");
        prop_assert_eq!(has_key, present);
        prop_assert_eq!(decode_message::<ClientMessage>(&bytes).unwrap(), msg);
        prop_assert_eq!(decode_message::<Operation>(&encode(&op).unwrap()).unwrap(), op);
    }

    #[test]
    fn a_backup_id_decodes_exactly_when_it_has_the_shape(s in "[0-9a-fTZ./-]{0,30}|[0-9]{8}T[0-9]{6}Z-[0-9a-fA-F]{7,9}|\\PC{0,30}") {
        let decoded = decode_message::<BackupId>(&pack(&Value::from(s.as_str())));
        prop_assert_eq!(decoded.is_ok(), shape_of_a_backup_id(&s));
    }

    #[test]
    fn a_restore_id_decodes_exactly_when_it_has_the_shape(s in "r-[0-9a-fTZ./-]{0,30}|[rR]-?[0-9]{8}T[0-9]{6}Z-[0-9a-fA-F]{7,9}|\\PC{0,30}") {
        let decoded = decode_message::<RestoreId>(&pack(&Value::from(s.as_str())));
        prop_assert_eq!(decoded.is_ok(), shape_of_a_restore_id(&s));
        prop_assert!(s.parse::<BackupId>().is_err() || !shape_of_a_restore_id(&s));
    }

    #[test]
    fn pieces_round_trip_as_bin(id in any::<u64>(), offset in any::<u64>(), data in any_piece(), end in any::<bool>()) {
        let upload = ClientMessage::Data { id, data: data.clone(), end };
        let download = ServerMessage::Data { id, offset, data: data.clone() };
        let is_bin = |bytes: &[u8]| matches!(field(&unpack(bytes), "data"), Value::Binary(b) if *b == data);
        let bytes = encode(&upload).unwrap();
        prop_assert!(is_bin(&bytes));
        prop_assert_eq!(decode_message::<ClientMessage>(&bytes).unwrap(), upload);
        let bytes = encode(&download).unwrap();
        prop_assert!(is_bin(&bytes));
        prop_assert_eq!(decode_message::<ServerMessage>(&bytes).unwrap(), download);
    }

    #[test]
    fn error_bodies_round_trip(code in 0usize..10, message in "\\PC{0,80}", correlation in proptest::option::of("[0-9a-f]{16}")) {
        let error = ErrorBody { code: DOCUMENTED_CODES[code].0, message, correlation_id: correlation };
        let msg = ServerMessage::Error { id: Some(1), error };
        prop_assert_eq!(decode_message::<ServerMessage>(&encode(&msg).unwrap()).unwrap(), msg);
    }
}
