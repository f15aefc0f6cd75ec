//! Restores: the record with its steps, and the evidence kept of one.

use berkut_proto::wire::{Evidence, Reply, RestoreRecord, RestoreStatus, StepState};

use super::text::{opt_time, printable};
use super::{Outcome, Show};

impl Show for RestoreRecord {
    fn print(&self) {
        let r = self;
        println!("restore_id:    {}", r.restore_id);
        println!("backup:        {}", r.backup_id);
        println!(
            "kind:          {}",
            if r.dry_run { "dry-run" } else { "real restore" }
        );
        println!("status:        {}", r.status.as_str());
        println!(
            "database:      {} (scratch {})",
            r.database, r.scratch_database
        );
        if let Some(kept) = &r.rollback_database {
            println!("kept aside:    {kept}");
        }
        println!("started_at:    {}", opt_time(r.started_at));
        println!("finished_at:   {}", opt_time(r.finished_at));
        if let Some(f) = &r.failure {
            println!("failure:       {}: {}", f.code, f.reason);
        }
        if !r.redacted_files.is_empty() {
            println!(
                "redacted:      {} file(s) written back redacted (secret values replaced by \
                 BERKUT-REDACTED; not working copies):",
                r.redacted_files.len()
            );
            for f in &r.redacted_files {
                println!("               {}", printable(f));
            }
        }
        println!("steps:");
        for s in &r.steps {
            let took = match (s.started_at, s.finished_at) {
                (Some(a), Some(b)) => format!("{:.1}s", (b - a).as_seconds_f64()),
                _ => "".into(),
            };
            println!(
                "  {:<15} {:<8} {:>7}  {}",
                s.name,
                state_word(s.state),
                took,
                s.detail.as_deref().unwrap_or("")
            );
        }
        if !r.smoke_checks.is_empty() {
            println!("smoke checks:");
            for c in &r.smoke_checks {
                println!(
                    "  {:<6} {:>7}  {}: {}",
                    if c.passed { "passed" } else { "FAILED" },
                    format!("{:.1}s", c.duration_ms as f64 / 1000.0),
                    printable(&c.name),
                    c.message
                );
            }
        }
    }
}

/// A failed or interrupted restore is a failed command.
impl Outcome for RestoreRecord {
    fn failed(&self) -> bool {
        matches!(
            self.status,
            RestoreStatus::Failed | RestoreStatus::Interrupted
        )
    }

    fn failure_line(&self) -> Option<String> {
        let f = self.failure.as_ref()?;
        Some(format!(
            "restore {} {}: {}: {}",
            self.restore_id,
            self.status.as_str(),
            f.code,
            f.reason
        ))
    }
}

fn state_word(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "pending",
        StepState::Running => "running",
        StepState::Done => "done",
        StepState::Failed => "FAILED",
        StepState::Skipped => "skipped",
    }
}

impl Show for Evidence {
    fn print(&self) {
        let evidence = self;
        evidence.record.print();
        println!(
            "verdict:       {}",
            evidence.verdict.as_deref().unwrap_or("-")
        );
        println!(
            "archive:       sha256 {}",
            evidence.archive_sha256.as_deref().unwrap_or("-")
        );
        println!("digests:");
        for d in &evidence.digests {
            let mark = if d.expected == d.found {
                "ok"
            } else {
                "MISMATCH"
            };
            println!("  {:<16} {mark:<8} {}", d.part, d.found);
        }
        let differing: Vec<_> = evidence
            .counts
            .iter()
            .filter(|c| c.found.is_none() || (c.expected.is_some() && c.expected != c.found))
            .collect();
        println!(
            "row counts:    {} tables, {} differ",
            evidence.counts.len(),
            differing.len()
        );
        for c in differing {
            println!(
                "  {}.{}: expected {:?}, found {:?}",
                c.schema, c.table, c.expected, c.found
            );
        }
        match &evidence.digest {
            Some(d) if d.problems.is_empty() => {
                println!("DIGEST:        {} files match", d.matched)
            }
            Some(d) => {
                println!("DIGEST:        DOES NOT MATCH ({} files match)", d.matched);
                for p in &d.problems {
                    println!("  {}", printable(p));
                }
            }
            None => println!("DIGEST:        none (the restore runs, or an older berkutd kept it)"),
        }
        println!(
            "logs:          {} (with --json, their text)",
            evidence
                .logs
                .iter()
                .map(|l| l.step.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Why evidence fails `--verify`, if it does.
pub fn digest_failure(evidence: &Evidence) -> Option<String> {
    match &evidence.digest {
        None => Some(format!(
            "restore {} has no DIGEST to verify",
            evidence.record.restore_id
        )),
        Some(d) if !d.problems.is_empty() => Some(format!(
            "the evidence of restore {} does not match its DIGEST: {}",
            evidence.record.restore_id,
            printable(&d.problems.join("; "))
        )),
        Some(_) => None,
    }
}

/// Shows what `--export` wrote; returns why the export fails `--verify`,
/// if it does (its files do not match the DIGEST sent with them, or there
/// was none).
pub fn exported(json: bool, file: &std::path::Path, reply: &Reply) -> Option<String> {
    let Reply::EvidenceExported {
        restore_id,
        size_bytes,
        sha256,
        files,
        digest,
    } = reply
    else {
        return None;
    };
    if json {
        super::json_line(&serde_json::json!({
            "restore_id": restore_id,
            "file": file,
            "size_bytes": size_bytes,
            "sha256": sha256,
            "files": files,
            "digest": digest,
        }));
    } else {
        println!(
            "exported the evidence of {restore_id} to {} ({files} files; the tar {}, sha256 {sha256})",
            printable(&file.display().to_string()),
            super::text::bytes(*size_bytes)
        );
        match digest {
            Some(d) if d.problems.is_empty() => println!(
                "DIGEST:        {} files match; after `tar -xf`, `sha256sum -c DIGEST` in {restore_id}/ checks them",
                d.matched
            ),
            Some(d) => {
                println!("DIGEST:        DOES NOT MATCH ({} files match)", d.matched);
                for p in &d.problems {
                    println!("  {}", printable(p));
                }
            }
            None => println!("DIGEST:        none (an older berkutd kept this evidence)"),
        }
    }
    match digest {
        None => Some(format!("restore {restore_id} has no DIGEST to verify")),
        Some(d) if !d.problems.is_empty() => Some(format!(
            "the evidence of restore {restore_id} does not match its DIGEST (exported as it is): {}",
            printable(&d.problems.join("; "))
        )),
        Some(_) => None,
    }
}
