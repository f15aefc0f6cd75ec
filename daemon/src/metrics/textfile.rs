//! The metrics textfile for node_exporter's textfile collector
//! (`metrics_textfile`). It is written to a temporary file in the same
//! directory and renamed over the old one, so a reader sees the old file or
//! the new one, never half of one; it is rewritten after every job and at
//! least every `PERIOD`, so a daemon that stopped writing shows in
//! `node_textfile_mtime_seconds`. A path whose directory is missing or not
//! writable is refused when the configuration is loaded (`check`): an
//! error at start, a refused reload; if writing fails later, the log says
//! so and the socket's `metrics` goes on working.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::state::Daemon;

/// The longest the file goes without being rewritten.
pub const PERIOD: Duration = Duration::from_secs(60);

/// The temporary file beside `path`; the dot keeps node_exporter (which
/// reads `*.prom` only) from reading it.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Whether the daemon can write `path` the way it will: the directory
/// exists and a temporary file can be created in it.
pub fn check(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) => {
            return Err(format!(
                "its directory {} cannot be used: {e}",
                dir.display()
            ))
        }
    }
    if path.is_dir() {
        return Err("is a directory".into());
    }
    let probe = temporary(path);
    crate::fsutil::create_exclusive(&probe, 0o644)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Replaces the file at `path` with `text`: a temporary file, then a
/// rename. Readable by all (node_exporter runs as another user); it holds
/// nothing secret.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = temporary(path);
    let mut file = crate::fsutil::create_exclusive(&tmp, 0o644)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes the textfile (when configured) now, after every change the
/// metrics hear of, and at least every `PERIOD`, until the daemon stops.
/// A failed write is logged when it starts failing and when it works again,
/// not every minute.
pub async fn run(daemon: Arc<Daemon>) {
    let mut changed = daemon.metrics.subscribe();
    let mut failing = false;
    loop {
        if let Some(path) = daemon.config().metrics_textfile.clone() {
            let text = super::render(&daemon);
            let outcome = tokio::task::spawn_blocking(move || write(&path, &text).map(|()| path))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match outcome {
                Ok(path) if failing => {
                    failing = false;
                    tracing::info!(path = %path.display(), "the metrics textfile is written again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cannot write the metrics textfile; the socket's metrics still work");
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            r = changed.changed() => if r.is_err() { return },
            _ = daemon.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_unwritable_directory_is_refused_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/berkut.prom");
        let e = check(&missing).unwrap_err();
        assert!(e.contains("nope") && e.contains("cannot be used"), "{e}");
        assert!(check(Path::new("berkut.prom")).is_err());
        let file = dir.path().join("berkut.prom");
        check(&file).unwrap();
        assert!(!temporary(&file).exists(), "the probe is removed");
        std::fs::create_dir(&file).unwrap();
        assert_eq!(check(&file).unwrap_err(), "is a directory");
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berkut.prom");
        write(&file, "a 1\n").unwrap();
        write(&file, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// A reader that reads the file in a loop while it is replaced again
    /// and again sees one whole version or the other, never a mix or a
    /// part. (Writing in place, as `std::fs::write` does, fails this at
    /// once: a read lands between the truncation and the last byte.)
    #[test]
    fn a_reader_never_sees_a_half_written_file() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berkut.prom");
        let a = "a 1\n".repeat(64 * 1024);
        let b = "b 2\n".repeat(48 * 1024);
        write(&file, &a).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (done, file, a, b) = (Arc::clone(&done), file.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&file).unwrap();
                    assert!(
                        text == a || text == b,
                        "a torn read of {} bytes",
                        text.len()
                    );
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..300 {
            write(&file, if i % 2 == 0 { &b } else { &a }).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let reads = reader.join().expect("no torn read");
        assert!(reads > 0);
    }
}
