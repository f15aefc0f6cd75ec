//! A finished restore's evidence directory as one tar archive, to hand to
//! an auditor (`restore_evidence_export`): every file of the directory
//! (`summary.json`, `logs/`, the `DIGEST`, whatever else is there) under a
//! top directory named after the restore, so that after `tar -x` the
//! auditor runs `sha256sum -c DIGEST` in it with nothing but standard
//! tools. The archive is written while it is sent, in pieces of `PIECE`
//! bytes through a channel of two: memory stays flat whatever the size of
//! the logs. Each file is hashed as it goes into the archive and the sums
//! compared with the `DIGEST` that goes with them, so the verdict speaks of
//! exactly the bytes the auditor receives (evidence changed by a rollback
//! in the middle of an export shows as a mismatch, not as a silent mix).
//! Tampered evidence is exported as it is, with that verdict: hiding it
//! from the auditor would defeat the point.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use berkut_proto::wire::DigestVerdict;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::digest::{self, DIGEST_FILE};

/// Bytes per piece sent, as for a download.
pub const PIECE: usize = 32 * 1024;

/// The largest `DIGEST` read to check the files against it: the daemon's
/// own lists a few dozen lines; one this large was not written by it.
const MAX_DIGEST_BYTES: usize = 4 << 20;

/// The most problems a verdict lists, as `restore_evidence` does.
const SHOWN: usize = 100;

/// What went into an archive.
#[derive(Debug)]
pub struct Exported {
    /// The files archived, the `DIGEST` included.
    pub files: u64,
    /// The files archived checked against the `DIGEST` archived with them;
    /// `None` when the directory has no `DIGEST`.
    pub digest: Option<DigestVerdict>,
}

/// Writes the evidence directory `dir` as a tar archive to `out`, every
/// entry under `root/`. A link or a special file in the directory, or a
/// file that changes size while it is read, is an error (the archive is
/// then incomplete and must be thrown away).
pub fn write_tar(dir: &Path, root: &str, out: impl Write) -> std::io::Result<Exported> {
    let mut paths = digest::files(dir)?;
    let has_digest = dir.join(DIGEST_FILE).is_file();
    if has_digest {
        paths.push(DIGEST_FILE.to_owned());
        paths.sort();
    }
    let mut tar = tar::Builder::new(out);
    // The directories first, so that extracting gives them a sane mode.
    let mut dirs = BTreeSet::new();
    for path in &paths {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    append_dir(&mut tar, dir, root)?;
    for d in &dirs {
        append_dir(&mut tar, &dir.join(d), &format!("{root}/{d}"))?;
    }
    let mut found = BTreeMap::new();
    let mut listed = None;
    for path in &paths {
        let keep = path == DIGEST_FILE;
        let (sha, bytes) = append_file(&mut tar, &dir.join(path), &format!("{root}/{path}"), keep)?;
        if keep {
            listed = bytes;
        } else {
            found.insert(path.clone(), sha);
        }
    }
    tar.into_inner()?.flush()?;
    let digest = has_digest.then(|| match listed {
        Some(text) => {
            let checked = digest::compare(&String::from_utf8_lossy(&text), &found);
            let mut problems = checked.problems;
            problems.truncate(SHOWN);
            DigestVerdict {
                matched: checked.matched as u64,
                problems,
            }
        }
        None => DigestVerdict {
            matched: 0,
            problems: vec![format!(
                "the DIGEST is larger than {} MiB and was not checked",
                MAX_DIGEST_BYTES >> 20
            )],
        },
    });
    Ok(Exported {
        files: paths.len() as u64,
        digest,
    })
}

fn append_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    on_disk: &Path,
    name: &str,
) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(on_disk)?;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(mtime(&meta));
    tar.append_data(&mut header, format!("{name}/"), std::io::empty())
}

/// Appends one file, hashing what was read; with `keep`, also returns its
/// bytes when they are at most `MAX_DIGEST_BYTES`.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    on_disk: &Path,
    name: &str,
    keep: bool,
) -> std::io::Result<(String, Option<Vec<u8>>)> {
    // Never through a link: the directory is the daemon's, and a link in it
    // was not put there by the daemon.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(on_disk)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{name} is not a regular file"
        )));
    }
    let size = meta.len();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(mtime(&meta));
    let mut reader = Hashing {
        inner: file.take(size),
        hasher: Sha256::new(),
        read: 0,
        kept: keep.then(Vec::new),
    };
    tar.append_data(&mut header, name, &mut reader)?;
    if reader.read != size {
        // tar wrote a header for `size` bytes and got fewer: the archive is
        // broken from here on.
        return Err(std::io::Error::other(format!(
            "{name} shrank while it was archived"
        )));
    }
    Ok((hex::encode(reader.hasher.finalize()), reader.kept))
}

fn mtime(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime().max(0) as u64
}

/// A reader that hashes and counts what passes, and keeps it up to
/// `MAX_DIGEST_BYTES` when asked.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    kept: Option<Vec<u8>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if let Some(kept) = &mut self.kept {
            if kept.len() + n <= MAX_DIGEST_BYTES {
                kept.extend_from_slice(&buf[..n]);
            } else {
                self.kept = None;
            }
        }
        Ok(n)
    }
}

/// A `Write` that hands what is written on in pieces of `PIECE` bytes
/// through a bounded channel, for a blocking thread feeding an async
/// sender. A closed channel (the receiver gone) is a broken pipe.
pub struct PieceWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
}

impl PieceWriter {
    pub fn new(tx: mpsc::Sender<Vec<u8>>) -> PieceWriter {
        PieceWriter {
            buf: Vec::with_capacity(PIECE),
            tx,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(piece)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for PieceWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    /// Sends what is buffered (the end of the archive).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("logs")).unwrap();
        std::fs::write(d.join("summary.json"), "{}\n").unwrap();
        std::fs::write(d.join("logs/00-verify.log"), "ok\n").unwrap();
        digest::write(d).unwrap();
        dir
    }

    fn entries(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (path, body)
            })
            .collect()
    }

    #[test]
    fn every_file_goes_under_the_root_with_a_clean_verdict() {
        let dir = evidence_dir();
        let mut out = Vec::new();
        let exported = write_tar(dir.path(), "r-1", &mut out).unwrap();
        assert_eq!(exported.files, 3);
        assert_eq!(
            exported.digest,
            Some(DigestVerdict {
                matched: 2,
                problems: vec![]
            })
        );
        let names: Vec<String> = entries(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "r-1/",
                "r-1/logs/",
                "r-1/DIGEST",
                "r-1/logs/00-verify.log",
                "r-1/summary.json"
            ]
        );
    }

    #[test]
    fn tampered_evidence_is_exported_as_it_is_and_said_so() {
        let dir = evidence_dir();
        std::fs::write(dir.path().join("logs/00-verify.log"), "forged\n").unwrap();
        let mut out = Vec::new();
        let exported = write_tar(dir.path(), "r-1", &mut out).unwrap();
        assert_eq!(
            exported.digest.unwrap().problems,
            ["logs/00-verify.log: changed"]
        );
        let forged = entries(&out)
            .into_iter()
            .find(|(n, _)| n == "r-1/logs/00-verify.log")
            .unwrap();
        assert_eq!(forged.1, b"forged\n");
    }

    #[test]
    fn a_link_in_the_evidence_stops_the_export() {
        let dir = evidence_dir();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("logs/x.log")).unwrap();
        assert!(write_tar(dir.path(), "r-1", std::io::sink()).is_err());
    }

    #[test]
    fn pieces_are_whole_but_the_last() {
        let (tx, mut rx) = mpsc::channel(1000);
        let mut w = PieceWriter::new(tx);
        w.write_all(&vec![7u8; PIECE * 2 + 5]).unwrap();
        w.flush().unwrap();
        drop(w);
        let mut sizes = Vec::new();
        while let Ok(p) = rx.try_recv() {
            sizes.push(p.len());
        }
        assert_eq!(sizes, [PIECE, PIECE, 5]);
    }
}
