//! Backups: one record, the table of them all, and the short answers of
//! the commands that change one (pin, delete, download).

use std::path::Path;

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::FileOutcome;
use berkut_proto::wire::{BackupRecord, BackupStatus};
use serde_json::json;

use super::text::{bytes, duration, opt_time, printable, rfc3339};
use super::{json_line, Outcome, Show};

pub fn status_word(s: BackupStatus) -> &'static str {
    match s {
        BackupStatus::Queued => "queued",
        BackupStatus::Running => "running",
        BackupStatus::Succeeded => "succeeded",
        BackupStatus::Failed => "failed",
        BackupStatus::Missing => "missing",
    }
}

impl Show for BackupRecord {
    fn print(&self) {
        let r = self;
        println!("id:            {}", r.id);
        println!("status:        {}", status_word(r.status));
        println!(
            "label:         {}",
            if r.label.is_empty() { "-" } else { &r.label }
        );
        println!("scope:         {}", r.scope.as_str());
        println!("include_files: {}", r.include_files);
        println!("origin:        {}", r.origin.as_str());
        println!("database:      {}", r.database.as_deref().unwrap_or("-"));
        println!("created_at:    {}", rfc3339(r.created_at));
        println!("started_at:    {}", opt_time(r.started_at));
        println!("finished_at:   {}", opt_time(r.finished_at));
        println!(
            "size:          {}",
            r.size_bytes.map(bytes).unwrap_or_else(|| "-".into())
        );
        println!("sha256:        {}", r.sha256.as_deref().unwrap_or("-"));
        println!("key_id:        {}", r.key_id.as_deref().unwrap_or("-"));
        println!("pinned:        {}", if r.pinned { "yes" } else { "no" });
        if r.remote_only {
            println!("local:         deleted; only remote copies remain (a restore fetches one)");
        }
        for c in &r.copies {
            let error = c
                .last_error
                .as_deref()
                .map(|e| format!(", last error: {}", printable(e)))
                .unwrap_or_default();
            println!(
                "copy:          {} {} since {} ({} attempts{error})",
                c.remote,
                c.state.as_str(),
                opt_time(c.at),
                c.attempts
            );
        }
        match &r.properties {
            Some(p) => {
                for (i, line) in p.describe().iter().enumerate() {
                    let head = if i == 0 { "properties:" } else { "" };
                    // Comments and setting values are the database's text.
                    println!("{head:<15}{}", printable(line));
                }
            }
            None if r.status == BackupStatus::Succeeded => {
                println!("properties:    not recorded (an archive made by an older berkutd)")
            }
            None => {}
        }
        if let Some(files) = &r.files {
            let redacted = files.redacted().count();
            let excluded = files
                .notable
                .iter()
                .filter(|f| f.outcome == FileOutcome::Excluded)
                .count();
            println!(
                "files:         {} archived as they are, {redacted} redacted, {excluded} left out",
                files.archived
            );
            // Names and keys are the files' own text.
            for f in &files.notable {
                let what = match f.outcome {
                    FileOutcome::Redacted => format!("values of {}", f.keys.join(", ")),
                    _ => f.reason.clone().unwrap_or_default(),
                };
                println!(
                    "  {:<9} {}: {}",
                    f.outcome.as_str(),
                    printable(&f.path),
                    printable(&what)
                );
            }
            if files.more > 0 {
                println!(
                    "  and {} more (the archive's manifest lists them all)",
                    files.more
                );
            }
        }
        if let Some(f) = &r.failure {
            println!("failure:       {}: {}", f.code, f.reason);
        }
        match &r.drill {
            Some(d) => {
                println!(
                    "drill:         {} at {} in {} (restore {}){}",
                    d.result.as_str(),
                    rfc3339(d.at),
                    duration(d.duration_seconds),
                    d.restore_id,
                    if d.rto_exceeded {
                        "; longer than the RTO target"
                    } else {
                        ""
                    }
                );
                if let Some(f) = &d.failure {
                    println!("drill failure: {}: {}", f.code, printable(&f.reason));
                }
            }
            None => println!("drill:         never"),
        }
        if let Some(e) = &r.expected_restore {
            let from = if e.backup_id == r.id {
                format!("measured by drill {}", e.restore_id)
            } else {
                format!(
                    "measured by drill {} of the nearest drilled backup {}",
                    e.restore_id, e.backup_id
                )
            };
            println!("restore time:  about {} ({from})", duration(e.seconds));
        } else if r.status == BackupStatus::Succeeded {
            println!("restore time:  unknown (no backup has passed a drill yet)");
        }
    }
}

/// The drill column: the verdict of the backup's last drill.
pub fn drill_word(r: &BackupRecord) -> &'static str {
    r.drill.as_ref().map_or("never", |d| d.result.as_str())
}

impl Outcome for BackupRecord {
    fn failed(&self) -> bool {
        self.status == BackupStatus::Failed
    }

    fn failure_line(&self) -> Option<String> {
        let f = self.failure.as_ref()?;
        Some(format!(
            "backup {} failed: {}: {}",
            self.id, f.code, f.reason
        ))
    }
}

/// Every backup, as a table; JSON is one array.
impl Show for [BackupRecord] {
    fn print(&self) {
        if self.is_empty() {
            println!("no backups");
            return;
        }
        println!(
            "{:<25}  {:<9}  {:<6}  {:<9}  {:<8}  {:>10}  {:<20}  LABEL",
            "ID", "STATUS", "DRILL", "ORIGIN", "SCOPE", "SIZE", "CREATED"
        );
        for r in self {
            println!(
                "{:<25}  {:<9}  {:<6}  {:<9}  {:<8}  {:>10}  {:<20}  {}",
                r.id,
                status_word(r.status),
                drill_word(r),
                r.origin.as_str(),
                r.scope.as_str(),
                r.size_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                rfc3339(r.created_at),
                r.label
            );
        }
    }
}

/// After pin or unpin: the record for scripts, one line for people.
pub fn pinned(json: bool, record: &BackupRecord) {
    if json {
        json_line(record);
    } else {
        println!(
            "{} {}",
            if record.pinned { "pinned" } else { "unpinned" },
            record.id
        );
    }
}

pub fn deleted(json: bool, id: &BackupId) {
    if json {
        json_line(&json!({ "deleted": id }));
    } else {
        println!("deleted {id}");
    }
}

pub fn downloaded(json: bool, id: &BackupId, file: &Path, size: u64, sha256: &str) {
    if json {
        json_line(&json!({ "id": id, "file": file, "size_bytes": size, "sha256": sha256 }));
    } else {
        println!(
            "downloaded {id} to {} ({}, sha256 {sha256})",
            file.display(),
            bytes(size)
        );
    }
}
