//! The daemon's status. Faults (the store alarm, a background task that
//! died, a drill failed or overdue) are also said on stderr, where
//! monitoring looks.

use berkut_proto::wire::StatusInfo;

use super::backup::status_word;
use super::text::{bytes, duration, printable, rfc3339};
use super::Show;

impl Show for StatusInfo {
    fn print(&self) {
        let status = self;
        println!(
            "berkutd {} (protocol {})",
            status.version, status.protocol_version
        );
        if status.dev_mode {
            println!("mode:      DEVELOPMENT (generated key; not for production)");
        }
        println!(
            "started:   {} (up {}s)",
            rfc3339(status.started_at),
            status.uptime_seconds
        );
        println!(
            "jobs:      {} running, {} queued, at most {} at once",
            status.running, status.queued, status.max_parallel
        );
        println!("backups:   {}", status.backups);
        match (status.newest_success_at, status.newest_success_age_seconds) {
            (Some(at), Some(age)) => {
                println!("newest:    {} ({} ago)", rfc3339(at), duration(age))
            }
            _ => println!("newest:    no successful backup yet"),
        }
        if let Some(limit) = status.rpo_limit_seconds {
            let verdict = if status.rpo_breached {
                "BREACHED"
            } else {
                "ok"
            };
            println!("rpo:       {verdict} (limit {})", duration(limit));
        }
        if let Some(limit) = status.offsite_rpo_limit_seconds {
            let verdict = if status.offsite_rpo_breached {
                "BREACHED"
            } else {
                "ok"
            };
            match status.offsite_uncopied_age_seconds {
                Some(age) => println!(
                    "off-site:  {verdict} (newest backup not yet copied everywhere for {}, limit {})",
                    duration(age),
                    duration(limit)
                ),
                None => println!("off-site:  {verdict} (limit {})", duration(limit)),
            }
        }
        match (&status.verified_backup, status.verified_age_seconds) {
            (Some(id), Some(age)) => println!(
                "verified:  {id} ({} ago): the newest backup a drill proved restorable",
                duration(age)
            ),
            _ => println!("verified:  no backup has passed a drill yet"),
        }
        if let (Some(d), Some(backup)) = (&status.last_drill, &status.last_drill_backup) {
            println!(
                "drill:     {} {} at {} in {}{}",
                d.result.as_str(),
                backup,
                rfc3339(d.at),
                duration(d.duration_seconds),
                if d.rto_exceeded {
                    " (longer than the RTO target)"
                } else {
                    ""
                }
            );
        }
        if status.drill_failed {
            let why = status
                .last_drill
                .as_ref()
                .and_then(|d| d.failure.as_ref())
                .map(|f| format!("{}: {}", f.code, printable(&f.reason)))
                .unwrap_or_default();
            println!("DRILL:     FAILED {why}");
            eprintln!("berkutctl: the last drill failed");
        }
        if status.drill_overdue {
            println!("DRILL:     OVERDUE: the newest successful backup has no drill verdict");
            eprintln!("berkutctl: a drill is overdue");
        }
        if status.missing > 0 {
            println!(
                "missing:   {} backups whose archive is not in the backup directory",
                status.missing
            );
        }
        if let Some(alarm) = &status.store_alarm {
            println!("ALARM:     {alarm}");
            eprintln!("berkutctl: store alarm: {alarm}");
        }
        for fault in &status.task_faults {
            println!(
                "FAULT:     {} died {} times, last at {}: {}",
                fault.task,
                fault.failures,
                rfc3339(fault.last_at),
                fault.message
            );
            eprintln!("berkutctl: the daemon's {} task died", fault.task);
        }
        for job in &status.jobs {
            println!(
                "  {}  {:<8} {:<10} {}/{} tables  {}",
                job.id,
                status_word(job.status),
                job.progress.phase.as_str(),
                job.progress.tables_done,
                job.progress.tables_total,
                bytes(job.progress.bytes_done)
            );
        }
    }
}
