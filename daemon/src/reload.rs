//! Reloading the configuration (SIGHUP, `systemctl reload berkutd`) without
//! dropping a connection or a job. The new configuration is loaded and
//! validated whole, and `plan.json` is re-read; if either fails, nothing
//! changes and the log says why. Otherwise the settings that can change at
//! runtime take effect (see `config::reload` for which), the log level
//! follows, and a changed plan goes to the scheduler. Settings that need a
//! restart are named in the log and keep their old value.
//!
//! Around it the service manager hears `RELOADING=1` and then `READY=1`.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{Config, ConfigError};
use crate::logging::LogControl;
use crate::notify::{status_of, Notifier};
use crate::state::Daemon;

/// Loads the configuration the way the process was started (file and
/// environment).
pub type Loader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// What the daemon needs to reload itself: the requests (one per SIGHUP;
/// several pending ones count as one), how to load, and the log filter to
/// adjust.
pub struct Reloader {
    pub requests: mpsc::Receiver<()>,
    pub load: Loader,
    pub log: Option<LogControl>,
}

/// Serves reload requests until their sender goes away.
pub async fn serve(daemon: Arc<Daemon>, mut reloader: Reloader, notifier: Arc<Notifier>) {
    while reloader.requests.recv().await.is_some() {
        if daemon.shutdown.is_cancelled() {
            continue;
        }
        notifier.reloading();
        // Loading reads a few small files (the configuration, a key file).
        let outcome = (reloader.load)()
            .map_err(|e| e.to_string())
            .and_then(|new| apply(&daemon, new, reloader.log.as_ref()));
        if let Err(reason) = outcome {
            tracing::error!(
                %reason,
                "configuration reload refused; the configuration in force stays"
            );
        }
        notifier.ready(&status_of(&daemon));
    }
}

fn apply(daemon: &Daemon, new: Config, log: Option<&LogControl>) -> Result<(), String> {
    let plan_changed = crate::schedule::reload_plan(daemon).map_err(|e| e.to_string())?;
    let reloaded = daemon.config().reloaded(new);
    if reloaded.applied.contains(&"log_level") {
        if let Some(log) = log {
            match log.set_level(&reloaded.config.log_level) {
                Ok(true) => {}
                Ok(false) => tracing::info!("RUST_LOG is set and overrides log_level"),
                Err(e) => return Err(e),
            }
        }
    }
    // Access grants take effect with the new configuration: every request
    // reads them from it.
    // The audit trail keeps its limits itself: they apply from its next
    // line, rotation and burst.
    daemon
        .audit
        .set_limits(crate::audit::Limits::of(&reloaded.config));
    // Sinks are set up again on every reload, changed or not: a secret
    // file rotated in place is read by the load and takes effect here.
    daemon.events.configure(&reloaded.config.notify);
    daemon.set_config(reloaded.config);
    // A new textfile path is written at once.
    daemon.metrics.touch();
    for name in &reloaded.needs_restart {
        tracing::warn!(
            setting = name,
            "changed in the configuration but takes effect only when berkutd restarts"
        );
    }
    tracing::info!(
        applied = ?reloaded.applied,
        needs_restart = ?reloaded.needs_restart,
        plan_changed,
        "configuration reloaded"
    );
    Ok(())
}
