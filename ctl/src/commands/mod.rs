//! berkutctl's commands, one file per operation, named like the daemon's
//! handlers. Each returns the exit code for a completed operation, or an
//! error that `exit::report` prints. A command talks to the daemon and hands
//! what came back to `display`; what several commands share (the
//! connection, parsing ids, the expected replies, following a job) lives
//! here, so no command imports another.

pub mod archive;
pub mod audit;
pub mod backup_create;
pub mod backup_delete;
pub mod backup_download;
pub mod backup_import;
pub mod backup_list;
pub mod backup_pin;
pub mod backup_show;
pub mod drill_run;
pub mod job_attach;
pub mod key_generate;
pub mod maintenance_status;
pub mod metrics;
pub mod notify_test;
pub mod plan_enable;
pub mod plan_set;
pub mod plan_show;
pub mod remote;
pub mod restore_evidence_export;
pub mod restore_rollback;
pub mod restore_start;
pub mod restore_status;
pub mod status;
pub mod store_rescan;
pub mod store_rewrap;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::str::FromStr;

use anyhow::Context as _;
use berkut_proto::wire::{
    BackupRecord, Client, ClientError, ErrorBody, ErrorCode, Operation, PlanInfo, Reply,
    RestoreRecord, ServerMessage,
};

use crate::display;
use crate::display::progress::LiveView;

const DEFAULT_SOCKET: &str = "/run/berkut/berkutd.sock";
const DEV_SOCKET: &str = ".berkut-dev/berkutd.sock";

pub struct Context {
    socket: Option<PathBuf>,
    pub json: bool,
    on_behalf_of: Option<berkut_proto::wire::OnBehalfOf>,
}

impl Context {
    pub fn new(
        socket: Option<PathBuf>,
        json: bool,
        on_behalf_of: Option<berkut_proto::wire::OnBehalfOf>,
    ) -> Context {
        Context {
            socket,
            json,
            on_behalf_of,
        }
    }

    /// The socket to use: the one asked for, else the system one, else the
    /// development one when only that exists.
    pub fn socket(&self) -> PathBuf {
        if let Some(s) = &self.socket {
            return s.clone();
        }
        if !Path::new(DEFAULT_SOCKET).exists() && Path::new(DEV_SOCKET).exists() {
            return PathBuf::from(DEV_SOCKET);
        }
        PathBuf::from(DEFAULT_SOCKET)
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        let socket = self.socket();
        let mut client = Client::connect(&socket, concat!("berkutctl ", env!("CARGO_PKG_VERSION")))
            .await
            .with_context(|| format!("cannot talk to berkutd at {}", socket.display()))?;
        client.set_on_behalf_of(self.on_behalf_of.clone());
        Ok(client)
    }
}

/// Creates the file a command writes before it becomes `target`: beside
/// it (so the final rename stays on one file system), hidden, named after
/// it and `tag`, mode 0600, never an existing file (a link planted there is
/// not followed). The caller renames it into place once it is complete and
/// removes it otherwise.
pub fn create_beside(
    target: &std::path::Path,
    tag: &str,
) -> anyhow::Result<(std::fs::File, std::path::PathBuf)> {
    use anyhow::Context as _;
    use std::os::unix::fs::OpenOptionsExt;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("berkutctl");
    let tmp = target.with_file_name(format!(".{name}.{tag}.{}.partial", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok((file, tmp))
}

/// Parses an id typed by the user (a backup's or a restore's), with the
/// daemon's own rules, so a typo is caught before any request is sent.
pub fn parse_id<T>(text: &str) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|e| {
        anyhow::Error::new(ClientError::Server(ErrorBody::new(
            ErrorCode::Invalid,
            format!("{text:?} is {e}"),
        )))
    })
}

/// The answer the daemon gives about one thing; any other is an error.
fn unexpected<T>(other: Reply) -> anyhow::Result<T> {
    anyhow::bail!("unexpected reply from the daemon: {other:?}")
}

pub fn expect_backup(reply: Reply) -> anyhow::Result<BackupRecord> {
    match reply {
        Reply::Backup { backup } => Ok(backup),
        other => unexpected(other),
    }
}

pub fn expect_restore(reply: Reply) -> anyhow::Result<RestoreRecord> {
    match reply {
        Reply::Restore { restore } => Ok(restore),
        other => unexpected(other),
    }
}

pub fn expect_plan(reply: Reply) -> anyhow::Result<PlanInfo> {
    match reply {
        Reply::Plan { plan } => Ok(plan),
        other => unexpected(other),
    }
}

/// Sends a backup operation that streams progress (create, attach) and
/// shows it until the final record.
pub async fn follow_backup(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let view = LiveView::new(ctx.json);
    let reply = client.call_with_progress(op, |p| view.update(p)).await;
    view.finish();
    let record = expect_backup(reply?)?;
    Ok(display::finish(ctx.json, &record))
}

/// Sends a restore operation (start, status) and shows its progress until
/// the final record.
pub async fn follow_restore(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let view = LiveView::new(ctx.json);
    let reply = client
        .call_streaming(op, |m| {
            if let ServerMessage::RestoreProgress { restore, .. } = m {
                view.update(restore)
            }
        })
        .await;
    view.finish();
    let record = expect_restore(reply?)?;
    Ok(display::finish(ctx.json, &record))
}
