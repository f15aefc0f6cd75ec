//! berkutctl: the administrator's command line for berkutd. One file per
//! command under `commands/`, named like the daemon's handler for the same
//! operation; everything shown, for people on a terminal and as JSON with
//! `--json`, in `display/`; the exit code says what happened (see `exit`).

mod commands;
mod display;
mod exit;
mod keys;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::ops;

/// berkutctl: drive the berkutd backup daemon.
#[derive(Parser)]
#[command(name = "berkutctl", version, about, after_help = exit::HELP)]
pub struct Cli {
    /// The daemon's socket [default: /run/berkut/berkutd.sock, or
    /// ./.berkut-dev/berkutd.sock when only that one exists]
    #[arg(long, global = true, env = "BERKUT_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print JSON: one object per line, the final result last.
    #[arg(long, global = true)]
    json: bool,
    /// Act for a user of the main application (needs an `app` grant; for
    /// testing that path).
    #[arg(long, global = true, value_name = "USER", requires = "role")]
    on_behalf_of: Option<String>,
    /// That user's role: viewer, operator or admin.
    #[arg(long, global = true, value_name = "ROLE", requires = "on_behalf_of")]
    role: Option<berkut_proto::wire::Role>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the daemon's version, uptime and jobs.
    Status,
    /// Manage encryption keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create, list, show and delete backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Follow jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Show and change the automatic backup plan.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Restore a backup (or prove it restorable with --dry-run), and manage
    /// restores.
    Restore(RestoreArgs),
    /// See whether a restore holds the maintenance lock.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Read and check the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Operations on the whole archive store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Prove backups restorable: drills.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Work on archive files directly: no daemon, no database needed.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Off-site copies: what a remote holds, fetching and verifying copies.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Print the daemon's metrics in the Prometheus text format.
    Metrics,
    /// Check the notification sinks.
    #[command(subcommand)]
    Notify(NotifyCommand),
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// The archives a remote holds (from each header; no download),
    /// including ones this daemon has never seen.
    List { name: String },
    /// Download a copy, authenticate it whole and take it into the store.
    Fetch { name: String, id: String },
    /// Download and authenticate one copy, or all; exits 1 if one is refused.
    Verify { name: String, id: Option<String> },
    /// Every remote: reachable, copies by state, off-site lag, last error.
    Status,
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send a test event to every sink and report each one's result.
    Test,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The newest events.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
    },
    /// Check the hash chain from the first event; exits 1 at a break.
    Verify,
}

#[derive(Subcommand)]
enum DrillCommand {
    /// Drill a backup now (a dry-run restore and the smoke checks); without
    /// ID, the newest successful backup that has no passing drill yet.
    Run {
        id: Option<String>,
        /// Wait for the drill to end, showing its steps.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Re-wrap every archive not under the primary key, so an old key can
    /// be retired.
    Rewrap,
    /// Look at the backup directory again: missing backups whose archive
    /// is back (a mount came up) turn succeeded.
    Rescan,
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Show an archive's header (format, key id); needs no key.
    Inspect { file: PathBuf },
    /// Authenticate the whole archive and check every part's digest.
    Verify {
        file: PathBuf,
        /// A file holding the key (repeat for older keys).
        #[arg(long = "key-file", required = true)]
        key_files: Vec<PathBuf>,
        /// Also decompress every part and recompute its size and sha256
        /// (without it: every chunk authenticated, the structure and the
        /// manifest checked, which is all the encryption proves).
        #[arg(long)]
        deep: bool,
    },
    /// Write the dump, globals, log and manifest.json into a new directory,
    /// ready for plain pg_restore.
    Extract {
        file: PathBuf,
        #[arg(long = "key-file", required = true)]
        key_files: Vec<PathBuf>,
        /// The directory to create.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Re-wrap the archive's data key under another key, leaving the payload
    /// untouched, so the old key can be retired.
    Rewrap {
        file: PathBuf,
        /// The key the archive is wrapped with now.
        #[arg(long = "key-file", required = true)]
        key_files: Vec<PathBuf>,
        /// The key to wrap it with.
        #[arg(long)]
        new_key_file: PathBuf,
        /// Write here instead of replacing FILE.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct RestoreArgs {
    #[command(subcommand)]
    command: Option<RestoreCommand>,
    /// The backup to restore.
    id: Option<String>,
    /// Restore into a scratch database, check it, drop it: the live
    /// database is not touched.
    #[arg(long)]
    dry_run: bool,
    /// Apply the archived roles first (restoring into a fresh cluster).
    #[arg(long)]
    with_globals: bool,
    /// Wait for the restore to end, showing its steps.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
enum RestoreCommand {
    /// A restore's status and steps.
    Status {
        restore_id: String,
        /// Follow it to its end.
        #[arg(long)]
        wait: bool,
    },
    /// The evidence kept of a restore: digests, row counts, verdict, logs.
    Evidence {
        restore_id: String,
        /// Check the evidence against its DIGEST; fail when it does not
        /// match.
        #[arg(long)]
        verify: bool,
        /// Write the evidence directory (summary.json, logs/, DIGEST) to
        /// FILE as one tar archive for an auditor: FILE.tar.gz or .tgz is
        /// gzipped, .tar.zst or .tzst zstd-compressed, any other name a
        /// plain tar. After `tar -xf FILE`, `sha256sum -c DIGEST` in the
        /// restore's directory checks it.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// With --export, replace FILE if it exists.
        #[arg(long, requires = "export")]
        force: bool,
    },
    /// Put back the database a real restore replaced.
    Rollback { restore_id: String },
    /// Drop the database a real restore kept aside.
    Cleanup { restore_id: String },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Whether maintenance is on, since when and why.
    Status,
    /// Print every change of maintenance state until interrupted.
    Watch,
    /// Lift maintenance left on by an interrupted restore (after checking
    /// the database).
    Clear,
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Show the plan, its next run and its last success.
    Show,
    /// Set (and enable) the plan.
    Set(commands::plan_set::PlanArgs),
    /// Resume automatic backups (and retention).
    Enable,
    /// Stop automatic backups (and retention) until enabled again.
    Disable,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a new random 32-byte key in base64 (or write it to a file with
    /// mode 0600).
    Generate {
        /// Write the key to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Start a backup.
    Create {
        /// A label to recognise the backup by.
        #[arg(long, default_value = "")]
        label: String,
        /// full (database and roles), database, or schema (no data).
        #[arg(long, default_value = "full")]
        scope: Scope,
        /// Also archive the configured file roots.
        #[arg(long)]
        include_files: bool,
        /// Wait for the backup to finish, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// List backups, newest first.
    List,
    /// Show one backup.
    Show { id: String },
    /// Delete a backup's local archive (a record whose copy a remote holds
    /// stays), or its copies.
    Delete {
        id: String,
        /// Delete the copy on this remote instead.
        #[arg(long, value_name = "NAME", conflicts_with = "everywhere")]
        remote: Option<String>,
        /// Delete the local archive and every remote copy.
        #[arg(long)]
        everywhere: bool,
    },
    /// Download an archive to a file (written whole or not at all).
    Download {
        id: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Upload an archive into the store (verified completely first).
    Import { file: PathBuf },
    /// Keep a backup out of retention's reach.
    Pin { id: String },
    /// Let retention treat a backup like any other again.
    Unpin { id: String },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Follow a queued or running job to its end, showing its progress.
    Attach { id: String },
}

/// Keeps memory freed by one message for the next: every download piece
/// and upload frame is a buffer of a few hundred KiB, which glibc would
/// otherwise hand back to the kernel at once and fault in again, page by
/// page, for the next one (a tenth of a download's time). berkutctl lives
/// for one command, so holding its peak is harmless. Made on the only
/// thread there is (the runtime is single-threaded and starts none).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets glibc allocator parameters and touches no memory
    // of ours; no other thread allocates meanwhile.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 16 << 20);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    keep_freed_memory();
    exit::quiet_when_stdout_closes();
    let cli = Cli::parse();
    let on_behalf_of = match (cli.on_behalf_of.clone(), cli.role) {
        (Some(user), Some(role)) => Some(berkut_proto::wire::OnBehalfOf { user, role }),
        _ => None,
    };
    let ctx = commands::Context::new(cli.socket.clone(), cli.json, on_behalf_of);
    let result = match cli.command {
        Command::Status => commands::status::run(&ctx).await,
        Command::Key(KeyCommand::Generate { output }) => {
            commands::key_generate::run(&ctx, output.as_deref())
        }
        Command::Backup(BackupCommand::Create {
            label,
            scope,
            include_files,
            wait,
        }) => commands::backup_create::run(&ctx, label, scope, include_files, wait).await,
        Command::Backup(BackupCommand::List) => commands::backup_list::run(&ctx).await,
        Command::Backup(BackupCommand::Show { id }) => commands::backup_show::run(&ctx, &id).await,
        Command::Backup(BackupCommand::Delete {
            id,
            remote,
            everywhere,
        }) => commands::backup_delete::run(&ctx, &id, remote, everywhere).await,
        Command::Remote(RemoteCommand::List { name }) => commands::remote::list(&ctx, name).await,
        Command::Remote(RemoteCommand::Fetch { name, id }) => {
            commands::remote::fetch(&ctx, name, &id).await
        }
        Command::Remote(RemoteCommand::Verify { name, id }) => {
            commands::remote::verify(&ctx, name, id.as_deref()).await
        }
        Command::Remote(RemoteCommand::Status) => commands::remote::status(&ctx).await,
        Command::Job(JobCommand::Attach { id }) => commands::job_attach::run(&ctx, &id).await,
        Command::Backup(BackupCommand::Pin { id }) => commands::backup_pin::pin(&ctx, &id).await,
        Command::Backup(BackupCommand::Unpin { id }) => {
            commands::backup_pin::unpin(&ctx, &id).await
        }
        Command::Plan(PlanCommand::Show) => commands::plan_show::run(&ctx).await,
        Command::Backup(BackupCommand::Download { id, output }) => {
            commands::backup_download::run(&ctx, &id, &output).await
        }
        Command::Backup(BackupCommand::Import { file }) => {
            commands::backup_import::run(&ctx, &file).await
        }
        Command::Drill(DrillCommand::Run { id, wait }) => {
            commands::drill_run::run(&ctx, id.as_deref(), wait).await
        }
        Command::Store(StoreCommand::Rewrap) => commands::store_rewrap::run(&ctx).await,
        Command::Store(StoreCommand::Rescan) => commands::store_rescan::run(&ctx).await,
        Command::Metrics => commands::metrics::run(&ctx).await,
        Command::Notify(NotifyCommand::Test) => commands::notify_test::run(&ctx).await,
        Command::Audit(AuditCommand::Tail { lines }) => commands::audit::tail(&ctx, lines).await,
        Command::Audit(AuditCommand::Verify) => commands::audit::verify(&ctx).await,
        Command::Archive(ArchiveCommand::Inspect { file }) => {
            commands::archive::inspect(&ctx, &file)
        }
        Command::Archive(ArchiveCommand::Verify {
            file,
            key_files,
            deep,
        }) => commands::archive::verify(&ctx, &file, &key_files, deep),
        Command::Archive(ArchiveCommand::Extract {
            file,
            key_files,
            output,
        }) => commands::archive::extract(&ctx, &file, &key_files, &output),
        Command::Archive(ArchiveCommand::Rewrap {
            file,
            key_files,
            new_key_file,
            output,
        }) => commands::archive::rewrap(&ctx, &file, &key_files, &new_key_file, output.as_deref()),
        Command::Restore(RestoreArgs {
            command: Some(RestoreCommand::Status { restore_id, wait }),
            ..
        }) => commands::restore_status::run(&ctx, &restore_id, wait).await,
        Command::Restore(RestoreArgs {
            command:
                Some(RestoreCommand::Evidence {
                    restore_id,
                    verify,
                    export: Some(file),
                    force,
                }),
            ..
        }) => commands::restore_evidence_export::run(&ctx, &restore_id, &file, force, verify).await,
        Command::Restore(RestoreArgs {
            command:
                Some(RestoreCommand::Evidence {
                    restore_id,
                    verify,
                    export: None,
                    ..
                }),
            ..
        }) => commands::restore_status::evidence(&ctx, &restore_id, verify).await,
        Command::Restore(RestoreArgs {
            command: Some(RestoreCommand::Rollback { restore_id }),
            ..
        }) => commands::restore_rollback::rollback(&ctx, &restore_id).await,
        Command::Restore(RestoreArgs {
            command: Some(RestoreCommand::Cleanup { restore_id }),
            ..
        }) => commands::restore_rollback::cleanup(&ctx, &restore_id).await,
        Command::Restore(RestoreArgs {
            command: None,
            id,
            dry_run,
            with_globals,
            wait,
        }) => match id {
            Some(id) => commands::restore_start::run(&ctx, &id, dry_run, with_globals, wait).await,
            None => Err(anyhow::anyhow!(
                "name the backup to restore: berkutctl restore ID [--dry-run]"
            )),
        },
        Command::Maintenance(MaintenanceCommand::Status) => {
            commands::maintenance_status::run(
                &ctx,
                berkut_proto::wire::Operation::MaintenanceStatus(ops::MaintenanceStatus {}),
            )
            .await
        }
        Command::Maintenance(MaintenanceCommand::Watch) => {
            commands::maintenance_status::run(
                &ctx,
                berkut_proto::wire::Operation::MaintenanceWatch(ops::MaintenanceWatch {}),
            )
            .await
        }
        Command::Maintenance(MaintenanceCommand::Clear) => {
            commands::maintenance_status::run(
                &ctx,
                berkut_proto::wire::Operation::MaintenanceClear(ops::MaintenanceClear {}),
            )
            .await
        }
        Command::Plan(PlanCommand::Set(args)) => commands::plan_set::run(&ctx, args).await,
        Command::Plan(PlanCommand::Enable) => commands::plan_enable::enable(&ctx).await,
        Command::Plan(PlanCommand::Disable) => commands::plan_enable::disable(&ctx).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
