//! Maintenance mode (R6): while a real restore runs, ordinary operations are
//! refused with `maintenance`. The state lives in three places, each for a
//! reader: a watch channel (the connection gate and `maintenance_watch`),
//! `<state_dir>/maintenance.json` (so a crash mid-restore leaves it on until
//! recovery decides), and a flag file `maintenance` beside the socket that
//! the main application or a reverse proxy can test cheaply.

use std::path::{Path, PathBuf};

use berkut_proto::ids::RestoreId;
use berkut_proto::wire::MaintenanceInfo;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::error::OpError;

pub const FLAG_FILE: &str = "maintenance";
const STATE_FILE: &str = "maintenance.json";

pub struct Maintenance {
    tx: watch::Sender<MaintenanceInfo>,
    state_path: PathBuf,
    flag_path: PathBuf,
}

fn off() -> MaintenanceInfo {
    MaintenanceInfo {
        active: false,
        restore_id: None,
        since: None,
        reason: None,
    }
}

impl Maintenance {
    /// Loads the persisted state; a daemon that died in maintenance starts
    /// in maintenance (recovery may lift it).
    pub fn load(state_dir: &Path, runtime_dir: &Path) -> Maintenance {
        let state_path = state_dir.join(STATE_FILE);
        let info = std::fs::read(&state_path)
            .ok()
            .and_then(|t| serde_json::from_slice::<MaintenanceInfo>(&t).ok())
            .unwrap_or_else(off);
        let m = Maintenance {
            tx: watch::Sender::new(info.clone()),
            state_path,
            flag_path: runtime_dir.join(FLAG_FILE),
        };
        m.write_flag(&info);
        m
    }

    pub fn current(&self) -> MaintenanceInfo {
        self.tx.borrow().clone()
    }

    pub fn is_active(&self) -> bool {
        self.tx.borrow().active
    }

    pub fn subscribe(&self) -> watch::Receiver<MaintenanceInfo> {
        self.tx.subscribe()
    }

    pub fn begin(
        &self,
        restore_id: &RestoreId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), OpError> {
        self.set(MaintenanceInfo {
            active: true,
            restore_id: Some(restore_id.clone()),
            since: Some(now),
            reason: Some(reason.to_owned()),
        })
    }

    pub fn end(&self) -> Result<(), OpError> {
        self.set(off())
    }

    fn set(&self, info: MaintenanceInfo) -> Result<(), OpError> {
        let mut text = serde_json::to_vec_pretty(&info).expect("maintenance info serialises");
        text.push(b'\n');
        crate::fsutil::write_atomically(&self.state_path, &text).map_err(|e| {
            OpError::unavailable("the maintenance state could not be saved").with_detail(e)
        })?;
        self.write_flag(&info);
        tracing::info!(active = info.active, restore = ?info.restore_id, "maintenance mode changed");
        self.tx.send_replace(info);
        Ok(())
    }

    /// The flag file exists exactly while maintenance is on. Failing to
    /// write it is logged: the socket's answer is the authority.
    fn write_flag(&self, info: &MaintenanceInfo) {
        let result = if info.active {
            let text = serde_json::to_vec(info).expect("maintenance info serialises");
            crate::fsutil::write_atomically(&self.flag_path, &text)
        } else {
            match std::fs::remove_file(&self.flag_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, path = %self.flag_path.display(), "the maintenance flag file could not be updated");
        }
    }
}
