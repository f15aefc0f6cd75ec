//! Running PostgreSQL's tools for a restore: `pg_restore --list` (does the
//! dump read?), one `pg_restore` over the whole dump whose verbose output
//! moves the steps on, and `psql` applying the archived roles. The dump is
//! either the private temporary file (`pg_restore -j` seeks in it) or
//! streamed from the archive into the tool's stdin ([`Dump::Streamed`]). Every tool
//! gets the daemon's libpq environment for the target server, through
//! `crate::tools` (which alone spawns processes).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::load;
use super::record::Tracker;
use super::run::{blocking, Params};
use super::step::Step;
use crate::db::{tool_command, tool_env, Db};
use crate::error::OpError;
use crate::state::Daemon;
use crate::tools::{self, ChildSlot};

/// Where pg_restore reads the dump from.
#[derive(Clone)]
pub enum Dump {
    /// The decrypted dump in the restore's private temporary directory.
    File(std::path::PathBuf),
    /// Part `part` (`size` bytes) of the verified archive at `archive`,
    /// decrypted and decompressed on its way into pg_restore's stdin.
    Streamed {
        archive: std::path::PathBuf,
        keyring: berkut_proto::archive::Keyring,
        part: String,
        size: u64,
    },
}

impl Dump {
    /// Runs `cmd` on the dump: with the file's path as its last argument,
    /// or fed on its stdin. A feed cut short by the tool's own exit is the
    /// tool's business (its status says); an archive that fails on the way
    /// fails the run.
    fn run(
        &self,
        mut cmd: Command,
        slot: &ChildSlot,
        on_stdout: impl FnOnce(&mut dyn std::io::Read) -> std::io::Result<()> + Send,
        on_stderr_line: impl FnMut(&str) + Send,
        progress: impl FnMut(u64),
    ) -> Result<tools::ToolOutput, OpError> {
        match self {
            Dump::File(path) => {
                cmd.arg(path);
                let (output, _) = tools::run_streaming(cmd, slot, on_stdout, on_stderr_line)?;
                Ok(output)
            }
            Dump::Streamed {
                archive,
                keyring,
                part,
                size,
            } => {
                let (output, fed) = tools::run_fed(
                    cmd,
                    slot,
                    |stdin| {
                        super::archive::feed_part(archive, keyring, part, *size, stdin, progress)
                    },
                    on_stdout,
                    on_stderr_line,
                )?;
                if let Err(e) = fed {
                    if slot.is_cancelled() {
                        return Err(tools::shutdown_error());
                    }
                    return Err(OpError::invalid(
                        "the dump could not be streamed from the archive",
                    )
                    .with_detail(e));
                }
                Ok(output)
            }
        }
    }
}

fn tool(bin: &std::path::Path, db: &Db, dbname: &str) -> Command {
    tool_command(bin, &tool_env(db.config(), dbname))
}

pub async fn pg_restore_list(
    daemon: &Arc<Daemon>,
    dump: &Dump,
    slot: &Arc<ChildSlot>,
) -> Result<String, OpError> {
    let mut cmd = Command::new(&daemon.config().pg_restore_bin);
    cmd.arg("--list");
    let (slot, dump) = (Arc::clone(slot), dump.clone());
    blocking(move || {
        let out = std::sync::Mutex::new(Vec::new());
        let output = dump.run(
            cmd,
            &slot,
            |stdout| {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(stdout, &mut buf)?;
                *out.lock().unwrap_or_else(|e| e.into_inner()) = buf;
                Ok(())
            },
            |_| {},
            |_| {},
        )?;
        output.check("pg_restore --list", &slot)?;
        let out = out.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(String::from_utf8_lossy(&out).into_owned())
    })
    .await
}

/// pg_restore's common arguments for restoring into the scratch database.
fn pg_restore(daemon: &Daemon, target: &Db, p: &Params) -> Command {
    let mut cmd = tool(&daemon.config().pg_restore_bin, target, &p.scratch);
    cmd.args(["--exit-on-error", "--verbose", "--no-password"])
        .arg(format!("--dbname={}", p.scratch));
    cmd
}

fn jobs(cmd: &mut Command, daemon: &Daemon) {
    if daemon.config().restore_jobs > 1 {
        cmd.arg(format!("--jobs={}", daemon.config().restore_jobs));
    }
}

/// Runs pg_restore once over the whole dump. Its verbose lines tell which
/// section it is in: the first table data ends `pre_data`, the last one ends
/// `data`, the exit ends `post_data`.
pub async fn restore_dump(
    daemon: &Arc<Daemon>,
    target: &Db,
    tracker: &Arc<Tracker>,
    p: &Params,
    dump: &Dump,
    total: u64,
    slot: &Arc<ChildSlot>,
) -> Result<(), OpError> {
    let mut cmd = pg_restore(daemon, target, p);
    jobs(&mut cmd, daemon);
    let (slot, tracker, d, dump) = (
        Arc::clone(slot),
        Arc::clone(tracker),
        Arc::clone(daemon),
        dump.clone(),
    );
    blocking(move || {
        let mut log = tracker.log(Step::Data);
        let mut done = 0u64;
        run_pg_restore(cmd, &dump, &slot, |line| {
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
        })?;
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

/// Restores the dump in three parts: pg_restore creates the schema, the
/// daemon loads the tables' rows over `restore_jobs` connections
/// ([`load`]), and pg_restore `-j` restores everything else (sequences'
/// values and large objects, then indexes, constraints and triggers).
#[allow(clippy::too_many_arguments)]
pub async fn restore_in_parts(
    daemon: &Arc<Daemon>,
    target: &Db,
    tracker: &Arc<Tracker>,
    p: &Params,
    path: &Path,
    plan: load::Plan,
    listing: &str,
    slot: &Arc<ChildSlot>,
    cancel: &CancellationToken,
) -> Result<(), OpError> {
    let dump = Dump::File(path.to_path_buf());
    let mut cmd = pg_restore(daemon, target, p);
    cmd.arg("--section=pre-data");
    run_logged(cmd, &dump, slot, tracker, Step::PreData).await?;
    tracker.finish(Step::PreData, daemon.now(), "schema created");

    tracker.begin(Step::Data, daemon.now());
    let plan = Arc::new(plan);
    let (total, connections) = (
        plan.tables.len() as u64,
        daemon.config().restore_jobs as usize,
    );
    let started = std::time::Instant::now();
    let mut done = 0u64;
    let mut log = tracker.log(Step::Data);
    load::load(target, &p.scratch, path, &plan, connections, cancel, |l| {
        done += 1;
        tracker.progress(Step::Data, done, Some(total));
        log.line(&format!(
            "loaded {}: {} rows on {} of {connections} connections",
            l.label, l.rows, l.connections
        ));
    })
    .await?;
    drop(log);
    tracker.finish(
        Step::Data,
        daemon.now(),
        format!(
            "{total} tables loaded over {connections} connections in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );

    tracker.begin(Step::PostData, daemon.now());
    let list = path.with_file_name("rest.list");
    let rest = plan.rest_of(listing);
    let mut cmd = pg_restore(daemon, target, p);
    cmd.args(["--section=data", "--section=post-data", "--use-list"])
        .arg(&list);
    jobs(&mut cmd, daemon);
    blocking(move || {
        std::fs::write(&list, rest)
            .map_err(|e| OpError::internal(format!("writing pg_restore's list failed: {e}")))
    })
    .await?;
    run_logged(cmd, &dump, slot, tracker, Step::PostData).await?;
    tracker.finish(
        Step::PostData,
        daemon.now(),
        "indexes, constraints, triggers and the other data entries (large objects, counters) restored",
    );
    Ok(())
}

/// Runs one pg_restore over the dump, its verbose lines in `step`'s log.
async fn run_logged(
    cmd: Command,
    dump: &Dump,
    slot: &Arc<ChildSlot>,
    tracker: &Arc<Tracker>,
    step: Step,
) -> Result<(), OpError> {
    let (slot, tracker, dump) = (Arc::clone(slot), Arc::clone(tracker), dump.clone());
    blocking(move || {
        let mut log = tracker.log(step);
        run_pg_restore(cmd, &dump, &slot, |line| log.line(line))
    })
    .await
}

/// Runs pg_restore over the dump on this (blocking) thread: its output
/// goes nowhere, each verbose line to `on_line`, and a failure is the
/// step's.
fn run_pg_restore(
    cmd: Command,
    dump: &Dump,
    slot: &ChildSlot,
    on_line: impl FnMut(&str) + Send,
) -> Result<(), OpError> {
    let output = dump.run(
        cmd,
        slot,
        |stdout| std::io::copy(stdout, &mut std::io::sink()).map(|_| ()),
        on_line,
        |_| {},
    )?;
    output.check("pg_restore", slot)
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
