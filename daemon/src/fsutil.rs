//! Writing files so that a crash or a planted link does no harm: the
//! atomic replace (`write_atomically`) of the catalogue, the plan, restore
//! records and the maintenance state, the exclusive creation behind it
//! (`create_exclusive`, also the audit head's), and the directory fsync
//! that makes a rename durable, and the free space a write can count on
//! (`free_bytes`). A module of its own so that the files that
//! use it do not import each other for it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `contents` so that a crash leaves either the old or
/// the new file: temporary file, fsync, rename, fsync of the directory.
///
/// The temporary file is created new (`create_exclusive`), so a link planted
/// at its name never makes the daemon write through it; the rename replaces
/// whatever is at `path` itself, a link included, and never follows it.
/// Writers in this process take turns, so two writes of the same file never
/// share its temporary file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = path.with_extension("tmp");
    let mut out = create_exclusive(&tmp, 0o644)?;
    let written = out
        .write_all(contents)
        .and_then(|()| out.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Creates a new file at `path` for writing (`mode` before the umask),
/// never through a link: `O_CREAT | O_EXCL` refuses anything already at the
/// name, and `O_NOFOLLOW` says so explicitly. Something left at the name
/// (a temporary file of a crashed write, or a planted link) is removed
/// first; removing a link removes the link, not its target. If something
/// appears there again before the creation, this fails rather than follow it.
pub fn create_exclusive(path: &Path, mode: u32) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(path)?.is_dir() {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

/// fsyncs a directory so that a rename or removal in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The bytes an unprivileged writer may still use on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_at_the_temporary_name_is_not_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let target = dir.path().join("catalogue.json");
        symlink(&victim, dir.path().join("catalogue.tmp")).unwrap();
        write_atomically(&target, b"new catalogue").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&target).unwrap(), b"new catalogue");
        assert!(!dir.path().join("catalogue.tmp").exists());

        // A link at the final name is replaced, not written through.
        let summary = dir.path().join("summary.json");
        symlink(&victim, &summary).unwrap();
        write_atomically(&summary, b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&summary)
            .unwrap()
            .file_type()
            .is_symlink());

        // A dangling link to where a file would be created makes none.
        let nowhere = dir.path().join("created-through-a-link");
        symlink(&nowhere, dir.path().join("plan.tmp")).unwrap();
        write_atomically(&dir.path().join("plan.json"), b"plan").unwrap();
        assert!(!nowhere.exists());

        // A directory in the way fails cleanly and leaves the file alone.
        std::fs::create_dir(dir.path().join("maintenance.tmp")).unwrap();
        let maintenance = dir.path().join("maintenance.json");
        std::fs::write(&maintenance, b"old").unwrap();
        assert!(write_atomically(&maintenance, b"new").is_err());
        assert_eq!(std::fs::read(&maintenance).unwrap(), b"old");
    }
}
