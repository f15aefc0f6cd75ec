//! The berkutd binary: parses arguments, sets up logging, turns SIGTERM and
//! SIGINT into a shutdown, and hands over to `berkut_daemon::run`.

use std::path::PathBuf;

use anyhow::Context;
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
/// BERKUT_BACKUP_FILE_ROOTS, BERKUT_LOG); the environment wins.
#[derive(Parser)]
#[command(version, about, long_about)]
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
    let args = Args::parse();
    let config = berkut_daemon::config::Config::from_process(args.config.as_deref(), args.dev)
        .context("configuration")?;
    init_logging(&config.log_level);
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            trigger.cancel();
        });
        berkut_daemon::run(config, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
