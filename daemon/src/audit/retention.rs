//! The bound on the audit directory: after a rotation the oldest rotated
//! files are removed until they and a full current file fit in
//! `audit_keep_bytes`. So the directory never holds more than the bound
//! (and the small head file), whatever a peer sends.
//!
//! The chain survives: every file begun by rotation opens with a checkpoint
//! (see `chain`), so the oldest file kept is where `audit_verify` starts. A
//! file written before checkpoints existed has none; it is removed together
//! with the ones before it, so the oldest file kept always has one.

use std::path::Path;

use super::chain::{self, Line, GENESIS};

/// Removes the oldest rotated files while the rotated ones take more than
/// `budget` bytes. Returns the number of the oldest rotated file kept, if
/// any, and the names of the files removed.
pub fn enforce(dir: &Path, budget: u64) -> std::io::Result<(Option<u64>, Vec<String>)> {
    let mut rotated: Vec<(chain::TrailFile, u64)> = chain::files(dir)
        .into_iter()
        .filter(|f| f.number.is_some())
        .filter_map(|f| {
            let len = std::fs::symlink_metadata(&f.path).ok()?.len();
            Some((f, len))
        })
        .collect();
    let mut total: u64 = rotated.iter().map(|(_, len)| len).sum();
    let mut removed = Vec::new();
    let mut start = 0;
    // A file that starts no chain (older than checkpoints) may only be the
    // oldest kept when nothing before it was removed.
    while start < rotated.len()
        && (total > budget || (start > 0 && !starts_a_chain(&rotated[start].0)))
    {
        let (file, len) = &rotated[start];
        std::fs::remove_file(&file.path)?;
        removed.push(file.name());
        total -= len;
        start += 1;
    }
    rotated.drain(..start);
    Ok((rotated.first().and_then(|(f, _)| f.number), removed))
}

/// Whether a file can be the oldest kept: it opens with a checkpoint or
/// with the first line of all.
fn starts_a_chain(file: &chain::TrailFile) -> bool {
    let Ok(f) = std::fs::File::open(&file.path) else {
        return false;
    };
    match chain::first_line(&f).as_deref().and_then(Line::parse) {
        Some(line) => line.checkpoint().is_some() || line.prev() == GENESIS,
        None => false,
    }
}
