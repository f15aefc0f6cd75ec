//! Clean-up of what killed test processes left behind.
//!
//! A test process killed by a timeout never runs `Drop`, so its server keeps
//! running and its directory stays. The first cluster a process starts first
//! looks for cluster directories whose owning process is gone, stops their
//! servers and removes them, and removes half-built templates whose builder
//! is gone. Only directories this user created are touched.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Once;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::{geteuid, Pid};

use crate::os::base_temp_dir;
use crate::pg::{stop_immediately, CLUSTER_PREFIX, OWNER_FILE};
use crate::template::template_name;

pub(crate) fn reap_leftovers_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(reap_leftovers);
}

fn reap_leftovers() {
    let Ok(entries) = fs::read_dir(base_temp_dir()) else {
        return;
    };
    let building = format!("{}.building-", template_name());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.starts_with(CLUSTER_PREFIX) {
            if owner_of_cluster(&path).is_some_and(is_dead) {
                stop_immediately(&path.join("data"));
                let _ = fs::remove_dir_all(&path);
            }
        } else if let Some(rest) = name.strip_prefix(&building) {
            let pid = rest.split('-').next().and_then(|p| p.parse().ok());
            if pid.is_some_and(is_dead) {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

/// The process id in a cluster's owner file, if this user wrote it.
fn owner_of_cluster(dir: &Path) -> Option<i32> {
    let file = dir.join(OWNER_FILE);
    if fs::metadata(&file).ok()?.uid() != geteuid().as_raw() {
        return None;
    }
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn is_dead(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
}
