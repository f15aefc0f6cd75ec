//! The archive directory. An archive is written under a hidden `.partial`
//! name, fsynced, and only then renamed to `<id>.bscc`, so a file with the
//! final name is always complete. Paths are built only from a parsed
//! `BackupId`, never from client text.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berkut_proto::archive::{self, ArchiveError, Depth, Header, Keyring};
use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Manifest;
use sha2::{Digest, Sha256};

use crate::catalogue::ArchiveFacts;
use crate::error::OpError;
use crate::fsutil::sync_dir;

const PARTIAL_SUFFIX: &str = ".bscc.partial";

/// A file received into the backup directory and not yet checked; see
/// [`Store::quarantine`].
#[derive(Debug)]
pub struct Quarantine {
    path: PathBuf,
    committed: bool,
}

impl Quarantine {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it became an archive (`Store::commit_quarantine`).
    pub fn committed(&self) -> bool {
        self.committed
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens the directory, creating it (mode 0700) when missing.
    pub fn open(dir: &Path) -> io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    pub fn archive_path(&self, id: &BackupId) -> PathBuf {
        self.dir.join(id.file_name())
    }

    fn partial_path(&self, id: &BackupId) -> PathBuf {
        self.dir.join(format!(".{id}{PARTIAL_SUFFIX}"))
    }

    /// Creates the temporary file a new archive is written to, readable by
    /// the daemon's user only.
    pub fn create_partial(&self, id: &BackupId) -> io::Result<(File, PathBuf)> {
        let path = self.partial_path(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok((file, path))
    }

    /// Creates a quarantine file for an archive that comes from outside (an
    /// import, a fetch from a remote: `kind` names it) before it is
    /// checked: hidden, 0600, with the partial suffix, so start-up clears
    /// it if the daemon dies first. Removed when dropped unless committed.
    pub fn quarantine(&self, kind: &str) -> io::Result<(File, Quarantine)> {
        let path = self.dir.join(format!(
            ".{kind}-{:016x}{PARTIAL_SUFFIX}",
            rand::random::<u64>()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let quarantine = Quarantine {
            path,
            committed: false,
        };
        Ok((file, quarantine))
    }

    /// Makes a checked, fsynced quarantine file the archive of `id`.
    pub fn commit_quarantine(&self, q: &mut Quarantine, id: &BackupId) -> io::Result<PathBuf> {
        let target = self.commit(&q.path, id)?;
        q.committed = true;
        Ok(target)
    }

    /// Makes a finished, fsynced partial file the archive of `id`.
    pub fn commit(&self, partial: &Path, id: &BackupId) -> io::Result<PathBuf> {
        let target = self.archive_path(id);
        std::fs::rename(partial, &target)?;
        sync_dir(&self.dir)?;
        Ok(target)
    }

    /// Removes the leftovers of backups that never finished. Returns how many.
    pub fn remove_leftovers(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// The ids of the archives in the directory. Files whose names are not
    /// archive names are left alone.
    pub fn list(&self) -> io::Result<Vec<BackupId>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".bscc"))
                .and_then(|s| s.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Deletes an archive; a missing file is not an error.
    pub fn delete(&self, id: &BackupId) -> io::Result<()> {
        match std::fs::remove_file(self.archive_path(id)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads a stored archive end to end: authenticates every chunk, checks
    /// every part's digest against the manifest, and measures the file.
    pub fn verify(
        &self,
        id: &BackupId,
        keyring: &Keyring,
    ) -> Result<(Manifest, ArchiveFacts), ArchiveError> {
        verify_file(&self.archive_path(id), keyring)
    }
}

/// What a client is told when the backup directory cannot be written (or
/// read, or an archive deleted): a full disk and a quota in plain words.
pub fn io_error(e: io::Error) -> OpError {
    if e.raw_os_error() == Some(nix::libc::ENOSPC) {
        OpError::unavailable("the backup directory is full: no space left on device").with_detail(e)
    } else if e.raw_os_error() == Some(nix::libc::EDQUOT) {
        OpError::unavailable("the backup directory is over its disk quota").with_detail(e)
    } else {
        OpError::unavailable("writing the archive failed").with_detail(e)
    }
}

/// Reads an archive file end to end: authenticates every chunk, checks the
/// structure and every part's trailer against the manifest, and measures the file (size,
/// sha256, the key id its data key is wrapped with).
pub fn verify_file(
    path: &Path,
    keyring: &Keyring,
) -> Result<(Manifest, ArchiveFacts), ArchiveError> {
    let mut file = File::open(path)?;
    let key_id = Header::read_from(&mut file)?.key_id.to_string();
    file.seek(io::SeekFrom::Start(0))?;
    // Authentication is what proves an archive intact and complete (every
    // chunk, the structure, the manifest); restores and drills decompress
    // and recompute every part's digest anyway. The file's own sha256 is
    // taken on a second thread, overlapping the AEAD.
    let mut reader = archive::HashingReadAhead::new(file);
    let manifest = archive::verify_with(&mut reader, keyring, Depth::Authenticate, |_, _| Ok(()))?;
    let (size_bytes, sha256) = reader.finish()?;
    Ok((
        manifest,
        ArchiveFacts {
            size_bytes,
            sha256,
            key_id,
        },
    ))
}

/// A writer that counts and hashes what passes through it, so the archive's
/// digest is known the moment it is written, without reading it back.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Returns the inner writer, the byte count and the hex digest.
    pub fn finish(self) -> (W, u64, String) {
        (
            self.inner,
            self.written,
            hex::encode(self.hasher.finalize()),
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The reading counterpart of `HashingWriter`.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    pub fn finish(self) -> (u64, String) {
        (self.read, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_removed_and_foreign_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id: BackupId = "20261121T000000Z-00000001".parse().unwrap();
        let (mut f, partial) = store.create_partial(&id).unwrap();
        f.write_all(b"half").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join("../evil.bscc"), b"").ok();
        assert_eq!(store.list().unwrap(), Vec::<BackupId>::new());
        assert_eq!(store.remove_leftovers().unwrap(), 1);
        assert!(!partial.exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn commit_makes_the_archive_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id: BackupId = "20261121T000000Z-00000002".parse().unwrap();
        let (_f, partial) = store.create_partial(&id).unwrap();
        assert!(!store.archive_path(&id).is_file());
        store.commit(&partial, &id).unwrap();
        assert!(store.archive_path(&id).is_file());
        assert_eq!(store.list().unwrap(), vec![id.clone()]);
        store.delete(&id).unwrap();
        store.delete(&id).unwrap();
        assert!(!store.archive_path(&id).is_file());
    }

    #[test]
    fn hashing_writer_matches_sha256() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, n, digest) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(n, 3);
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
