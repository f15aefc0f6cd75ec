//! berkutctl's commands, one file per operation, named like the daemon's
//! handlers. Each returns the exit code for a completed operation, or an
//! error that `exit::report` prints.

pub mod archive;
pub mod audit;
pub mod backup_create;
pub mod backup_delete;
pub mod backup_download;
pub mod backup_import;
pub mod backup_list;
pub mod backup_pin;
pub mod backup_show;
pub mod job_attach;
pub mod key_generate;
pub mod maintenance_status;
pub mod plan_enable;
pub mod plan_set;
pub mod plan_show;
pub mod restore_rollback;
pub mod restore_start;
pub mod restore_status;
pub mod status;
pub mod store_rescan;
pub mod store_rewrap;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::ids::BackupId;
use berkut_proto::wire::{BackupRecord, BackupStatus, Client, ClientError, Reply};

use crate::{exit, output};

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

/// Parses an id typed by the user, with the daemon's own rules, so a typo is
/// caught before any request is sent.
pub fn parse_id(text: &str) -> anyhow::Result<BackupId> {
    text.parse::<BackupId>().map_err(|e| {
        anyhow::Error::new(ClientError::Server(berkut_proto::wire::ErrorBody::new(
            berkut_proto::wire::ErrorCode::Invalid,
            format!("{text:?} is {e}"),
        )))
    })
}

pub fn expect_backup(reply: Reply) -> anyhow::Result<BackupRecord> {
    match reply {
        Reply::Backup { backup } => Ok(backup),
        other => anyhow::bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// Prints a backup record and chooses the exit code: a failed backup is a
/// failed command.
pub fn finish_with_record(ctx: &Context, record: &BackupRecord) -> ExitCode {
    if ctx.json {
        output::json_line(record);
    } else {
        output::print_record(record);
    }
    if record.status == BackupStatus::Failed {
        if !ctx.json {
            if let Some(f) = &record.failure {
                eprintln!(
                    "berkutctl: backup {} failed: {}: {}",
                    record.id, f.code, f.reason
                );
            }
        }
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
