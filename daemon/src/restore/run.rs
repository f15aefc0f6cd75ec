//! The steps of one restore, in order. Everything that could refuse the
//! archive (verify, decrypt, inspect) runs before anything is touched:
//! maintenance, the scratch database and the live one. The dump is restored
//! into a scratch database beside the live one, section by section, checked,
//! and only then, for a real restore, swapped in by renaming.

use std::path::PathBuf;
use std::sync::Arc;

use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::manifest::Manifest;
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::archive::{self, Decrypted};
use super::checks;
use super::files;
use super::load;
use super::pg::{apply_globals, pg_restore_list, restore_dump, restore_in_parts, Dump};
use super::properties;
use super::record::{SwapPhase, Tracker};
use super::smoke;
use super::sql::Admin;
use super::step::Step;
use super::toc;
use crate::db::Db;
use crate::error::OpError;
use crate::jobs::Kind;
use crate::state::Daemon;
use crate::tools::{self, ChildSlot};

/// What a restore was asked to do, decided when it was accepted.
#[derive(Clone, Debug)]
pub struct Params {
    pub restore_id: RestoreId,
    pub backup_id: BackupId,
    pub dry_run: bool,
    pub with_globals: bool,
    /// The server it works on, chosen once when it was accepted.
    pub server: super::target::Server,
    /// The live database's name.
    pub live: String,
    pub scratch: String,
    /// The name the live database is kept under after the swap.
    pub old: String,
    /// The archive's sha256 as the catalogue recorded it.
    pub recorded_sha256: Option<String>,
}

/// Runs every step; returns when the restore succeeded, or with the first
/// error (the caller cleans up).
pub async fn run(
    daemon: &Arc<Daemon>,
    tracker: &Arc<Tracker>,
    p: &Params,
    slot: &Arc<ChildSlot>,
    cancel: &CancellationToken,
) -> Result<(), OpError> {
    let target: Db = p.server.db().clone();
    let archive_path = daemon.store.archive_path(&p.backup_id);

    // One pass over the archive: every chunk authenticated, every digest
    // checked, and (for pg_restore -j, which seeks) the dump decrypted into
    // a private file on the way. It is used only once the whole archive has
    // verified. With one job the dump is streamed into pg_restore later and
    // no plaintext file is written at all.
    let streamed = daemon.config().restore_jobs <= 1;
    tracker.begin(Step::Verify, daemon.now());
    tracker.begin(Step::Decrypt, daemon.now());
    let (verified, decrypted) = {
        let (d, path, sha, t, name) = (
            Arc::clone(daemon),
            archive_path.clone(),
            p.recorded_sha256.clone(),
            Arc::clone(tracker),
            p.restore_id.to_string(),
        );
        let tmp = tmp_root(&daemon.config().state_dir);
        blocking(move || {
            let keep = archive::Keep {
                tmp_root: &tmp,
                name: &name,
                dump: !streamed,
            };
            archive::verify_keeping(
                &path,
                &d.config().keyring,
                sha.as_deref(),
                Some(keep),
                |n| t.progress(Step::Decrypt, n, None),
            )
        })
        .await?
    };
    let decrypted: Decrypted = decrypted.expect("asked to keep the dump");
    tracker.update(|s| {
        s.archive_sha256 = Some(verified.sha256.clone());
        s.digests = verified.digests.clone();
    });
    let mut log = tracker.log(Step::Verify);
    for d in &verified.digests {
        log.line(&format!(
            "{} expected {} found {}",
            d.part, d.expected, d.found
        ));
    }
    log.line(&format!("archive sha256 {}", verified.sha256));
    tracker.finish(
        Step::Verify,
        daemon.now(),
        format!(
            "{} parts authenticated; every digest matches the manifest",
            verified.digests.len()
        ),
    );
    tracker.finish(
        Step::Decrypt,
        daemon.now(),
        if decrypted.on_disk {
            "the dump is in a private temporary file until the restore ends"
        } else {
            "the dump is streamed from the archive into pg_restore; no temporary file"
        },
    );
    let manifest = verified.manifest;
    let dump = if decrypted.on_disk {
        Dump::File(decrypted.dump.path.clone())
    } else {
        let part = manifest
            .part(berkut_proto::manifest::PartKind::Dump)
            .ok_or_else(|| OpError::invalid("the archive holds no database dump"))?;
        Dump::Streamed {
            archive: archive_path.clone(),
            keyring: daemon.config().keyring.clone(),
            part: part.name.clone(),
            size: part.size,
        }
    };

    tracker.begin(Step::Inspect, daemon.now());
    let listing = pg_restore_list(daemon, &dump, slot).await?;
    tracker.log(Step::Inspect).line(&listing);
    // The tables come from the archive's own table of contents: the
    // listing's words cannot be split back into names reliably.
    let toc = {
        let dump = dump.clone();
        blocking(move || {
            Ok(match &dump {
                Dump::File(path) => toc::read(path),
                // The table of contents is at the start of the dump: only
                // that much of the archive is read.
                Dump::Streamed {
                    archive,
                    keyring,
                    part,
                    size,
                } => archive::with_part(archive, keyring, part, *size, |r| Ok(toc::parse(r)))
                    .map_err(|e| OpError::invalid("the dump could not be read").with_detail(e))?,
            })
        })
        .await?
    };
    let toc = match toc {
        Ok(toc) => Some(toc),
        Err(e) => {
            // pg_restore reads the dump (the listing above); only the
            // table list falls back to the restored database's catalog.
            tracker.log(Step::Inspect).line(&format!(
                "{e}; the tables to check are taken from the restored database"
            ));
            None
        }
    };
    let data_entries = toc.as_ref().map_or(0, |t| t.data_entries()) as u64;
    tracker.finish(
        Step::Inspect,
        daemon.now(),
        match &toc {
            Some(t) => format!(
                "pg_restore reads the dump: {} entries, {data_entries} with table data",
                t.count
            ),
            None => "pg_restore reads the dump".to_owned(),
        },
    );

    if !p.dry_run {
        daemon.maintenance.begin(
            &p.restore_id,
            &format!("restoring backup {} into {}", p.backup_id, p.live),
            daemon.now(),
        )?;
        tracker.update(|s| s.maintenance = true);
    }

    match (&decrypted.globals, p.with_globals) {
        (Some(globals), true) => {
            tracker.begin(Step::Globals, daemon.now());
            let applied = apply_globals(daemon, &target, tracker, globals, slot).await?;
            tracker.finish(Step::Globals, daemon.now(), applied);
        }
        (None, true) => {
            return Err(OpError::invalid(
                "the backup holds no globals (its scope is not full)",
            ))
        }
        _ => tracker.skip(Step::Globals, "not asked for"),
    }

    tracker.begin(Step::CreateDatabase, daemon.now());
    let admin = Admin::connect(&target).await?;
    let mut applied = properties::Applied::default();
    properties::create(
        &admin,
        &p.scratch,
        &p.live,
        manifest.properties.as_ref(),
        &mut applied,
    )
    .await?;
    tracker.finish(
        Step::CreateDatabase,
        daemon.now(),
        match manifest.properties {
            Some(_) => format!(
                "created {} with the recorded encoding, locale and owner",
                p.scratch
            ),
            None => format!("created {}", p.scratch),
        },
    );

    // The daemon loads the rows itself when it can (every connection works
    // on the largest table, not one); otherwise one pg_restore restores all
    // three sections, its verbose output moving the steps on.
    tracker.begin(Step::PreData, daemon.now());
    let plan = match (&dump, &toc) {
        (Dump::File(path), Some(toc)) => load::Plan::of(toc).map(|plan| (path, plan)),
        (Dump::Streamed { .. }, _) => Err("the dump is streamed (restore_jobs = 1)".to_owned()),
        (_, None) => Err("its table of contents could not be read".to_owned()),
    };
    match plan {
        Ok((path, plan)) => {
            restore_in_parts(
                daemon, &target, tracker, p, path, plan, &listing, slot, cancel,
            )
            .await?
        }
        Err(why) => {
            tracker
                .log(Step::PreData)
                .line(&format!("pg_restore loads the table data: {why}"));
            restore_dump(daemon, &target, tracker, p, &dump, data_entries, slot).await?
        }
    }

    apply_properties(daemon, tracker, &admin, &target, p, &manifest, &mut applied).await?;

    let has_files = manifest
        .part(berkut_proto::manifest::PartKind::Files)
        .is_some();
    let staged = files::staging(&daemon.config().file_roots, p.restore_id.suffix());
    if has_files {
        tracker.begin(Step::Files, daemon.now());
        let dry_dir = p
            .dry_run
            .then(|| decrypted.dump.path.with_file_name("files"));
        let (d, path, m, st) = (
            Arc::clone(daemon),
            archive_path.clone(),
            manifest.clone(),
            staged.clone(),
        );
        let (count, redacted) = blocking(move || {
            files::unpack(&path, &d.config().keyring, &m, &st, dry_dir.as_deref())
        })
        .await?;
        let where_to = if p.dry_run {
            "into a temporary directory"
        } else {
            "beside the live roots"
        };
        let mut detail = format!("{count} entries unpacked {where_to}");
        if !redacted.is_empty() {
            // Nobody should take a redacted file for a working one.
            let shown: Vec<&str> = redacted.iter().take(10).map(String::as_str).collect();
            let more = redacted.len().saturating_sub(shown.len());
            detail += &format!(
                "; {} written back redacted (secret values replaced by {}, not working \
                 copies): {}{}",
                redacted.len(),
                crate::backup::redact::MARKER,
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
        // The evidence keeps what the backup did to the files.
        let mut log = tracker.log(Step::Files);
        for f in &manifest.files {
            match f.outcome {
                berkut_proto::manifest::FileOutcome::Archived => {}
                berkut_proto::manifest::FileOutcome::Redacted => log.line(&format!(
                    "redacted at backup time: {} (values of: {})",
                    f.path,
                    f.keys.join(", ")
                )),
                berkut_proto::manifest::FileOutcome::Excluded => log.line(&format!(
                    "left out at backup time: {}: {}",
                    f.path,
                    f.reason.as_deref().unwrap_or("")
                )),
            }
        }
        drop(log);
        let kept = redacted
            .len()
            .min(berkut_proto::manifest::SUMMARY_MAX_ENTRIES);
        tracker.update(|s| s.record.redacted_files = redacted[..kept].to_vec());
        tracker.finish(Step::Files, daemon.now(), detail);
    } else {
        tracker.skip(Step::Files, "the backup holds no files");
    }

    tracker.begin(Step::SmokeChecks, daemon.now());
    let smoke = smoke::check(
        &target,
        &p.scratch,
        &manifest,
        toc.as_ref(),
        daemon.config().restore_jobs as usize,
    )
    .await?;
    let mut log = tracker.log(Step::SmokeChecks);
    for c in &smoke.counts {
        log.line(&c.describe());
    }
    for problem in &smoke.problems {
        log.line(problem);
    }
    let summary = smoke.summary();
    tracker.update(|s| s.counts = smoke.counts.clone());
    if let Some(first) = smoke.first_problem() {
        return Err(OpError::new(
            berkut_proto::wire::ErrorCode::Internal,
            format!("smoke checks failed: {summary} (first: {first})"),
        ));
    }
    let summary = compare(tracker, &admin, &target, p, &manifest, &applied, summary).await?;
    let summary = operator_checks(daemon, tracker, &target, p, summary).await?;
    tracker.finish(Step::SmokeChecks, daemon.now(), summary);

    if p.dry_run {
        tracker.skip(Step::Swap, "a dry-run never touches the live database");
    } else {
        tracker.begin(Step::Swap, daemon.now());
        // Held until the swap is over: no backup runs or starts meanwhile.
        let _quiet = quiesce(daemon, Some(tracker), 1, cancel).await?;
        tracker.update(|s| s.swap = SwapPhase::Started);
        let closed = daemon.db.close_idle();
        tracing::debug!(
            closed,
            "closed the daemon's idle connections to the live database"
        );
        let (ended, kept) = admin.swap(&p.live, &p.scratch, &p.old).await?;
        tracker.update(|s| {
            s.swap = SwapPhase::Done;
            s.record.rollback_database = kept.then(|| p.old.clone());
        });
        let detail = if kept {
            format!("{} is now the restored database; application sessions ended: {ended}; the old one is kept as {}", p.live, p.old)
        } else {
            format!(
                "{} is now the restored database (there was none before)",
                p.live
            )
        };
        if has_files {
            files::swap(&staged)?;
        }
        tracker.finish(Step::Swap, daemon.now(), detail);
    }

    tracker.begin(Step::Cleanup, daemon.now());
    drop(decrypted);
    if p.dry_run {
        admin.drop(&p.scratch).await?;
        tracker.finish(
            Step::Cleanup,
            daemon.now(),
            format!("dropped {} and the decrypted dump", p.scratch),
        );
    } else {
        tracker.finish(Step::Cleanup, daemon.now(), "removed the decrypted dump");
    }
    Ok(())
}

/// Waits until no other job of the daemon runs, then holds every job slot
/// but `own`, so that renaming the live database cuts off no backup (its
/// `pg_dump` and its snapshot are sessions on that database) and none starts
/// until the permit is dropped. Queued jobs ahead run first. While it
/// waits, the swap step says so.
pub async fn quiesce(
    daemon: &Daemon,
    tracker: Option<&Tracker>,
    own: usize,
    cancel: &CancellationToken,
) -> Result<OwnedSemaphorePermit, OpError> {
    let mut wait = Box::pin(daemon.jobs.hold_others(own));
    let permit = match (&mut wait).now_or_never() {
        Some(permit) => permit,
        None => {
            let backups = daemon.jobs.running(Kind::Backup);
            let drills = daemon.jobs.running(Kind::Drill);
            let many =
                |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            let what = format!(
                "waiting for running backups and drills to finish before the swap: {}, {} running",
                many(backups, "backup"),
                many(drills, "drill")
            );
            tracing::info!("{what}");
            if let Some(t) = tracker {
                t.note(Step::Swap, what);
            }
            tokio::select! {
                permit = &mut wait => permit,
                _ = cancel.cancelled() => return Err(tools::shutdown_error()),
            }
        }
    };
    permit.map_err(|_| tools::shutdown_error())
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(OpError::internal(format!("restore step panicked: {e}"))))
}

/// Where decrypted dumps live while a restore needs them.
pub fn tmp_root(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("tmp")
}

/// The database's own properties, then its statistics, before anything can
/// go live: a restored database that lets PUBLIC connect, or that the
/// planner knows nothing about, is not the database that was backed up.
async fn apply_properties(
    daemon: &Arc<Daemon>,
    tracker: &Arc<Tracker>,
    admin: &Admin,
    target: &Db,
    p: &Params,
    manifest: &Manifest,
    applied: &mut properties::Applied,
) -> Result<(), OpError> {
    match &manifest.properties {
        Some(recorded) => {
            tracker.begin(Step::Properties, daemon.now());
            properties::apply(admin, &p.scratch, recorded, applied).await?;
            let mut log = tracker.log(Step::Properties);
            for line in recorded.describe() {
                log.line(&format!("recorded: {line}"));
            }
            for line in &applied.done {
                log.line(&format!("applied: {line}"));
            }
            for line in &applied.warnings {
                log.line(&format!("warning: {line}"));
            }
            let detail = match applied.warnings.len() {
                0 => format!("applied: {}", applied.done.join(", ")),
                n => format!(
                    "applied: {}; {n} not applied: {}",
                    applied.done.join(", "),
                    applied.warnings.join("; ")
                ),
            };
            tracker.finish(Step::Properties, daemon.now(), detail);
        }
        None => tracker.skip(
            Step::Properties,
            "the backup did not record the database's properties (it was made by an older berkutd); \
             the database has the server's defaults",
        ),
    }
    if daemon.config().restore_analyze {
        tracker.begin(Step::Analyze, daemon.now());
        let started = std::time::Instant::now();
        let n =
            properties::analyze(target, &p.scratch, daemon.config().restore_jobs as usize).await?;
        tracker.finish(
            Step::Analyze,
            daemon.now(),
            format!(
                "planner statistics gathered for {n} tables in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
        );
    } else {
        tracker.skip(Step::Analyze, "turned off (restore_analyze = false)");
    }
    Ok(())
}

/// Compares the objects by kind and the database's properties with what
/// the backup recorded; returns the smoke checks' summary, completed.
async fn compare(
    tracker: &Arc<Tracker>,
    admin: &Admin,
    target: &Db,
    p: &Params,
    manifest: &Manifest,
    applied: &properties::Applied,
    summary: String,
) -> Result<String, OpError> {
    let differences = properties::compare(target, admin, &p.scratch, manifest, applied).await?;
    let mut log = tracker.log(Step::SmokeChecks);
    for d in &differences {
        log.line(&format!("differs: {d}"));
    }
    for w in &applied.warnings {
        log.line(&format!("not checked (the server could not take it): {w}"));
    }
    if !differences.is_empty() {
        return Err(OpError::new(
            berkut_proto::wire::ErrorCode::Internal,
            format!(
                "smoke checks failed: the restored database differs from the backup in {} ways: {}",
                differences.len(),
                first_few(&differences)
            ),
        ));
    }
    Ok(match (&manifest.objects, &manifest.properties) {
        (Some(_), Some(_)) => {
            format!("{summary}; objects by kind and the database's properties match")
        }
        (Some(_), None) => format!("{summary}; objects by kind match"),
        _ => summary,
    })
}

/// The operator's own checks (`[[smoke_check]]`), recorded in the record
/// and the step's log; any failed one fails the restore here, before the
/// swap. Returns the smoke checks' summary, completed.
async fn operator_checks(
    daemon: &Arc<Daemon>,
    tracker: &Arc<Tracker>,
    target: &Db,
    p: &Params,
    summary: String,
) -> Result<String, OpError> {
    let config = daemon.config();
    if config.smoke_checks.is_empty() {
        return Ok(summary);
    }
    let results = checks::run(
        target,
        &p.scratch,
        &config.smoke_checks,
        config.smoke_check_timeout,
        p.restore_id.as_str(),
    )
    .await;
    let mut log = tracker.log(Step::SmokeChecks);
    for r in &results {
        log.line(&format!(
            "smoke check {:?}: {} ({} ms)",
            r.name, r.message, r.duration_ms
        ));
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let total = results.len();
    tracker.update(|s| s.record.smoke_checks = results.clone());
    if let Some(reason) = checks::verdict(&results) {
        return Err(OpError::new(
            berkut_proto::wire::ErrorCode::Internal,
            format!("smoke checks failed: {reason}"),
        ));
    }
    Ok(format!(
        "{summary}; {passed} of {total} operator checks passed"
    ))
}

/// The first differences, enough for a reason; the evidence has them all.
fn first_few(differences: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = differences[..differences.len().min(SHOWN)].join("; ");
    if differences.len() > SHOWN {
        text.push_str(&format!(
            "; and {} more in the evidence",
            differences.len() - SHOWN
        ));
    }
    text
}
