//! Writing one archive, in a blocking thread: the cluster's globals, the
//! database dump streamed from pg_dump's stdout straight into the sealed
//! archive, the configured file roots as a tar stream (redacted and
//! filtered by `files`), the backup's own log, and the manifest. Plaintext
//! exists only in memory, one buffer at a time;
//! the file on disk only ever receives ciphertext.
//!
//! With compression on, pg_dump is asked for an uncompressed custom dump
//! (`-Z0`, its zlib being the slowest step of a plain `pg_dump -Fc`) and the
//! archive writer compresses every part with zstd on zstd's own worker
//! threads: pg_dump, compression and encryption (on this thread) overlap.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use berkut_proto::archive::{
    ArchiveError, ArchiveWriter, Codec, Compression, MasterKey, WriteBehind,
};
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::{
    DatabaseInfo, FileEntry, FileOutcome, Manifest, Origin, PartKind, Scope, StepTiming,
    TableCount, MANIFEST_VERSION,
};
use berkut_proto::wire::{ErrorCode, Phase};
use time::OffsetDateTime;

use super::files::{write_tar, Stop};
use super::Reporter;
use crate::clock::Clock;
use crate::db::ServerFacts;
use crate::error::OpError;
use crate::store::{io_error, HashingWriter};
use crate::tools::{run_streaming, shutdown_error, ChildSlot};

/// Everything the pipeline needs to know, decided before it starts.
pub struct Plan {
    pub id: BackupId,
    pub label: String,
    pub scope: Scope,
    pub include_files: bool,
    pub origin: Origin,
    pub created_at: OffsetDateTime,
    pub facts: ServerFacts,
    pub pg_dump_version: String,
    pub pg_dump: PathBuf,
    pub pg_dumpall: PathBuf,
    /// How pg_dump and pg_dumpall reach the server: libpq's environment
    /// (`db::tool_env`, the one restores use too), the password among it,
    /// never on a command line, and the session options that lift the
    /// database's own timeouts.
    pub tool_env: Vec<(&'static str, String)>,
    pub files: super::files::FilesPlan,
    /// An exported snapshot for pg_dump to use, when row counts were taken.
    pub snapshot: Option<String>,
    /// Exact row counts in that snapshot.
    pub tables: Option<Vec<TableCount>>,
    /// The database's own properties, from the catalogs.
    pub properties: Option<berkut_proto::properties::DatabaseProperties>,
    /// The objects the dump holds, by kind.
    pub objects: Option<berkut_proto::properties::ObjectInventory>,
    /// How the parts are stored (`compression` and `compression_threads`).
    pub compression: Compression,
}

/// A sealed archive, fsynced but not yet in its final place.
pub struct Sealed {
    pub manifest: Manifest,
    pub size_bytes: u64,
    pub sha256: String,
}

/// Globals are small; they are buffered in memory (never on disk) so that a
/// failed first attempt can be retried without passwords. Beyond this size
/// something is wrong.
const MAX_GLOBALS: usize = 64 << 20;

/// The log part is capped: a verbose dump of a huge schema must not grow
/// memory without bound.
const MAX_LOG: usize = 4 << 20;

pub fn write_archive(
    plan: &Plan,
    key: &MasterKey,
    file: File,
    reporter: &Reporter,
    slot: &ChildSlot,
    clock: &dyn Clock,
) -> Result<Sealed, OpError> {
    // The archive's pages go to the disk as it grows (`WriteBehind`), so
    // the fsync before it is catalogued waits for little.
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, WriteBehind::new(file)));
    let mut archive = ArchiveWriter::new(out, key)
        .and_then(|a| a.with_compression(plan.compression))
        .map_err(archive_error)?;
    let mut log = Log::default();
    let mut timings = Vec::new();
    log.note(&format!(
        "berkutd {} backup {} of database {:?}, scope {}",
        env!("CARGO_PKG_VERSION"),
        plan.id,
        plan.facts.database,
        plan.scope.as_str()
    ));

    if plan.scope == Scope::Full {
        let started = Instant::now();
        reporter.phase(Phase::Globals);
        let globals = dump_globals(plan, slot, &mut log)?;
        let mut part = archive
            .begin_part("globals.sql", PartKind::Globals)
            .map_err(archive_error)?;
        part.write_all(&globals).map_err(write_failed)?;
        part.finish().map_err(archive_error)?;
        reporter.add_bytes(globals.len() as u64);
        timings.push(timing("globals", started));
    }

    let started = Instant::now();
    reporter.phase(Phase::Dump);
    dump_database(plan, &mut archive, reporter, slot, &mut log)?;
    timings.push(timing("dump", started));

    let mut files = Vec::new();
    if plan.include_files {
        let started = Instant::now();
        reporter.phase(Phase::Files);
        files = archive_files(plan, &mut archive, reporter, slot)?;
        timings.push(timing("files", started));
        note_files(&files, &mut log, &plan.id);
    }

    reporter.phase(Phase::Finishing);
    if slot.is_cancelled() {
        return Err(shutdown_error());
    }
    let mut part = archive
        .begin_part("backup.log", PartKind::Log)
        .map_err(archive_error)?;
    part.write_all(log.text.as_bytes()).map_err(write_failed)?;
    part.finish().map_err(archive_error)?;

    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        backup_id: plan.id.to_string(),
        label: plan.label.clone(),
        scope: plan.scope,
        include_files: plan.include_files,
        origin: plan.origin,
        created_at: plan.created_at,
        finished_at: clock.now(),
        database: DatabaseInfo {
            name: plan.facts.database.clone(),
            server_version: plan.facts.server_version.clone(),
            pg_dump_version: plan.pg_dump_version.clone(),
        },
        parts: Vec::new(),
        timings,
        tool: format!("berkutd {}", env!("CARGO_PKG_VERSION")),
        tables: plan.tables.clone(),
        properties: plan.properties.clone(),
        objects: plan.objects.clone(),
        files,
    };
    let (out, manifest) = archive.finish(manifest).map_err(archive_error)?;
    let (buffered, size_bytes, sha256) = out.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| io_error(e.into_error()))?;
    file.sync_all().map_err(io_error)?;
    Ok(Sealed {
        manifest,
        size_bytes,
        sha256,
    })
}

fn dump_globals(plan: &Plan, slot: &ChildSlot, log: &mut Log) -> Result<Vec<u8>, OpError> {
    let attempt = |no_passwords: bool, log: &mut Log| {
        let mut cmd = tool(plan, &plan.pg_dumpall);
        cmd.arg("--globals-only")
            .arg("-l")
            .arg(&plan.facts.database);
        if no_passwords {
            cmd.arg("--no-role-passwords");
        }
        let mut buf = Vec::new();
        let (output, pumped) = run_streaming(
            cmd,
            slot,
            |stdout| read_capped(stdout, &mut buf, MAX_GLOBALS),
            |line| log.tool("pg_dumpall", line),
        )?;
        Ok::<_, OpError>((output, pumped, buf))
    };
    let (output, pumped, buf) = attempt(false, log)?;
    if output.status.success() {
        pumped.map_err(io_error)?;
        return Ok(buf);
    }
    // Reading role passwords needs a superuser; an ordinary owner of the
    // database can still save the roles themselves.
    if output.stderr.contains("permission denied") && !slot.is_cancelled() {
        log.note("pg_dumpall could not read role passwords; saving roles without passwords");
        let (output, pumped, buf) = attempt(true, log)?;
        output.check("pg_dumpall", slot)?;
        pumped.map_err(io_error)?;
        return Ok(buf);
    }
    output.check("pg_dumpall", slot)?;
    Err(OpError::internal(
        "pg_dumpall failed without an exit status",
    ))
}

fn dump_database<W: Write>(
    plan: &Plan,
    archive: &mut ArchiveWriter<W>,
    reporter: &Reporter,
    slot: &ChildSlot,
    log: &mut Log,
) -> Result<(), OpError> {
    let mut cmd = tool(plan, &plan.pg_dump);
    cmd.arg("--format=custom").arg("--verbose");
    if plan.compression.codec != Codec::None {
        // The archive compresses the dump; pg_dump's own zlib would only
        // cost time and leave zstd nothing to gain.
        cmd.arg("--compress=0");
    }
    if plan.scope == Scope::Schema {
        cmd.arg("--schema-only");
    }
    if let Some(snapshot) = &plan.snapshot {
        cmd.arg(format!("--snapshot={snapshot}"));
    }
    let mut part = archive
        .begin_part("dump.pgcustom", PartKind::Dump)
        .map_err(archive_error)?;
    let mut head = Vec::with_capacity(5);
    let (output, pumped) = run_streaming(
        cmd,
        slot,
        |stdout| pump(stdout, &mut part, reporter, &mut head),
        |line| {
            if line.contains("dumping contents of table") {
                reporter.table_done();
            }
            log.tool("pg_dump", line);
        },
    )?;
    // A failed archive write is the reason, whatever pg_dump's exit says:
    // the pipeline stopped pg_dump because of it.
    if !slot.is_cancelled() {
        pumped.map_err(write_failed)?;
    }
    output.check("pg_dump", slot)?;
    if !head.starts_with(b"PGDMP") {
        return Err(OpError::new(
            ErrorCode::Internal,
            "pg_dump did not produce a custom-format dump",
        )
        .with_detail(format!("first bytes {head:?}")));
    }
    part.finish().map_err(archive_error)?;
    Ok(())
}

fn archive_files<W: Write>(
    plan: &Plan,
    archive: &mut ArchiveWriter<W>,
    reporter: &Reporter,
    slot: &ChildSlot,
) -> Result<Vec<FileEntry>, OpError> {
    let part = archive
        .begin_part("files.tar", PartKind::Files)
        .map_err(archive_error)?;
    let mut counted = CountingWriter {
        inner: part,
        reporter,
        failed: None,
    };
    let written = write_tar(
        &plan.files,
        &mut counted,
        &|| slot.is_cancelled(),
        &mut |_| {},
    );
    let entries = match written {
        Ok(entries) => entries,
        Err(Stop::Cancelled) => return Err(shutdown_error()),
        Err(Stop::TooLarge(message)) => return Err(OpError::new(ErrorCode::TooLarge, message)),
        // tar reports every failure as its own; a write that failed is the
        // archive's, kept by the counting writer.
        Err(Stop::Write(e)) => return Err(write_failed(counted.failed.take().unwrap_or(e))),
    };
    counted.inner.finish().map_err(archive_error)?;
    Ok(entries)
}

/// The backup's log and the daemon's log say what was left out or
/// redacted (names, keys and rules; never a value).
fn note_files(files: &[FileEntry], log: &mut Log, id: &BackupId) {
    let count = |o: FileOutcome| files.iter().filter(|f| f.outcome == o).count();
    let (archived, redacted, excluded) = (
        count(FileOutcome::Archived),
        count(FileOutcome::Redacted),
        count(FileOutcome::Excluded),
    );
    log.note(&format!(
        "files: {archived} archived as they are, {redacted} redacted, {excluded} left out"
    ));
    for f in files {
        match f.outcome {
            FileOutcome::Archived => {}
            FileOutcome::Redacted => log.note(&format!(
                "redacted {} (values of: {})",
                f.path,
                f.keys.join(", ")
            )),
            FileOutcome::Excluded => log.note(&format!(
                "left out {}: {}",
                f.path,
                f.reason.as_deref().unwrap_or("")
            )),
        }
    }
    if redacted + excluded > 0 {
        tracing::info!(backup = %id, archived, redacted, excluded, "file roots archived; redacted and left-out files are listed by `berkutctl backup show`");
    }
}

/// A command for pg_dump or pg_dumpall, connected as every tool is
/// (`db::tool_command`), that never waits for a password prompt.
fn tool(plan: &Plan, bin: &std::path::Path) -> Command {
    let mut cmd = crate::db::tool_command(bin, &plan.tool_env);
    cmd.arg("--no-password");
    cmd
}

/// Copies pg_dump's stdout into the archive part, a buffer at a time.
fn pump(
    stdout: &mut dyn Read,
    part: &mut impl Write,
    reporter: &Reporter,
    head: &mut Vec<u8>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if head.len() < 5 {
            let take = (5 - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        part.write_all(&buf[..n])?;
        reporter.add_bytes(n as u64);
    }
}

fn read_capped(r: &mut dyn Read, buf: &mut Vec<u8>, cap: usize) -> io::Result<()> {
    r.take(cap as u64 + 1).read_to_end(buf)?;
    if buf.len() > cap {
        return Err(io::Error::other(
            "pg_dumpall output exceeds the limit for globals",
        ));
    }
    Ok(())
}

struct CountingWriter<'r, W> {
    inner: W,
    reporter: &'r Reporter,
    /// The first write error, kept to tell it from a read error.
    failed: Option<io::Error>,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.inner.write(buf) {
            Ok(n) => n,
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                let copy = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => copy,
                };
                self.failed.get_or_insert(copy);
                return Err(e);
            }
        };
        self.reporter.add_bytes(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The backup's own log, kept in memory and sealed into the archive.
#[derive(Default)]
struct Log {
    text: String,
    truncated: bool,
}

impl Log {
    fn note(&mut self, line: &str) {
        self.push("berkutd", line);
    }

    fn tool(&mut self, tool: &str, line: &str) {
        // pg_dump already starts its lines with its own name.
        let line = line.strip_prefix(&format!("{tool}: ")).unwrap_or(line);
        self.push(tool, line);
    }

    fn push(&mut self, source: &str, line: &str) {
        if self.text.len() + line.len() > MAX_LOG {
            if !self.truncated {
                self.text.push_str("berkutd: [log truncated]\n");
                self.truncated = true;
            }
            return;
        }
        self.text.push_str(source);
        self.text.push_str(": ");
        self.text.push_str(line);
        self.text.push('\n');
    }
}

fn timing(step: &str, started: Instant) -> StepTiming {
    StepTiming {
        step: step.to_owned(),
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }
}

fn archive_error(e: ArchiveError) -> OpError {
    match e {
        ArchiveError::Io(e) => io_error(e),
        // zstd's own words name no path and no key: they are the reason.
        compress @ ArchiveError::Compress { .. } => OpError::new(
            ErrorCode::Internal,
            format!("the backup failed: {compress}"),
        ),
        other => OpError::internal(format!("archive writer: {other}")),
    }
}

/// A write into an archive part failed: the archive's own reason (zstd
/// failing, say) when it has one, the disk's otherwise.
fn write_failed(e: io::Error) -> OpError {
    archive_error(ArchiveError::from_io(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressor_failure_is_the_backups_reason_in_words() {
        let from_writer: io::Error = ArchiveError::Compress {
            part: "dump.pgcustom".into(),
            why: "Src size is incorrect".into(),
        }
        .into();
        let e = write_failed(from_writer);
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(
            e.message
                .contains("compressing part \"dump.pgcustom\" failed: Src size is incorrect"),
            "{}",
            e.message
        );
        // A plain disk error stays a disk error.
        let full = write_failed(io::Error::from_raw_os_error(nix::libc::ENOSPC));
        assert!(full.message.contains("full"), "{}", full.message);
    }
}
