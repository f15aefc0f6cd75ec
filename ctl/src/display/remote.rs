//! Remotes: what one holds (`remote list`), the verdicts of `remote
//! verify`, and every remote's state (`remote status`).

use berkut_proto::wire::{RemoteArchive, RemoteInfo, RemoteVerdict};

use super::text::{bytes, duration, opt_time, printable, rfc3339};
use super::Show;

/// The archives a remote holds, as a table; JSON is one array.
impl Show for [RemoteArchive] {
    fn print(&self) {
        if self.is_empty() {
            println!("the remote holds no archives");
            return;
        }
        println!(
            "{:<27} {:>10}  {:<20}  {:<16}  HERE",
            "ID", "SIZE", "CREATED", "KEY"
        );
        for a in self {
            println!(
                "{:<27} {:>10}  {:<20}  {:<16}  {}",
                a.id.as_str(),
                bytes(a.size_bytes),
                rfc3339(a.created_at),
                a.key_id.as_deref().unwrap_or("-"),
                if a.known { "known" } else { "unknown" },
            );
            if let Some(problem) = &a.problem {
                println!("    problem: {}", printable(problem));
            }
        }
    }
}

impl Show for [RemoteVerdict] {
    fn print(&self) {
        if self.is_empty() {
            println!("the remote holds no archives");
        }
        for v in self {
            match &v.problem {
                None => println!("{}  ok", v.id),
                Some(p) => println!("{}  REFUSED: {}", v.id, printable(p)),
            }
        }
    }
}

impl Show for [RemoteInfo] {
    fn print(&self) {
        if self.is_empty() {
            println!("no remotes configured ([[remote]] in the configuration)");
        }
        for r in self {
            println!("{} ({} {})", r.name, r.kind, printable(&r.location));
            match &r.error {
                None => println!("  reachable: yes"),
                Some(e) => println!("  reachable: NO: {}", printable(e)),
            }
            println!(
                "  copies:    {} copied, {} pending, {} uploading, {} failed",
                r.copied, r.pending, r.uploading, r.failed
            );
            match r.uncopied_age_seconds {
                Some(age) => println!(
                    "  off-site:  the newest backup has waited {} for its copy",
                    duration(age)
                ),
                None => println!("  off-site:  the newest backup is copied"),
            }
            if let Some(e) = &r.last_error {
                println!(
                    "  last error: {} ({})",
                    printable(e),
                    opt_time(r.last_error_at)
                );
            }
        }
    }
}
