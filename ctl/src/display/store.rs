//! What the operations on the whole store report: `store rewrap` and
//! `store rescan`. Archives left out or a store alarm are also said on
//! stderr.

use berkut_proto::ids::BackupId;
use serde_json::json;

use super::json_line;
use super::text::list;

pub fn rewrapped(
    json: bool,
    rewrapped: &[BackupId],
    unchanged: u64,
    busy: &[BackupId],
    failed: &[BackupId],
) {
    if json {
        json_line(
            &json!({ "rewrapped": rewrapped, "unchanged": unchanged, "busy": busy, "failed": failed }),
        );
    } else {
        println!(
            "rewrapped {} archives; {unchanged} already under the primary key",
            rewrapped.len()
        );
        if !busy.is_empty() {
            println!("in use, left for a later run: {}", list(busy));
        }
    }
    if !failed.is_empty() {
        eprintln!(
            "berkutctl: could not rewrap (see the daemon's log): {}",
            list(failed)
        );
    }
}

pub fn rescanned(
    json: bool,
    found: &[BackupId],
    missing: &[BackupId],
    added: &[BackupId],
    unverified: &[BackupId],
    store_alarm: Option<&str>,
) {
    if json {
        json_line(&json!({
            "found": found, "missing": missing, "added": added,
            "unverified": unverified, "store_alarm": store_alarm,
        }));
    } else {
        println!(
            "found again: {}; still missing: {}; added: {}; not verifying: {}",
            found.len(),
            missing.len(),
            added.len(),
            unverified.len()
        );
        for (what, ids) in [
            ("found again", found),
            ("missing", missing),
            ("added", added),
            ("not verifying (see the daemon's log)", unverified),
        ] {
            if !ids.is_empty() {
                println!("{what}: {}", list(ids));
            }
        }
    }
    if let Some(alarm) = store_alarm {
        eprintln!("berkutctl: store alarm: {alarm}");
    }
}
