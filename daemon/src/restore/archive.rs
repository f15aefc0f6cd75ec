//! What a restore reads from the archive: first a full verification (every
//! chunk authenticated, every part's digest recomputed and compared with the
//! manifest, the file's own sha256 compared with the catalogue), before
//! anything is touched; then the dump, decrypted (and decompressed) into a
//! private temporary file because `pg_restore -j` needs a seekable input.
//! That file is the only plaintext a restore ever writes, and `TempDump`
//! removes it whatever happens. With one job there is no such file: the
//! dump is streamed from the archive straight into `pg_restore`'s stdin
//! ([`feed_part`]), after the whole archive has verified.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use berkut_proto::archive::{self, ArchiveError, ArchiveReader, Keyring};
use berkut_proto::manifest::{Manifest, PartKind};
use berkut_proto::wire::DigestCheck;

use crate::error::OpError;

pub struct Verified {
    pub manifest: Manifest,
    pub digests: Vec<DigestCheck>,
    pub sha256: String,
}

/// Where a restore keeps the dump it decrypts while verifying.
pub struct Keep<'a> {
    pub tmp_root: &'a Path,
    pub name: &'a str,
    /// Whether the dump is written there (for `pg_restore -j`); without it
    /// only the private directory is made (a dry-run unpacks files there).
    pub dump: bool,
}

/// The part names this daemon's writer gives the dump and the globals.
const DUMP_PART: &str = "dump.pgcustom";
const GLOBALS_PART: &str = "globals.sql";

/// Verifies the archive in one pass and, with `keep`, decrypts the dump
/// into a private temporary file and the globals into memory on the way:
/// one read of the archive instead of two. Nothing decrypted is used unless
/// the whole archive verifies; on any failure the temporary file is gone.
pub fn verify_keeping(
    path: &Path,
    keyring: &Keyring,
    recorded_sha256: Option<&str>,
    keep: Option<Keep<'_>>,
    mut progress: impl FnMut(u64),
) -> Result<(Verified, Option<Decrypted>), OpError> {
    let mut out = match &keep {
        Some(k) => Some(temp_dump(k.tmp_root, k.name, k.dump)?),
        None => None,
    };
    let file = File::open(path)
        .map_err(|e| OpError::unavailable("the archive could not be opened").with_detail(e))?;
    // The file's sha256 is taken on a second thread: this one decrypts,
    // decompresses and writes the dump, and pg_restore has not started yet.
    let mut reader = archive::HashingReadAhead::new(file);
    let mut globals = None;
    let mut write_error: Option<io::Error> = None;
    // `verify` reads at `Depth::Deep`: the reader itself takes every part's
    // sha256 over the decompressed bytes (on a thread of its own) and
    // refuses the archive unless each equals the part's trailer and the
    // manifest. This thread only decompresses and writes.
    let manifest = archive::verify(&mut reader, keyring, |name, part| {
        let mut buf = vec![0u8; 1 << 20];
        let mut kept = Vec::new();
        let mut total = 0u64;
        loop {
            let n = part.read(&mut buf)?;
            if n == 0 {
                break;
            }
            match (&mut out, name) {
                (Some((_, Some(file))), DUMP_PART) => {
                    if let Err(e) = file.write_all(&buf[..n]) {
                        write_error.get_or_insert(e);
                        return Err(io::Error::other("the decrypted dump could not be written"));
                    }
                    total += n as u64;
                    progress(total);
                }
                (Some(_), GLOBALS_PART) => kept.extend_from_slice(&buf[..n]),
                _ => {}
            }
        }
        if name == GLOBALS_PART && out.is_some() {
            globals = Some(kept);
        }
        Ok(())
    });
    if let Some(e) = write_error {
        return Err(space(e));
    }
    let manifest = manifest.map_err(refused)?;
    let (_, sha256) = reader
        .finish()
        .map_err(|e| OpError::unavailable("the archive could not be read").with_detail(e))?;
    if let Some(recorded) = recorded_sha256 {
        if recorded != sha256 {
            return Err(OpError::invalid(
                "the archive file differs from the one recorded in the catalogue (sha256 mismatch)",
            ));
        }
    }
    // The archive verified, so the digest the reader computed for every
    // part is the one the manifest records (a difference refuses it above).
    let digests = manifest
        .parts
        .iter()
        .map(|p| DigestCheck {
            part: p.name.clone(),
            expected: p.sha256.clone(),
            found: p.sha256.clone(),
        })
        .collect();
    let decrypted = match (out, keep) {
        (Some((dump, None)), Some(_)) => Some(Decrypted {
            dump,
            on_disk: false,
            globals,
        }),
        (Some((dump, Some(_))), Some(k)) => {
            // An archive from another writer may name its parts otherwise:
            // then the dump is decrypted in a second pass.
            if manifest.part(PartKind::Dump).map(|p| p.name.as_str()) != Some(DUMP_PART) {
                drop(dump);
                Some(decrypt(
                    path, keyring, &manifest, k.tmp_root, k.name, progress,
                )?)
            } else {
                Some(Decrypted {
                    dump,
                    on_disk: true,
                    globals,
                })
            }
        }
        _ => None,
    };
    Ok((
        Verified {
            manifest,
            digests,
            sha256,
        },
        decrypted,
    ))
}

/// Creates `<tmp_root>/<name>/` (0700) and, with `file`, the empty
/// `dump.pgcustom` in it (0600): the private temporary dump pg_restore
/// reads, and the file to write it through.
///
/// Nothing is synced to the disk: the file lives only as long as the
/// restore, a full disk is refused by the write itself (the filesystem
/// reserves the space then), and a file pushed to the disk cost a 681 MB
/// dump about as long as decrypting it, competing with the server's own
/// writes, and put plaintext on the disk that a short restore never needs
/// to write at all (it is deleted before the kernel would write it back).
fn temp_dump(tmp_root: &Path, name: &str, file: bool) -> Result<(TempDump, Option<File>), OpError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(tmp_root)
        .map_err(space)?;
    let dir = tmp_root.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(space)?;
    let dump = TempDump {
        path: dir.join("dump.pgcustom"),
        dir,
    };
    if !file {
        return Ok((dump, None));
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&dump.path)
        .map_err(space)?;
    Ok((dump, Some(file)))
}

/// A refused archive, with the reader's own words (which name no path and
/// no key).
pub fn refused(e: ArchiveError) -> OpError {
    match e {
        ArchiveError::Io(e) => OpError::unavailable("the archive could not be read").with_detail(e),
        other => OpError::invalid(format!("the archive does not verify: {other}")),
    }
}

/// The decrypted dump, removed on drop.
pub struct TempDump {
    dir: PathBuf,
    pub path: PathBuf,
}

impl Drop for TempDump {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Decrypted {
    /// The private directory, and where the dump is when `on_disk`.
    pub dump: TempDump,
    /// The dump was written to `dump.path`; otherwise it is streamed.
    pub on_disk: bool,
    pub globals: Option<Vec<u8>>,
}

/// Decrypts the dump into `<tmp_root>/<name>/dump.pgcustom` (directory
/// 0700, file 0600) and keeps the globals in memory. `progress` hears the
/// bytes written so far.
pub fn decrypt(
    path: &Path,
    keyring: &Keyring,
    manifest: &Manifest,
    tmp_root: &Path,
    name: &str,
    mut progress: impl FnMut(u64),
) -> Result<Decrypted, OpError> {
    let dump_part = manifest
        .part(PartKind::Dump)
        .ok_or_else(|| OpError::invalid("the archive holds no database dump"))?
        .name
        .clone();
    let globals_part = manifest.part(PartKind::Globals).map(|p| p.name.clone());
    let (dump, out) = temp_dump(tmp_root, name, true)?;
    let mut out = out.ok_or_else(|| OpError::internal("no temporary dump file"))?;
    let file = File::open(path)
        .map_err(|e| OpError::unavailable("the archive could not be opened").with_detail(e))?;
    let mut reader =
        ArchiveReader::open(BufReader::with_capacity(1 << 20, file), keyring).map_err(refused)?;
    let mut globals = None;
    while let Some(mut part) = reader.next_part().map_err(refused)? {
        if part.name() == dump_part {
            copy(&mut part, &mut out, &mut progress)?;
        } else if Some(part.name()) == globals_part.as_deref() {
            let mut buf = Vec::new();
            part.read_to_end(&mut buf)
                .map_err(|e| refused(ArchiveError::from_io(e)))?;
            globals = Some(buf);
        }
    }
    Ok(Decrypted {
        dump,
        on_disk: true,
        globals,
    })
}

/// Reads part `name` of an archive that has already verified, decompressed,
/// through `f`. At most `size` bytes (the manifest's) are handed out; a
/// part that holds more, or differs from its digest, fails when `f` has
/// read it all (the reader checks the part at its end).
pub fn with_part<T>(
    path: &Path,
    keyring: &Keyring,
    name: &str,
    size: u64,
    f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> io::Result<T> {
    let file = File::open(path)?;
    let mut reader = ArchiveReader::open(BufReader::with_capacity(1 << 20, file), keyring)?;
    // The parts before the dump were checked in the verification pass.
    reader.set_depth(archive::Depth::Authenticate);
    while let Some(mut part) = reader.next_part()? {
        if part.name() == name {
            return f(&mut (&mut part).take(size));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the archive holds no such part",
    ))
}

/// Feeds part `name` (its `size` recorded bytes) into `to`, then checks
/// that the part ends there and matches its sha256.
pub fn feed_part(
    path: &Path,
    keyring: &Keyring,
    name: &str,
    size: u64,
    to: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> io::Result<()> {
    let file = File::open(path)?;
    let mut reader = ArchiveReader::open(BufReader::with_capacity(1 << 20, file), keyring)?;
    reader.set_depth(archive::Depth::Authenticate);
    while let Some(mut part) = reader.next_part()? {
        if part.name() != name {
            continue;
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let mut limited = (&mut part).take(size);
        loop {
            let n = limited.read(&mut buf)?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])?;
            total += n as u64;
            progress(total);
        }
        // One more read reaches the part's end, where its size and digest
        // are checked: a part longer than recorded fails here.
        if total != size || part.read(&mut [0u8; 1])? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the dump differs from its recorded size",
            ));
        }
        return to.flush();
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the archive holds no such part",
    ))
}

fn copy(
    from: &mut impl Read,
    to: &mut File,
    progress: &mut impl FnMut(u64),
) -> Result<(), OpError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| refused(ArchiveError::from_io(e)))?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).map_err(space)?;
        total += n as u64;
        progress(total);
    }
}

/// A write error while decrypting: a full disk (or a file size limit) is
/// said plainly, anything else generally.
fn space(e: io::Error) -> OpError {
    match e.raw_os_error() {
        Some(nix::libc::ENOSPC) | Some(nix::libc::EFBIG) | Some(nix::libc::EDQUOT) => {
            OpError::unavailable(
                "there is not enough disk space to decrypt the dump for the restore",
            )
            .with_detail(e)
        }
        _ => OpError::unavailable("the dump could not be decrypted to a temporary file")
            .with_detail(e),
    }
}
