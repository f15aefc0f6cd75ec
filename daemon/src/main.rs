//! The berkutd binary: takes the socket systemd passed, parses arguments,
//! sets up logging, turns SIGTERM and SIGINT into a shutdown and SIGHUP into
//! a reload, and hands over to `berkut_daemon::run_hosted`.

use std::path::PathBuf;

use anyhow::Context;
use berkut_daemon::config::Config;
use berkut_daemon::reload::Reloader;
use berkut_daemon::{logging, server, Host};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// berkutd: encrypted, scheduled, verified backups of a PostgreSQL database.
///
/// Every configuration key can be set in the TOML file or in the environment
/// (BERKUT_BACKUP_PATH, BERKUT_BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY,
/// BERKUT_BACKUP_ENCRYPTION_KEY_FILE, BERKUT_BACKUP_PGDUMP_BIN,
/// BERKUT_BACKUP_MAX_PARALLEL, BERKUT_BACKUP_UPLOAD_MAX_BYTES,
/// BERKUT_DATABASE_URL, BERKUT_SOCKET, BERKUT_STATE_DIR,
/// BERKUT_BACKUP_FILE_ROOTS, BERKUT_LOG, BERKUT_SHUTDOWN_GRACE_SECONDS); the
/// environment wins.
///
/// Signals: SIGTERM or SIGINT stop the daemon (running jobs get
/// shutdown_grace_seconds to finish, then are cancelled); SIGHUP reloads the
/// configuration (a configuration that does not load is refused and the old
/// one stays). Under systemd it takes the socket berkutd.socket passes, sends
/// readiness, status and watchdog notifications, and logs to the journal.
#[derive(Parser)]
#[command(name = "berkutd", version, about, long_about)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Development mode: no configuration needed; state, socket and a
    /// generated key live under ./.berkut-dev/. Never use in production.
    #[arg(long)]
    dev: bool,
}

fn main() -> anyhow::Result<()> {
    // SAFETY: nothing has started a thread yet; the runtime is built below.
    let activation = unsafe { server::take_activation() }
        .context("the sockets passed by systemd (LISTEN_FDS)")?;
    let args = Args::parse();
    let config = Config::from_process(args.config.as_deref(), args.dev).context("configuration")?;
    let (log, sink) = logging::init(&config.log_level);
    tracing::debug!(?sink, "logging");
    if config.dev {
        tracing::warn!(
            "DEVELOPMENT MODE: the encryption key is generated and kept in {}/dev.key next to the backups. \
             Anyone who can read that directory can read every backup. Do not use --dev in production.",
            berkut_daemon::config::DEV_DIR
        );
    }
    tracing::debug!(config = ?config, "configuration loaded");
    // A file-size limit (or a quota) must fail a write with EFBIG, which the
    // daemon reports, rather than kill it with SIGXFSZ.
    // SAFETY: ignoring a signal installs no handler code.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        )?;
    }
    return_large_buffers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!("SIGTERM received"); break }
                    _ = int.recv() => { tracing::info!("SIGINT received"); break }
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP received: reloading the configuration");
                        // A reload already waiting covers this one too.
                        let _ = reload_tx.try_send(());
                    }
                }
            }
            trigger.cancel();
        });
        let (file, dev) = (args.config.clone(), args.dev);
        let host = Host {
            reload: Some(Reloader {
                requests: reload_rx,
                load: Box::new(move || Config::from_process(file.as_deref(), dev)),
                log: Some(log),
            }),
            activation,
            ..Host::new(shutdown)
        };
        berkut_daemon::run_hosted(config, host)
            .await
            .map_err(anyhow::Error::from)
    })
}

/// Makes the allocator serve buffers of a download piece's size (32 KiB)
/// and more straight from the kernel, so that what stalled clients held is
/// returned to the system when they close instead of staying in the heap,
/// fragmented, for the life of the process. A setting of the process, so it
/// is made here, before any thread, and not by the library.
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one of glibc's allocator parameters; no other
    // thread exists yet and it touches no memory of ours.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 32 * 1024);
    }
}
