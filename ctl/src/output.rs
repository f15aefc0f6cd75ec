//! Printing records for people and for scripts. JSON output is the records'
//! own serialisation, one object per line, so a script sees exactly the
//! fields the protocol documents.

use berkut_proto::wire::{BackupRecord, BackupStatus};
use serde::Serialize;

pub fn json_line<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).expect("records serialise")
    );
}

/// A time for people: RFC 3339 to the second (JSON output keeps full
/// precision).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A byte count for people: 1.5 GiB rather than 1610612736.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration for people: 3d 4h, 2h 5m, 40s.
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub fn status_word(s: BackupStatus) -> &'static str {
    match s {
        BackupStatus::Queued => "queued",
        BackupStatus::Running => "running",
        BackupStatus::Succeeded => "succeeded",
        BackupStatus::Failed => "failed",
        BackupStatus::Missing => "missing",
    }
}

pub fn print_record(r: &BackupRecord) {
    let opt = |t: Option<time::OffsetDateTime>| t.map(rfc3339).unwrap_or_else(|| "-".into());
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
    println!("started_at:    {}", opt(r.started_at));
    println!("finished_at:   {}", opt(r.finished_at));
    println!(
        "size:          {}",
        r.size_bytes.map(bytes).unwrap_or_else(|| "-".into())
    );
    println!("sha256:        {}", r.sha256.as_deref().unwrap_or("-"));
    println!("key_id:        {}", r.key_id.as_deref().unwrap_or("-"));
    println!("pinned:        {}", if r.pinned { "yes" } else { "no" });
    match &r.properties {
        Some(p) => {
            for (i, line) in p.describe().iter().enumerate() {
                let head = if i == 0 { "properties:" } else { "" };
                // Comments and setting values are the database's text:
                // no control character reaches the terminal.
                let line: String = line
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                println!("{head:<15}{line}");
            }
        }
        None if r.status == BackupStatus::Succeeded => {
            println!("properties:    not recorded (an archive made by an older berkutd)")
        }
        None => {}
    }
    if let Some(f) = &r.failure {
        println!("failure:       {}: {}", f.code, f.reason);
    }
}

pub fn print_table(records: &[BackupRecord]) {
    if records.is_empty() {
        println!("no backups");
        return;
    }
    println!(
        "{:<25}  {:<9}  {:<9}  {:<8}  {:>10}  {:<20}  LABEL",
        "ID", "STATUS", "ORIGIN", "SCOPE", "SIZE", "CREATED"
    );
    for r in records {
        println!(
            "{:<25}  {:<9}  {:<9}  {:<8}  {:>10}  {:<20}  {}",
            r.id,
            status_word(r.status),
            r.origin.as_str(),
            r.scope.as_str(),
            r.size_bytes.map(bytes).unwrap_or_else(|| "-".into()),
            rfc3339(r.created_at),
            r.label
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_human() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
    }
}
