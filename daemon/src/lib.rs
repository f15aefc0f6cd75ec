//! berkutd as a library: `run(config, shutdown)` is the whole daemon, so
//! tests and other programs can start it without the binary. `main.rs` only
//! parses arguments, sets up logging, takes the socket systemd passed, and
//! turns signals into `shutdown` and reload requests (`run_hosted`).
//!
//! See ARCHITECTURE.md for the map of the modules.

pub mod audit;
pub mod auth;
pub mod backup;
pub mod catalogue;
pub mod clock;
pub mod config;
pub mod connection;
pub mod db;
pub mod drill;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod handlers;
pub mod health;
pub mod inventory;
pub mod jobs;
pub mod leases;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod recovery;
pub mod reload;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod server;
pub mod state;
pub mod store;
pub mod tools;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::Db;
use crate::jobs::Jobs;
use crate::notify::{status_of, Notifier};
use crate::reload::Reloader;
use crate::server::Activation;
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
    #[error("cannot use the socket systemd passed: {0}")]
    Activation(std::io::Error),
    #[error("another berkutd uses the state directory {0}")]
    Locked(std::path::PathBuf),
    #[error(transparent)]
    Plan(#[from] schedule::plan::PlanFileError),
    #[error("{0}")]
    Setup(String),
}

/// What the hosting process hands the daemon besides its configuration.
pub struct Host {
    /// Cancelled to stop the daemon (SIGTERM).
    pub shutdown: CancellationToken,
    /// Reload requests (SIGHUP) and how to load; `None`: no reloads.
    pub reload: Option<Reloader>,
    /// The socket systemd passed, if any (`server::take_activation`).
    pub activation: Activation,
    pub notifier: Notifier,
    pub clock: Arc<dyn Clock>,
}

impl Host {
    /// A host with the system clock, the service manager named by the
    /// environment, no passed socket and no reloads.
    pub fn new(shutdown: CancellationToken) -> Host {
        Host {
            shutdown,
            reload: None,
            activation: Activation::None,
            notifier: Notifier::from_env(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Runs the daemon until `shutdown` is cancelled, with the system clock.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_hosted(config, Host::new(shutdown)).await
}

pub async fn run_with_clock(
    config: Config,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<(), DaemonError> {
    run_hosted(
        config,
        Host {
            clock,
            ..Host::new(shutdown)
        },
    )
    .await
}

/// Runs the daemon until `host.shutdown` is cancelled. `READY=1` is sent
/// only once the state is recovered and the socket listens; on shutdown the
/// listener closes at once, running jobs get the grace time, and the socket
/// file goes if this daemon created it.
pub async fn run_hosted(config: Config, host: Host) -> Result<(), DaemonError> {
    let Host {
        shutdown,
        reload,
        activation,
        notifier,
        clock,
    } = host;
    private_dir(&config.state_dir, "the state directory")?;
    private_dir(&config.backup_path, "the backup directory")?;
    let _lock = lock_state_dir(&config.state_dir)?;
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
    let recovery::Recovered {
        catalogue,
        scan: store_scan,
    } = recovery::recover(&config.state_dir, &store, &config.keyring, clock.now())?;
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
    if !runtime_dir.exists() {
        // Others reach the socket through its own mode and group; nobody
        // else may put anything beside it.
        std::fs::create_dir_all(&runtime_dir)
            .and_then(|()| {
                std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|source| DaemonError::Directory {
                what: "the runtime directory",
                path: runtime_dir.clone(),
                source,
            })?;
    }
    let maintenance = restore::maintenance::Maintenance::load(&config.state_dir, &runtime_dir);
    let socket_error = |source| DaemonError::Socket {
        path: config.socket.clone(),
        source,
    };
    let (listener, owned_socket) = match activation {
        Activation::Socket(fd) => {
            let listener = server::adopt(fd, &config.socket).map_err(DaemonError::Activation)?;
            tracing::info!("listening on the socket systemd passed (socket activation)");
            (listener, None)
        }
        other => {
            if let Activation::OtherPid(pid) = other {
                tracing::warn!(
                    listen_pid = %pid,
                    "LISTEN_PID names another process; ignoring the passed sockets and binding the socket itself"
                );
            }
            let (listener, owned) = server::bind_owned(&config.socket).map_err(socket_error)?;
            if let Some(group) = config.socket_group {
                server::set_socket_group(&config.socket, group).map_err(socket_error)?;
            }
            (listener, Some(owned))
        }
    };
    tracing::info!(
        socket = %config.socket.display(),
        backups = catalogue.len(),
        max_parallel = config.max_parallel,
        key_id = %config.keyring.primary().key_id(),
        database = %config.redacted_database_url(),
        "berkutd {} ready",
        env!("CARGO_PKG_VERSION")
    );
    let counters = metrics::counters::RunCounters::seed(&catalogue, &config.state_dir);
    let events = events::Events::new(Arc::clone(&clock));
    let daemon = Arc::new(Daemon {
        metrics: metrics::Metrics::new(counters),
        events,
        jobs: Jobs::new(config.max_parallel),
        catalogue: catalogue::SharedCatalogue::new(catalogue),
        store,
        db,
        audit: audit::Audit::new(&config.state_dir, audit::Limits::of(&config)),
        restores: Default::default(),
        downloads: Default::default(),
        pieces: crate::connection::Pieces::new(crate::connection::DOWNLOADS),
        uploads: Arc::new(crate::connection::Pieces::new(crate::connection::UPLOADS)),
        imports: tokio::sync::Semaphore::new(crate::handlers::backup_import::IMPORT_SLOTS),
        maintenance,
        drill_db,
        plan: tokio::sync::watch::Sender::new(plan),
        started_at: clock.now(),
        clock,
        shutdown: shutdown.clone(),
        scheduler_beat: Default::default(),
        scheduler_wake: Default::default(),
        health: Default::default(),
        replication: Default::default(),
        config: RwLock::new(Arc::new(config)),
    });
    daemon.health.set_store_alarm(store_scan.alarm);
    restore::recovery::recover(&daemon).await;
    daemon.events.configure(&daemon.config().notify);
    let (run_marker, crashed) = events::crash::RunMarker::begin(&daemon.config().state_dir);
    if crashed {
        tracing::warn!("the last run of berkutd ended without a clean stop");
        daemon.events.emit(
            events::Event::new(events::EventType::DaemonCrashedRestart)
                .reason("the last run of berkutd ended without a clean stop"),
        );
    }
    let textfile = tokio::spawn(health::supervised(Arc::clone(&daemon), "metrics", {
        let daemon = Arc::clone(&daemon);
        move || metrics::textfile::run(Arc::clone(&daemon))
    }));
    let rpo_watch = tokio::spawn(health::supervised(Arc::clone(&daemon), "rpo watch", {
        let daemon = Arc::clone(&daemon);
        move || events::rpo::watch(Arc::clone(&daemon))
    }));
    let notifier = Arc::new(notifier);
    // Background tasks that die are restarted (and flagged in `status`).
    let scheduler = tokio::spawn(health::supervised(Arc::clone(&daemon), "scheduler", {
        let (daemon, shutdown) = (Arc::clone(&daemon), shutdown.clone());
        move || schedule::runner::run(Arc::clone(&daemon), shutdown.clone())
    }));
    let replication = tokio::spawn(health::supervised(Arc::clone(&daemon), "replication", {
        let (daemon, shutdown) = (Arc::clone(&daemon), shutdown.clone());
        move || remote::replicate::run(Arc::clone(&daemon), shutdown.clone())
    }));
    let audit_bursts = {
        let (daemon, shutdown) = (Arc::clone(&daemon), shutdown.clone());
        tokio::spawn(async move { daemon.audit.flush_bursts(&shutdown).await })
    };
    notifier.ready(&status_of(&daemon));
    let supervisor = tokio::spawn(health::supervised(Arc::clone(&daemon), "supervisor", {
        let (daemon, notifier) = (Arc::clone(&daemon), Arc::clone(&notifier));
        move || notify::supervise(Arc::clone(&daemon), Arc::clone(&notifier))
    }));
    let reloads =
        reload.map(|r| tokio::spawn(reload::serve(Arc::clone(&daemon), r, Arc::clone(&notifier))));

    let connections = server::accept(Arc::clone(&daemon), listener, shutdown.clone()).await;
    // The listener is closed now; new clients are refused at once.
    if let Some(owned) = owned_socket {
        owned.remove();
    }
    let _ = scheduler.await;
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    let grace = daemon.config().shutdown_grace;
    let counts = *daemon.jobs.counts().borrow();
    tracing::info!(
        running = counts.running,
        queued = counts.queued,
        grace_seconds = grace.as_secs(),
        "stopping: queued jobs are cancelled, running ones may finish within the grace time"
    );
    notifier.stopping(&status_of(&daemon));
    let cancelled = daemon.jobs.shutdown(grace).await;
    // Uploads abort their multipart uploads when the token is cancelled;
    // their copies stay pending for the next start.
    let _ = replication.await;
    if tokio::time::timeout(CONNECTION_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    supervisor.abort();
    textfile.abort();
    rpo_watch.abort();
    // Denials still collapsing into bursts are written before the end.
    let _ = audit_bursts.await;
    daemon.audit.flush(true);
    run_marker.clean_stop();
    tracing::info!(cancelled, "stopped");
    Ok(())
}

/// Holds an exclusive lock on the state directory for the daemon's life,
/// so that two daemons never share a catalogue: not even while one of them
/// is stopping (its socket already closed) and another one starts.
fn lock_state_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let path = dir.join("berkutd.lock");
    // Never through a link planted at its name.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|source| DaemonError::Directory {
            what: "the state directory lock",
            path: path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| DaemonError::Locked(dir.to_owned()))
}

/// Creates a directory readable by the daemon's user only, or checks that
/// an existing one is not open to others: refused when others may write
/// to it, a warning when all users may read it.
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
    let meta = std::fs::metadata(path).map_err(fail)?;
    let mode = meta.permissions().mode();
    // Whoever may create files here may plant a link where the daemon
    // writes next; that is a refusal, not a warning.
    if let Some(whom) = writable_by_others(&meta) {
        return Err(DaemonError::Setup(format!(
            "{what} {} is writable by {whom} (mode {:o}); only berkutd's user may write \
             there: run `chmod go-w {}` (0700 or 0750) and start again",
            path.display(),
            mode & 0o7777,
            path.display()
        )));
    }
    if mode & 0o007 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "{what} is accessible to all users; it should be 0700 or 0750");
    }
    Ok(())
}

/// Who besides the daemon's user may write to a directory: every user
/// (`o+w`, sticky bit or not: it still lets anyone create a name), or the
/// members of a group that is neither root's nor the daemon's own (`g+w`).
fn writable_by_others(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    if mode & 0o002 != 0 {
        return Some("every user".into());
    }
    let own_gid = nix::unistd::getegid().as_raw();
    if mode & 0o020 != 0 && meta.gid() != 0 && meta.gid() != own_gid {
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid()))
            .ok()
            .flatten()
            .map_or_else(|| meta.gid().to_string(), |g| g.name);
        return Some(format!("the members of group {group}"));
    }
    None
}
