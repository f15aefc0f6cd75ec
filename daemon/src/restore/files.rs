//! Restoring the archived file roots the way the database is restored:
//! beside, then swapped. The tar stream is unpacked straight from the
//! archive into `<root>.berkut-new-<id>` next to each configured root (for a
//! dry-run, into the restore's private temporary directory); the swap moves
//! each live root aside to `<root>.berkut-old-<id>` and the new one into its
//! place, after the database swap; a rollback moves the restored root to
//! `<root>.berkut-restored-<id>` and the old one home; `cleanup` removes
//! whichever of the three is left. An entry is unpacked only to a path that
//! stays inside its root: plain components, and a parent that is still
//! inside after any symlink an earlier entry made.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use berkut_proto::archive::{ArchiveReader, Keyring};
use berkut_proto::manifest::{FileOutcome, Manifest, PartKind};

use crate::error::OpError;

/// Where one root's files are staged, and where the live root goes aside.
#[derive(Clone, Debug)]
pub struct Staged {
    pub root: PathBuf,
    pub new: PathBuf,
    pub old: PathBuf,
    /// Where a rollback moves the restored root aside.
    pub restored: PathBuf,
}

pub fn staging(roots: &[PathBuf], suffix: &str) -> Vec<Staged> {
    roots
        .iter()
        .map(|root| {
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = root.parent().unwrap_or(Path::new("/"));
            Staged {
                root: root.clone(),
                new: parent.join(format!("{name}.berkut-new-{suffix}")),
                old: parent.join(format!("{name}.berkut-old-{suffix}")),
                restored: parent.join(format!("{name}.berkut-restored-{suffix}")),
            }
        })
        .collect()
}

/// Unpacks the archive's files part, with each root's own prefix stripped:
/// the tar holds `srv/uploads/a.txt` for the root `/srv/uploads`. `dry_run_dir` is where a dry-run
/// unpacks (removed with the temporary directory); a real restore unpacks
/// into each root's `new`. Returns the number of entries unpacked and the
/// names of those the manifest says were redacted at backup time, which
/// are written back as they are: with their secret values replaced.
pub fn unpack(
    archive: &Path,
    keyring: &Keyring,
    manifest: &Manifest,
    staged: &[Staged],
    dry_run_dir: Option<&Path>,
) -> Result<(u64, Vec<String>), OpError> {
    let redacted: std::collections::HashSet<&str> = manifest
        .files
        .iter()
        .filter(|f| f.outcome == FileOutcome::Redacted)
        .map(|f| f.path.as_str())
        .collect();
    let mut written_redacted = Vec::new();
    let part = manifest
        .part(PartKind::Files)
        .ok_or_else(|| OpError::internal("no files part"))?
        .name
        .clone();
    let fail = |e: std::io::Error| {
        OpError::unavailable("the archived files could not be unpacked").with_detail(e)
    };
    let file = File::open(archive).map_err(fail)?;
    let mut reader = ArchiveReader::open(BufReader::with_capacity(1 << 20, file), keyring)
        .map_err(|e| OpError::invalid(format!("the archive does not verify: {e}")))?;
    while let Some(reader) = reader
        .next_part()
        .map_err(|e| OpError::invalid(format!("the archive does not verify: {e}")))?
    {
        if reader.name() != part {
            continue;
        }
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        let mut count = 0u64;
        for entry in tar.entries().map_err(fail)? {
            let mut entry = entry.map_err(fail)?;
            let path = entry.path().map_err(fail)?.into_owned();
            let (dest, rel) = match dry_run_dir {
                Some(dir) => (dir.to_path_buf(), path.clone()),
                None => staged
                    .iter()
                    .find_map(|s| {
                        path.strip_prefix(s.root.strip_prefix("/").unwrap_or(&s.root))
                            .ok()
                            .map(|rel| (s.new.clone(), rel.to_path_buf()))
                    })
                    .ok_or_else(|| {
                        OpError::invalid(
                            "the archive holds files of a root that is not configured here",
                        )
                        .with_detail(path.display())
                    })?,
            };
            std::fs::create_dir_all(&dest).map_err(fail)?;
            if rel.as_os_str().is_empty() {
                continue;
            }
            let target = inside(&dest, &rel).ok_or_else(|| {
                OpError::invalid("the archive holds a file path that leaves its root")
                    .with_detail(path.display())
            })?;
            entry.unpack(&target).map_err(fail)?;
            count += 1;
            let shown = crate::backup::files::shown(&path);
            if redacted.contains(shown.as_str()) {
                // The record must fit a reply; the manifest has them all.
                written_redacted.push(berkut_proto::manifest::cut(
                    &shown,
                    berkut_proto::manifest::SUMMARY_MAX_PATH,
                ));
            }
        }
        return Ok((count, written_redacted));
    }
    Err(OpError::invalid("the archive's files part is missing"))
}

/// The path `rel` under `dest`, if it stays there: only plain components,
/// and a parent directory that (after any symlink an earlier entry made)
/// is still inside `dest`.
fn inside(dest: &Path, rel: &Path) -> Option<PathBuf> {
    use std::path::Component;
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    let target = dest.join(rel);
    let parent = target.parent()?;
    std::fs::create_dir_all(parent).ok()?;
    let (parent, dest) = (parent.canonicalize().ok()?, dest.canonicalize().ok()?);
    parent.starts_with(&dest).then_some(target)
}

/// Removes what was staged beside the roots (after a failure).
pub fn remove_staged(staged: &[Staged]) {
    for s in staged {
        if s.new.exists() {
            if let Err(e) = std::fs::remove_dir_all(&s.new) {
                tracing::error!(error = %e, path = %s.new.display(), "a staged file root could not be removed");
            }
        }
    }
}

/// Moves each live root aside and the staged one into its place.
pub fn swap(staged: &[Staged]) -> Result<(), OpError> {
    let fail =
        |e: std::io::Error| OpError::unavailable("a file root could not be swapped").with_detail(e);
    for s in staged.iter().filter(|s| s.new.exists()) {
        if s.root.exists() {
            std::fs::rename(&s.root, &s.old).map_err(fail)?;
        }
        std::fs::rename(&s.new, &s.root).map_err(fail)?;
    }
    Ok(())
}
