//! Driving a daemon through the protocol's own client: the requests tests
//! send most, the replies they expect, polling a job or a restore to a
//! state, and the check that what a client is told gives nothing away.

use std::time::Duration;

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::manifest::Scope;
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    BackupRecord, BackupStatus, Client, ClientError, ErrorBody, Evidence, Operation, Phase,
    PlanInfo, PlanSpec, Reply, RestoreRecord, StatusInfo, StepState,
};

use crate::daemon::Daemon;
use crate::wait::LONG;

/// What no message for a user may contain, wherever it is shown: Rust's
/// internals (a panic, a backtrace, a source location) or the database's
/// (SQL, a server error, the catalog).
pub const INTERNALS: [&str; 6] = [
    "panicked",
    "backtrace",
    ".rs:",
    "SELECT ",
    "ERROR:",
    "pg_catalog",
];

/// What the daemon's messages to a client may not contain either: the
/// server's file system (clients may run elsewhere) and stack traces.
const SERVER_DETAILS: [&str; 7] = ["/tmp", "/var", "/usr", "/run", "/home", "/root", "stack"];

/// Asserts that a message meant for a client gives nothing away: no
/// filesystem path, no SQL, no Rust internals.
#[track_caller]
pub fn assert_safe(message: &str) {
    for bad in SERVER_DETAILS.iter().chain(&INTERNALS) {
        assert!(
            !message.contains(bad),
            "client-visible message leaks {bad:?}: {message}"
        );
    }
}

pub fn create_op(label: &str, scope: Scope, wait: bool) -> Operation {
    Operation::BackupCreate(ops::BackupCreate {
        label: label.into(),
        scope,
        include_files: false,
        wait,
    })
}

/// A backup of the database and the configured file roots, waited for.
pub async fn backup_with_files_now(client: &mut Client) -> BackupRecord {
    backup(
        client
            .call(Operation::BackupCreate(ops::BackupCreate {
                label: String::new(),
                scope: Scope::Database,
                include_files: true,
                wait: true,
            }))
            .await,
    )
}

pub fn backup(reply: Result<Reply, ClientError>) -> BackupRecord {
    match reply {
        Ok(Reply::Backup { backup }) => backup,
        other => panic!("expected a backup record, got {other:?}"),
    }
}

pub fn list(reply: Result<Reply, ClientError>) -> Vec<BackupRecord> {
    match reply {
        Ok(Reply::Backups { backups, .. }) => backups,
        other => panic!("expected a list, got {other:?}"),
    }
}

/// The daemon's error, failing the test if the call succeeded.
pub fn server_error(reply: Result<Reply, ClientError>) -> ErrorBody {
    match reply {
        Err(ClientError::Server(body)) => {
            assert_safe(&body.message);
            body
        }
        other => panic!("expected an error from the daemon, got {other:?}"),
    }
}

/// Takes a backup and waits for it.
pub async fn backup_now(client: &mut Client, scope: Scope) -> BackupRecord {
    backup(client.call(create_op("test", scope, true)).await)
}

pub fn restore_op(backup_id: &BackupId, dry_run: bool, wait: bool) -> Operation {
    Operation::RestoreStart(ops::RestoreStart {
        backup_id: backup_id.clone(),
        dry_run,
        with_globals: false,
        wait,
    })
}

pub fn restored(reply: Result<Reply, ClientError>) -> RestoreRecord {
    match reply {
        Ok(Reply::Restore { restore }) => restore,
        other => panic!("expected a restore record, got {other:?}"),
    }
}

pub fn step_states(r: &RestoreRecord) -> Vec<(String, StepState)> {
    r.steps.iter().map(|s| (s.name.clone(), s.state)).collect()
}

/// A restore's record as it is now, asked on a connection of its own.
/// Waits for a restore to end and returns its record.
pub async fn restore_outcome(client: &mut Client, id: RestoreId) -> RestoreRecord {
    restored(
        client
            .call(Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: id,
                wait: true,
            }))
            .await,
    )
}

pub async fn restore_status(daemon: &Daemon, id: &RestoreId) -> RestoreRecord {
    restored(
        daemon
            .client()
            .await
            .call(Operation::RestoreStatus(ops::RestoreStatus {
                restore_id: id.clone(),
                wait: false,
            }))
            .await,
    )
}

/// A restore's evidence, asked on a connection of its own.
pub async fn evidence(daemon: &Daemon, id: &RestoreId) -> Evidence {
    match daemon
        .client()
        .await
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: id.clone(),
        }))
        .await
    {
        Ok(Reply::Evidence { evidence }) => *evidence,
        other => panic!("expected evidence, got {other:?}"),
    }
}

/// The log of `step` in a restore's evidence (empty when it has none).
pub fn step_log(evidence: &Evidence, step: &str) -> String {
    evidence
        .logs
        .iter()
        .find(|l| l.step == step)
        .map(|l| l.text.clone())
        .unwrap_or_default()
}

/// Polls a restore until `step` runs, failing if the restore ends first.
pub async fn wait_for_step(daemon: &Daemon, id: &RestoreId, step: &str) {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let r = restore_status(daemon, id).await;
        if r.step(step).map(|s| s.state) == Some(StepState::Running) {
            return;
        }
        assert!(!r.status.is_finished(), "the restore ended early: {r:#?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for step {step}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plan as the protocol's JSON spells it.
pub fn spec(json: serde_json::Value) -> PlanSpec {
    serde_json::from_value(json).unwrap()
}

pub fn plan(reply: Result<Reply, ClientError>) -> PlanInfo {
    match reply {
        Ok(Reply::Plan { plan }) => plan,
        other => panic!("expected a plan, got {other:?}"),
    }
}

pub async fn status(client: &mut Client) -> StatusInfo {
    match client.call(Operation::Status(ops::Status {})).await {
        Ok(Reply::Status { status }) => status,
        other => panic!("expected a status, got {other:?}"),
    }
}

/// Polls status until exactly `running` jobs run (inside pg_dump) and
/// `queued` wait, checking the limit on every look.
pub async fn wait_for_status(client: &mut Client, running: u32, queued: u32) -> StatusInfo {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let Ok(Reply::Status { status }) = client.call(Operation::Status(ops::Status {})).await
        else {
            panic!("status failed")
        };
        assert!(status.running <= status.max_parallel, "{status:?}");
        let in_dump = status
            .jobs
            .iter()
            .filter(|j| j.status == BackupStatus::Running)
            .all(|j| j.progress.phase == Phase::Dump);
        // The counts include restores and count a job as running from the
        // moment it has its slot; the list says which backups have begun.
        let listed = |s| status.jobs.iter().filter(|j| j.status == s).count() as u32;
        if status.running == running
            && status.queued == queued
            && listed(BackupStatus::Running) == running
            && listed(BackupStatus::Queued) == queued
            && in_dump
        {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {running} running and {queued} queued: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
