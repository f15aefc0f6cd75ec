//! The files part: each configured root walked without following a
//! symbolic link, each regular file read whole (bounded by
//! `file_max_bytes`) and checked while it cannot change under the check,
//! then archived as is, redacted, or left out (`redact`), and a manifest
//! entry saying which. A link is kept as a link when it points inside its
//! root and left out otherwise; FIFOs, sockets and devices are left out
//! (opening a FIFO would block the backup); a root that is missing,
//! unreadable or a link to `/` is left out with its reason while the
//! database backup goes on. Past `files_max_total_bytes` or `MAX_ENTRIES`
//! the backup is refused: the operator must choose what to leave out.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use berkut_proto::manifest::{FileEntry, FileOutcome};

use super::redact::{self, Outcome, Words};
use crate::config::{excluded_by, FileRoot};

/// The most entries one backup's manifest lists.
pub const MAX_ENTRIES: usize = 100_000;

/// How often a file that changed while it was read is read again.
const READ_ATTEMPTS: usize = 3;

/// What the files part is made from, decided before the backup starts.
#[derive(Clone, Debug)]
pub struct FilesPlan {
    pub roots: Vec<FileRoot>,
    pub words: Words,
    pub max_file: u64,
    pub max_total: u64,
}

/// Why the files part was not finished.
#[derive(Debug)]
pub enum Stop {
    /// Writing the archive failed.
    Write(io::Error),
    /// A limit of the whole backup was passed: the message says which.
    TooLarge(String),
    Cancelled,
}

/// Writes the roots as a tar stream into `out` and returns what became of
/// each file. `after_read` runs after each read of a file, before it is
/// checked for changes (tests change the file there).
pub fn write_tar<W: Write>(
    plan: &FilesPlan,
    out: W,
    cancelled: &dyn Fn() -> bool,
    after_read: &mut dyn FnMut(&Path),
) -> Result<Vec<FileEntry>, Stop> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut walker = Walker {
        plan,
        tar,
        entries: Vec::new(),
        total: 0,
        cancelled,
        after_read,
    };
    for root in &plan.roots {
        walker.root(root)?;
    }
    walker.tar.finish().map_err(Stop::Write)?;
    Ok(walker.entries)
}

struct Walker<'p, W: Write> {
    plan: &'p FilesPlan,
    tar: tar::Builder<W>,
    entries: Vec<FileEntry>,
    total: u64,
    cancelled: &'p dyn Fn() -> bool,
    after_read: &'p mut dyn FnMut(&Path),
}

impl<W: Write> Walker<'_, W> {
    fn root(&mut self, root: &FileRoot) -> Result<(), Stop> {
        let name = root
            .path
            .strip_prefix("/")
            .unwrap_or(&root.path)
            .to_path_buf();
        let meta = match fs::symlink_metadata(&root.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.excluded(&name, "the root is missing");
            }
            Err(e) => {
                return self.excluded(&name, format!("the root could not be read: {}", why(&e)))
            }
        };
        // The root itself may be a link (to where the files really are),
        // but never to the whole file system.
        let dir = match fs::canonicalize(&root.path) {
            Ok(dir) if dir == Path::new("/") => {
                let what = if meta.file_type().is_symlink() {
                    "the root is a symbolic link to /"
                } else {
                    "the root is /"
                };
                return self.excluded(&name, what);
            }
            Ok(dir) => dir,
            Err(_) => return self.excluded(&name, "the root is a symbolic link to nothing"),
        };
        let meta = match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => meta,
            Ok(_) => return self.excluded(&name, "the root is not a directory"),
            Err(e) => {
                return self.excluded(&name, format!("the root could not be read: {}", why(&e)))
            }
        };
        let first = match listing(&dir) {
            Ok(names) => names,
            Err(e) => {
                return self.excluded(&name, format!("the root could not be read: {}", why(&e)))
            }
        };
        self.directory(&name, &meta)?;
        let mut todo = vec![(dir.clone(), PathBuf::new(), Some(first))];
        while let Some((abs, rel, listed)) = todo.pop() {
            let names = match listed.map_or_else(|| listing(&abs), Ok) {
                Ok(names) => names,
                Err(e) => {
                    self.excluded(
                        &name.join(&rel),
                        format!("the directory could not be read: {}", why(&e)),
                    )?;
                    continue;
                }
            };
            for child in names {
                if (self.cancelled)() {
                    return Err(Stop::Cancelled);
                }
                let (abs, rel) = (abs.join(&child), rel.join(&child));
                let archived = name.join(&rel);
                if let Some(glob) = excluded_by(root, &rel) {
                    self.excluded(&archived, format!("exclude glob {glob:?}"))?;
                    continue;
                }
                let meta = match fs::symlink_metadata(&abs) {
                    Ok(meta) => meta,
                    // Gone since the directory was listed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        self.excluded(&archived, format!("could not be read: {}", why(&e)))?;
                        continue;
                    }
                };
                let kind = meta.file_type();
                if kind.is_dir() {
                    self.directory(&archived, &meta)?;
                    todo.push((abs, rel, None));
                } else if kind.is_symlink() {
                    self.link(&dir, &abs, &archived, &meta)?;
                } else if kind.is_file() {
                    self.file(root, &abs, &archived)?;
                } else {
                    self.excluded(&archived, special(&meta))?;
                }
            }
        }
        Ok(())
    }

    fn directory(&mut self, archived: &Path, meta: &Metadata) -> Result<(), Stop> {
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        self.tar
            .append_data(&mut header, archived, io::empty())
            .map_err(Stop::Write)
    }

    /// A link is kept as a link when where it leads is inside the root.
    fn link(
        &mut self,
        root: &Path,
        abs: &Path,
        archived: &Path,
        meta: &Metadata,
    ) -> Result<(), Stop> {
        let Ok(target) = fs::read_link(abs) else {
            return self.excluded(archived, "a symbolic link that could not be read");
        };
        let inside = match fs::canonicalize(abs) {
            Ok(real) => real.starts_with(root),
            // A link to nothing: judged by its text.
            Err(_) => {
                let joined = abs.parent().unwrap_or(root).join(&target);
                normalize(&joined).is_some_and(|p| p.starts_with(root))
            }
        };
        if !inside {
            return self.excluded(
                archived,
                "a symbolic link leading out of the root, not followed",
            );
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        self.tar
            .append_link(&mut header, archived, &target)
            .map_err(Stop::Write)?;
        self.note(
            archived,
            FileOutcome::Archived,
            Vec::new(),
            Some("a symbolic link inside the root, kept as a link".into()),
        )
    }

    fn file(&mut self, root: &FileRoot, abs: &Path, archived: &Path) -> Result<(), Stop> {
        let max = self.plan.max_file;
        let (content, meta) = match read_stable(abs, max, self.after_read) {
            ReadOutcome::Content(content, meta) => (content, meta),
            ReadOutcome::TooLarge(size) => {
                return self.excluded(
                    archived,
                    format!("{size} bytes, larger than file_max_bytes ({max})"),
                );
            }
            ReadOutcome::Changed => {
                return self.excluded(archived, "kept changing while it was read");
            }
            ReadOutcome::NotRegular(meta) => return self.excluded(archived, special(&meta)),
            ReadOutcome::Failed(e) => {
                return self.excluded(archived, format!("could not be read: {}", why(&e)));
            }
        };
        let (content, outcome, keys) =
            match redact::check(abs, &content, root.redact, &self.plan.words) {
                Outcome::AsIs => (content, FileOutcome::Archived, Vec::new()),
                Outcome::Redacted { content, keys } => (content, FileOutcome::Redacted, keys),
                Outcome::Excluded(reason) => return self.excluded(archived, reason),
            };
        self.total = self.total.saturating_add(content.len() as u64);
        if self.total > self.plan.max_total {
            return Err(Stop::TooLarge(format!(
                "the file roots hold more than files_max_total_bytes ({} bytes); raise it or \
                 exclude files",
                self.plan.max_total
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        self.tar
            .append_data(&mut header, archived, &content[..])
            .map_err(Stop::Write)?;
        self.note(archived, outcome, keys, None)
    }

    fn excluded(&mut self, archived: &Path, reason: impl Into<String>) -> Result<(), Stop> {
        self.note(
            archived,
            FileOutcome::Excluded,
            Vec::new(),
            Some(reason.into()),
        )
    }

    fn note(
        &mut self,
        archived: &Path,
        outcome: FileOutcome,
        keys: Vec<String>,
        reason: Option<String>,
    ) -> Result<(), Stop> {
        if self.entries.len() >= MAX_ENTRIES {
            return Err(Stop::TooLarge(format!(
                "the file roots hold more than {MAX_ENTRIES} files; exclude some"
            )));
        }
        self.entries.push(FileEntry {
            path: shown(archived),
            outcome,
            keys,
            reason,
        });
        Ok(())
    }
}

/// A directory's entries, sorted so archives of the same tree are alike.
fn listing(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// What a special file is, as the reason it is left out.
fn special(meta: &Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    };
    format!("{what}, skipped")
}

/// An I/O error in words, without the path (the entry names it).
fn why(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "it is gone".into(),
        _ => e
            .raw_os_error()
            .map(|n| io::Error::from_raw_os_error(n).to_string())
            .unwrap_or_else(|| e.kind().to_string()),
    }
}

/// A path with `.` and `..` taken out, if it does not climb above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

enum ReadOutcome {
    Content(Vec<u8>, Metadata),
    TooLarge(u64),
    Changed,
    NotRegular(Metadata),
    Failed(io::Error),
}

/// Reads a file whole, through one descriptor opened without following a
/// link and without blocking (a FIFO put in its place since the listing),
/// and only if it did not change while read: its size, times and inode
/// are the same before and after, and what was read is that size.
fn read_stable(path: &Path, max: u64, after_read: &mut dyn FnMut(&Path)) -> ReadOutcome {
    for _ in 0..READ_ATTEMPTS {
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags())
            .open(path)
        {
            Ok(file) => file,
            Err(e) => return ReadOutcome::Failed(e),
        };
        let before = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return ReadOutcome::Failed(e),
        };
        if !before.is_file() {
            return ReadOutcome::NotRegular(before);
        }
        if before.len() > max {
            return ReadOutcome::TooLarge(before.len());
        }
        let mut content = Vec::with_capacity(before.len() as usize);
        if let Err(e) = (&file).take(max + 1).read_to_end(&mut content) {
            return ReadOutcome::Failed(e);
        }
        if content.len() as u64 > max {
            return ReadOutcome::TooLarge(content.len() as u64);
        }
        after_read(path);
        let after = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return ReadOutcome::Failed(e),
        };
        if same(&before, &after) && content.len() as u64 == after.len() {
            drop::<File>(file);
            return ReadOutcome::Content(content, after);
        }
    }
    ReadOutcome::Changed
}

fn libc_flags() -> i32 {
    use nix::fcntl::OFlag;
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).bits()
}

fn same(a: &Metadata, b: &Metadata) -> bool {
    (
        a.len(),
        a.ino(),
        a.mtime(),
        a.mtime_nsec(),
        a.ctime(),
        a.ctime_nsec(),
    ) == (
        b.len(),
        b.ino(),
        b.mtime(),
        b.mtime_nsec(),
        b.ctime(),
        b.ctime_nsec(),
    )
}

/// A path as the manifest and messages show it: UTF-8 as it is, with `\`,
/// control characters (a newline in a name) and bytes that are not UTF-8
/// escaped, so that one name is one line and the same tar path always
/// shows the same.
pub fn shown(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
