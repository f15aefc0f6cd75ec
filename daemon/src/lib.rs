//! berkutd as a library: `run(config, shutdown)` is the whole daemon, so
//! tests and other programs can start it without the binary. `main.rs` only
//! parses arguments, sets up logging and turns signals into `shutdown`.
//!
//! See ARCHITECTURE.md for the map of the modules.

pub mod auth;
pub mod backup;
pub mod catalogue;
pub mod clock;
pub mod config;
pub mod connection;
pub mod db;
pub mod error;
pub mod handlers;
pub mod jobs;
pub mod leases;
pub mod recovery;
pub mod restore;
pub mod schedule;
pub mod server;
pub mod state;
pub mod store;
pub mod tools;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::Policy;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::Db;
use crate::jobs::Jobs;
use crate::state::Daemon;
use crate::store::Store;

/// How long a stopping daemon waits for open connections to say their last
/// word after the jobs have ended.
const CONNECTION_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot prepare {what} {path}: {source}")]
    Directory {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalogue(#[from] catalogue::CatalogueError),
    #[error("cannot listen on {path}: {source}")]
    Socket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Plan(#[from] schedule::plan::PlanFileError),
    #[error("{0}")]
    Setup(String),
}

/// Runs the daemon until `shutdown` is cancelled, with the system clock.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with_clock(config, shutdown, Arc::new(SystemClock)).await
}

pub async fn run_with_clock(
    config: Config,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<(), DaemonError> {
    private_dir(&config.state_dir, "the state directory")?;
    private_dir(&config.backup_path, "the backup directory")?;
    let store = Store::open(&config.backup_path).map_err(|source| DaemonError::Directory {
        what: "the backup directory",
        path: config.backup_path.clone(),
        source,
    })?;
    let removed = store
        .remove_leftovers()
        .map_err(|source| DaemonError::Directory {
            what: "the backup directory",
            path: config.backup_path.clone(),
            source,
        })?;
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed partial archives left by backups that never finished"
        );
    }
    let catalogue = recovery::recover(&config.state_dir, &store, &config.keyring, clock.now())?;
    // A plan that cannot be read stops the start: running without the
    // plan an operator set would silently stop the automatic backups.
    let plan = schedule::plan::load(&config.state_dir)?;
    let db = Db::new(&config.database_url).map_err(|e| DaemonError::Setup(e.message))?;
    let drill_db = match &config.drill_database_url {
        Some(url) => Some(Db::new(url).map_err(|e| DaemonError::Setup(e.message))?),
        None => None,
    };
    let runtime_dir = config
        .socket
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| config.state_dir.clone());
    std::fs::create_dir_all(&runtime_dir).map_err(|source| DaemonError::Directory {
        what: "the runtime directory",
        path: runtime_dir.clone(),
        source,
    })?;
    let maintenance = restore::maintenance::Maintenance::load(&config.state_dir, &runtime_dir);
    let listener = server::bind(&config.socket).map_err(|source| DaemonError::Socket {
        path: config.socket.clone(),
        source,
    })?;
    tracing::info!(
        socket = %config.socket.display(),
        backups = catalogue.len(),
        max_parallel = config.max_parallel,
        key_id = %config.keyring.primary().key_id(),
        database = %config.redacted_database_url(),
        "berkutd {} ready",
        env!("CARGO_PKG_VERSION")
    );
    let socket = config.socket.clone();
    let daemon = Arc::new(Daemon {
        jobs: Jobs::new(config.max_parallel, shutdown.child_token()),
        catalogue: Mutex::new(catalogue),
        store,
        db,
        policy: Policy::current(),
        restores: Default::default(),
        downloads: Default::default(),
        maintenance,
        drill_db,
        plan: tokio::sync::watch::Sender::new(plan),
        started_at: clock.now(),
        clock,
        shutdown: shutdown.clone(),
        config,
    });
    restore::recovery::recover(&daemon).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    let scheduler = tokio::spawn(schedule::runner::run(Arc::clone(&daemon), shutdown.clone()));
    let connections = server::accept(Arc::clone(&daemon), listener, shutdown.clone()).await;
    let _ = scheduler.await;
    tracing::info!("stopping: cancelling jobs");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    daemon.jobs.shutdown().await;
    if tokio::time::timeout(CONNECTION_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    Ok(())
}

/// Creates a directory readable by the daemon's user only, or checks that
/// an existing one is not open to others.
fn private_dir(path: &Path, what: &'static str) -> Result<(), DaemonError> {
    let fail = |source| DaemonError::Directory {
        what,
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    let mode = std::fs::metadata(path).map_err(fail)?.permissions().mode();
    if mode & 0o007 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "{what} is accessible to all users; it should be 0700 or 0750");
    }
    Ok(())
}
