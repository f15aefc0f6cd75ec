//! `restore_start`: queues a dry-run or a real restore, and either answers
//! with the queued record or follows it to its end.
//!
//! A dry-run changes nothing live. Its database is a scratch copy, but the
//! roles of `with_globals` belong to the whole server: applied to the live
//! one they would bring back a dropped role, a revoked superuser, an old
//! password. So a dry-run applies roles only on a drill server
//! (`drill_database_url`) that is shown to be another server than the live
//! one (`separate_drill_server`), and is refused at once otherwise.

use std::sync::Arc;

use berkut_proto::wire::ops::RestoreStart;
use berkut_proto::wire::{Reply, Role};

use super::restore_status::follow;
use super::{Op, Responder};
use crate::db::Db;
use crate::error::OpError;
use crate::restore;
use crate::state::Daemon;

impl Op for RestoreStart {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        // A drill of the database alone touches nothing live. Roles are
        // the cluster's, and applying them can give back a revoked
        // privilege or an old password: admin only, dry-run or not.
        if self.dry_run && !self.with_globals {
            Role::Operator
        } else {
            Role::Admin
        }
    }

    fn target(&self) -> Option<String> {
        Some(self.backup_id.to_string())
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let RestoreStart {
            backup_id,
            dry_run,
            with_globals,
            wait,
        } = self;
        if dry_run && with_globals {
            separate_drill_server(daemon).await?;
        }
        // A backup whose local archive is gone comes back from a remote
        // holding a copy first.
        crate::remote::ops::fetch_for_restore(daemon, &backup_id).await?;
        let view = restore::submit(daemon, backup_id, dry_run, with_globals).await?;
        let restore = if wait {
            follow(view, resp).await?
        } else {
            view.borrow().clone()
        };
        Ok(Reply::Restore { restore })
    }
}

/// Succeeds only when dry-runs go to a drill server that is not the live
/// one.
///
/// A URL says little (another host name, a port, a database, a pooler may
/// all lead to the live server), and neither does `system_identifier`: a
/// drill server made from a base backup of the live one shares it. So the
/// daemon asks the servers themselves: it opens a connection to the live
/// server under a name no other session has, and looks for that session in
/// the drill server's `pg_stat_activity`, which lists every session of its
/// own server (process id and application name are visible to any role).
/// Found: the same server. When the question cannot be answered, the
/// answer is no.
async fn separate_drill_server(daemon: &Daemon) -> Result<(), OpError> {
    let restore::target::Server::Drill(drill) = restore::target::server(daemon, true) else {
        return Err(OpError::invalid(
            "a dry-run applies roles (with_globals) only on a separate drill server: roles \
             belong to the whole server, and applying them to the live one would change it. \
             Leave out with_globals, or configure drill_database_url with another server",
        ));
    };
    if same_server(&daemon.db, &drill).await? {
        return Err(OpError::invalid(
            "drill_database_url leads to the live server, so a dry-run with roles \
             (with_globals) would change the live server's roles; point drill_database_url \
             at another server, or leave out with_globals",
        ));
    }
    Ok(())
}

/// Whether `drill` is the server `live` is (see `separate_drill_server`):
/// `unavailable` when either cannot be reached, `invalid` when the drill
/// server does not let the question be answered.
async fn same_server(live: &Db, drill: &Db) -> Result<bool, OpError> {
    let unanswered = |e: tokio_postgres::Error| {
        OpError::invalid(
            "cannot tell whether the drill server is another server than the live one, so \
             roles (with_globals) are not applied in a dry-run; berkutd's role must be able \
             to read pg_stat_activity on both servers",
        )
        .with_source(&e)
    };
    let probe = live.connect_to(&live.database_name()).await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Digits and dashes only: safe to quote as a literal.
    let name = format!("berkutd-probe-{}-{nanos}", std::process::id());
    probe
        .batch_execute(&format!("SET application_name = '{name}'"))
        .await
        .map_err(unanswered)?;
    let pid: i32 = probe
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .await
        .map_err(unanswered)?
        .get(0);
    let other = drill.connect_to(&drill.database_name()).await?;
    let seen: i64 = other
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = $1 AND application_name = $2",
            &[&pid, &name],
        )
        .await
        .map_err(unanswered)?
        .get(0);
    // The probe session must live until the drill server was asked.
    drop(probe);
    Ok(seen > 0)
}
