//! Running PostgreSQL's tools for a restore: `pg_restore --list` (does the
//! dump read?), one `pg_restore` over the whole dump whose verbose output
//! moves the steps on, and `psql` applying the archived roles. Every tool
//! gets the daemon's libpq environment for the target server, through
//! `crate::tools` (which alone spawns processes).

use std::process::Command;
use std::sync::Arc;

use super::record::Tracker;
use super::run::{blocking, Params};
use super::step::Step;
use crate::db::{tool_env, Db};
use crate::error::OpError;
use crate::state::Daemon;
use crate::tools::{self, ChildSlot};

fn tool(bin: &std::path::Path, db: &Db, dbname: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_remove("PGPASSFILE");
    for (k, v) in tool_env(db.config(), dbname) {
        cmd.env(k, v);
    }
    cmd
}

pub async fn pg_restore_list(
    daemon: &Arc<Daemon>,
    dump: &std::path::Path,
    slot: &Arc<ChildSlot>,
) -> Result<String, OpError> {
    let mut cmd = Command::new(&daemon.config().pg_restore_bin);
    cmd.arg("--list").arg(dump);
    let slot = Arc::clone(slot);
    blocking(move || {
        let mut out = Vec::new();
        let (output, pumped) = tools::run_streaming(
            cmd,
            &slot,
            |stdout| std::io::Read::read_to_end(stdout, &mut out).map(|_| ()),
            |_| {},
        )?;
        output.check("pg_restore --list", &slot)?;
        pumped.map_err(|e| OpError::internal(format!("reading pg_restore --list: {e}")))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    })
    .await
}

/// Runs pg_restore once over the whole dump. Its verbose lines tell which
/// section it is in: the first table data ends `pre_data`, the last one ends
/// `data`, the exit ends `post_data`.
pub async fn restore_dump(
    daemon: &Arc<Daemon>,
    target: &Db,
    tracker: &Arc<Tracker>,
    p: &Params,
    dump: &std::path::Path,
    total: u64,
    slot: &Arc<ChildSlot>,
) -> Result<(), OpError> {
    let mut cmd = tool(&daemon.config().pg_restore_bin, target, &p.scratch);
    cmd.args(["--exit-on-error", "--verbose", "--no-password"])
        .arg(format!("--dbname={}", p.scratch));
    if daemon.config().restore_jobs > 1 {
        cmd.arg(format!("--jobs={}", daemon.config().restore_jobs));
    }
    cmd.arg(dump);
    let (slot, tracker, d) = (Arc::clone(slot), Arc::clone(tracker), Arc::clone(daemon));
    blocking(move || {
        let mut log = tracker.log(Step::Data);
        let mut done = 0u64;
        let (output, _) = tools::run_streaming(
            cmd,
            &slot,
            |stdout| std::io::copy(stdout, &mut std::io::sink()).map(|_| ()),
            |line| {
                if line.contains("processing data for table") {
                    if done == 0 {
                        tracker.finish(Step::PreData, d.now(), "schema created");
                        tracker.begin(Step::Data, d.now());
                    }
                    done += 1;
                    tracker.progress(Step::Data, done, Some(total));
                    if done == total {
                        tracker.finish(Step::Data, d.now(), format!("{total} tables loaded"));
                        tracker.begin(Step::PostData, d.now());
                    }
                }
                log.line(line);
            },
        )?;
        output.check("pg_restore", &slot)?;
        let now = d.now();
        if done == 0 {
            tracker.finish(Step::PreData, now, "schema created");
            tracker.begin(Step::Data, now);
        }
        if done < total || total == 0 {
            tracker.finish(Step::Data, now, format!("{done} tables loaded"));
            tracker.begin(Step::PostData, now);
        }
        tracker.finish(
            Step::PostData,
            now,
            "indexes, constraints and triggers created",
        );
        Ok(())
    })
    .await
}

/// Applies the archived roles and tablespaces, tolerating the ones that
/// already exist (a restore into the same cluster); any other error fails.
pub async fn apply_globals(
    daemon: &Arc<Daemon>,
    target: &Db,
    tracker: &Arc<Tracker>,
    globals: &[u8],
    slot: &Arc<ChildSlot>,
) -> Result<String, OpError> {
    let mut cmd = tool(&daemon.config().psql_bin, target, "postgres");
    cmd.args([
        "-X",
        "-q",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=0",
        "-f",
        "-",
    ]);
    let (slot, tracker, globals) = (Arc::clone(slot), Arc::clone(tracker), globals.to_vec());
    blocking(move || {
        let mut log = tracker.log(Step::Globals);
        let mut existing = 0u32;
        let mut other: Vec<String> = Vec::new();
        let output = tools::run_with_input(cmd, &slot, &globals, |line| {
            log.line(line);
            if line.contains("ERROR:") {
                if line.contains("already exists") {
                    existing += 1;
                } else {
                    other.push(line.to_owned());
                }
            }
        })?;
        output.check("psql", &slot)?;
        if let Some(first) = other.first() {
            return Err(OpError::new(
                berkut_proto::wire::ErrorCode::Internal,
                format!(
                    "applying the archived roles failed ({} errors)",
                    other.len()
                ),
            )
            .with_detail(first));
        }
        Ok(format!(
            "roles and tablespaces applied; {existing} already existed"
        ))
    })
    .await
}
