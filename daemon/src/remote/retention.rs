//! Each remote's own retention: its `retention_days` and
//! `keep_last_successful`, by the same pure rule as local retention
//! (`crate::retention::select`), over the backups it holds a copy of.
//! Pinned backups are kept everywhere, and so are backups fetched from a
//! remote (origin `remote`): their pins stayed on the machine that made
//! them. A record left with neither a local
//! archive nor any copy goes with its last copy. Without `retention_days`
//! a remote keeps everything.

use berkut_proto::manifest::Origin;
use berkut_proto::wire::{BackupStatus, CopyState};

use crate::retention::{select, Candidate, Rule};
use crate::state::Daemon;

pub async fn apply(daemon: &Daemon) {
    let config = daemon.config();
    let now = daemon.now();
    for remote in &config.remotes {
        let Some(days) = remote.retention_days else {
            continue;
        };
        let rule = Rule {
            retention_days: days,
            keep_last_successful: remote.keep_last_successful.unwrap_or(0),
        };
        let candidates: Vec<Candidate> = daemon.catalogue.read(|cat| {
            cat.list()
                .filter(|e| {
                    e.copies.iter().any(|c| {
                        c.record.remote == remote.name && c.record.state == CopyState::Copied
                    })
                })
                .map(|e| Candidate {
                    id: e.id.clone(),
                    created_at: e.state.created_at(),
                    // A remote-only backup is a good backup in the remote.
                    status: if e.remote_only {
                        BackupStatus::Succeeded
                    } else {
                        e.state.status()
                    },
                    // A backup fetched from a remote belongs to the
                    // history of whoever made it (a lost machine, whose
                    // pins did not travel): this daemon never deletes it
                    // from the remotes.
                    pinned: e.pinned || e.origin == Origin::Remote,
                    busy: daemon.backup_busy(&e.id),
                })
                .collect()
        });
        for (id, reason) in select(&candidates, rule, now) {
            match super::ops::delete_copy(daemon, &id, &remote.name).await {
                Ok(()) => {
                    tracing::info!(backup = %id, remote = %remote.name, %reason, "remote retention deleted a copy")
                }
                Err(e) => {
                    tracing::warn!(backup = %id, remote = %remote.name, error = %e, "remote retention could not delete a copy")
                }
            }
        }
    }
}
