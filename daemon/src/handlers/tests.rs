//! What every operation declares, checked over one request of each kind
//! (and the variants of their fields that change a declaration): the
//! maintenance rule against `docs/PROTOCOL.md` §6.20, the audit target
//! against the id the request carries on the wire, and the roles.

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::wire::ops::{self, Request};
use berkut_proto::wire::{Operation, PlanSpec, Role};

use super::{required_role, served_in_maintenance, target_of};

/// The operations `docs/PROTOCOL.md` says stay available in maintenance.
const SERVED_IN_MAINTENANCE: [&str; 6] = [
    "status",
    "restore_status",
    "maintenance_status",
    "maintenance_watch",
    "maintenance_clear",
    "metrics",
];

fn backup_id() -> BackupId {
    "20260102T030405Z-0a0b0c0d".parse().unwrap()
}

fn restore_id() -> RestoreId {
    "r-20260102T040506Z-0a0b0c0d".parse().unwrap()
}

fn restore_start(dry_run: bool, with_globals: bool, wait: bool) -> Operation {
    ops::RestoreStart {
        backup_id: backup_id(),
        dry_run,
        with_globals,
        wait,
    }
    .into()
}

/// At least one request of every operation.
fn all_operations() -> Vec<Operation> {
    let id = backup_id;
    let rid = restore_id;
    let mut all: Vec<Operation> = vec![
        ops::Status {}.into(),
        ops::BackupCreate::default().into(),
        ops::BackupList::default().into(),
        ops::BackupShow { id: id() }.into(),
        ops::BackupDelete { id: id() }.into(),
        ops::JobAttach { id: id() }.into(),
        ops::BackupPin { id: id() }.into(),
        ops::BackupUnpin { id: id() }.into(),
        ops::PlanShow {}.into(),
        ops::PlanSet {
            plan: serde_json::from_str::<PlanSpec>(r#"{"preset": "daily", "at": "02:00"}"#)
                .unwrap(),
        }
        .into(),
        ops::PlanEnable {}.into(),
        ops::PlanDisable {}.into(),
        ops::RestoreEvidence { restore_id: rid() }.into(),
        ops::RestoreRollback { restore_id: rid() }.into(),
        ops::RestoreCleanup { restore_id: rid() }.into(),
        ops::MaintenanceStatus {}.into(),
        ops::MaintenanceWatch {}.into(),
        ops::MaintenanceClear {}.into(),
        ops::BackupDownload {
            id: id(),
            offset: 0,
        }
        .into(),
        ops::BackupImport { size: 1 }.into(),
        ops::AuditTail::default().into(),
        ops::AuditVerify {}.into(),
        ops::StoreRewrap {}.into(),
        ops::StoreRescan {}.into(),
        ops::RemoteList {
            remote: "offsite".into(),
        }
        .into(),
        ops::RemoteFetch {
            remote: "offsite".into(),
            id: id(),
        }
        .into(),
        ops::RemoteVerify {
            remote: "offsite".into(),
            id: None,
        }
        .into(),
        ops::RemoteStatus {}.into(),
        ops::RemoteDelete {
            id: id(),
            remote: Some("offsite".into()),
            everywhere: false,
        }
        .into(),
        ops::Metrics {}.into(),
        ops::NotifyTest {}.into(),
        ops::DrillRun::default().into(),
        ops::RestoreEvidenceExport { restore_id: rid() }.into(),
    ];
    for wait in [false, true] {
        all.push(
            ops::RestoreStatus {
                restore_id: rid(),
                wait,
            }
            .into(),
        );
        for dry_run in [false, true] {
            for with_globals in [false, true] {
                all.push(restore_start(dry_run, with_globals, wait));
            }
        }
    }
    all
}

/// The operations named in the paragraph (or list item) of PROTOCOL.md
/// §6.20 that starts "Served during maintenance:".
fn documented_as_served() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let heading = "\n### 6.20 Maintenance mode for applications";
    let text = &doc[doc.find(heading).expect("PROTOCOL.md has §6.20") + 1..];
    let text = &text[..text[1..].find("\n#").map_or(text.len(), |n| n + 2)];
    let rest = &text[text
        .find("Served during maintenance:")
        .expect("6.20 says what is served during maintenance")..];
    let end = [rest.find("\n\n"), rest.find("\n* ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    let mut named: Vec<String> = rest[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    named.sort_unstable();
    named
}

#[test]
fn the_fixtures_hold_every_operation() {
    // Every variant's wire name, from the type each variant wraps.
    let names = [
        ops::Status::NAME,
        ops::BackupCreate::NAME,
        ops::BackupList::NAME,
        ops::BackupShow::NAME,
        ops::BackupDelete::NAME,
        ops::JobAttach::NAME,
        ops::BackupPin::NAME,
        ops::BackupUnpin::NAME,
        ops::PlanShow::NAME,
        ops::PlanSet::NAME,
        ops::PlanEnable::NAME,
        ops::PlanDisable::NAME,
        ops::RestoreStart::NAME,
        ops::RestoreStatus::NAME,
        ops::RestoreEvidence::NAME,
        ops::RestoreRollback::NAME,
        ops::RestoreCleanup::NAME,
        ops::MaintenanceStatus::NAME,
        ops::MaintenanceWatch::NAME,
        ops::MaintenanceClear::NAME,
        ops::BackupDownload::NAME,
        ops::BackupImport::NAME,
        ops::AuditTail::NAME,
        ops::AuditVerify::NAME,
        ops::StoreRewrap::NAME,
        ops::StoreRescan::NAME,
        ops::RemoteList::NAME,
        ops::RemoteFetch::NAME,
        ops::RemoteVerify::NAME,
        ops::RemoteStatus::NAME,
        ops::RemoteDelete::NAME,
        ops::Metrics::NAME,
        ops::NotifyTest::NAME,
        ops::DrillRun::NAME,
        ops::RestoreEvidenceExport::NAME,
    ];
    let all = all_operations();
    for name in names {
        assert!(
            all.iter().any(|o| o.name() == name),
            "the fixtures lack {name}"
        );
    }
}

#[test]
fn exactly_the_documented_operations_are_served_in_maintenance() {
    let operations = all_operations();
    for operation in &operations {
        assert_eq!(
            served_in_maintenance(operation),
            SERVED_IN_MAINTENANCE.contains(&operation.name()),
            "{}",
            operation.name()
        );
    }
    for name in SERVED_IN_MAINTENANCE {
        assert!(
            operations.iter().any(|o| o.name() == name),
            "the fixtures lack {name}"
        );
    }
    let mut served: Vec<String> = operations
        .iter()
        .filter(|o| served_in_maintenance(o))
        .map(|o| o.name().to_owned())
        .collect();
    served.sort_unstable();
    served.dedup();
    assert_eq!(documented_as_served(), served);
    // Whatever the fields say: following a restore is allowed either way,
    // starting a dry-run is not; no transfer and no audit read is served.
    for wait in [false, true] {
        let status = Operation::from(ops::RestoreStatus {
            restore_id: restore_id(),
            wait,
        });
        assert!(served_in_maintenance(&status));
        assert!(!served_in_maintenance(&restore_start(true, false, wait)));
    }
    for name in [
        "backup_download",
        "backup_import",
        "store_rewrap",
        "store_rescan",
        "audit_tail",
        "audit_verify",
    ] {
        let op = operations.iter().find(|o| o.name() == name).unwrap();
        assert!(!served_in_maintenance(op), "{name}");
    }
}

/// The audit target is the backup or restore id the request carries on
/// the wire, and nothing for a request that carries none.
#[test]
fn the_audit_target_is_the_id_the_request_names() {
    for op in all_operations() {
        let value: rmpv::Value =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&op).unwrap()).unwrap();
        let carried = value
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| matches!(k.as_str(), Some("id" | "backup_id" | "restore_id")))
            .map(|(_, v)| v.as_str().unwrap().to_owned());
        assert_eq!(target_of(&op), carried, "{}", op.name());
    }
}

#[test]
fn a_dry_run_without_roles_is_the_only_operator_restore() {
    for wait in [false, true] {
        assert_eq!(
            required_role(&restore_start(true, false, wait)),
            Role::Operator
        );
        assert_eq!(required_role(&restore_start(true, true, wait)), Role::Admin);
        assert_eq!(
            required_role(&restore_start(false, false, wait)),
            Role::Admin
        );
        assert_eq!(
            required_role(&restore_start(false, true, wait)),
            Role::Admin
        );
    }
    let viewer: Vec<&str> = all_operations()
        .iter()
        .filter(|o| required_role(o) == Role::Viewer)
        .map(|o| o.name())
        .collect();
    for name in viewer {
        assert!(
            !name.contains("delete") && !name.contains("restore_start"),
            "{name}"
        );
    }
}
