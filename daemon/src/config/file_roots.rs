//! The file roots a backup with `include_files` archives, and the rules
//! each is archived by: the plain `file_roots` list (every root redacted,
//! nothing excluded) and `[[file_root]]` entries with their own `exclude`
//! globs (relative to the root) and `redact` switch. Globs are compiled
//! here, once, so a bad one is refused at start or reload; words that make
//! a key look like a secret (`redact_keys`) are added to the built-in ones.

use std::path::PathBuf;

use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;

/// How long one glob or one extra secret word may be, and how many of each.
const MAX_PATTERN_LEN: usize = 256;
const MAX_PATTERNS: usize = 256;

/// One root and its rules.
#[derive(Clone, Debug)]
pub struct FileRoot {
    pub path: PathBuf,
    /// The globs as written, for the manifest to name the one that matched.
    pub exclude: Vec<String>,
    /// The same globs, compiled; matched against the path relative to the
    /// root.
    pub excluded: GlobSet,
    /// Whether secret values in recognised formats are replaced (else a
    /// file is archived as is, unless it is a secret as a whole).
    pub redact: bool,
}

impl FileRoot {
    /// A root of the plain `file_roots` list: the safe defaults.
    pub fn plain(path: PathBuf) -> FileRoot {
        FileRoot {
            path,
            exclude: Vec::new(),
            excluded: GlobSet::empty(),
            redact: true,
        }
    }
}

/// One `[[file_root]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRootEntry {
    path: PathBuf,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default = "yes")]
    redact: bool,
}

fn yes() -> bool {
    true
}

/// Checks one entry; the message of an error is for the caller to say
/// where the entry came from.
pub fn resolve(entry: FileRootEntry) -> Result<FileRoot, String> {
    if !entry.path.is_absolute() {
        return Err(format!(
            "path {:?} must be absolute",
            entry
                .path
                .display()
                .to_string()
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    if entry.exclude.len() > MAX_PATTERNS {
        return Err(format!("at most {MAX_PATTERNS} exclude globs per root"));
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in &entry.exclude {
        if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "each exclude glob must be 1 to {MAX_PATTERN_LEN} bytes long"
            ));
        }
        let glob = globset::GlobBuilder::new(pattern)
            // `*` stays within one directory; `**` crosses them.
            .literal_separator(true)
            .build()
            .map_err(|e| format!("exclude glob {pattern:?} is not valid: {}", e.kind()))?;
        builder.add(glob);
    }
    let excluded = builder
        .build()
        .map_err(|e| format!("the exclude globs are not valid: {e}"))?;
    Ok(FileRoot {
        path: entry.path,
        exclude: entry.exclude,
        excluded,
        redact: entry.redact,
    })
}

/// Whether a glob also matches a bare name anywhere: `*.pem` written for a
/// root should catch `certs/x.pem` too, as people expect of exclude lists.
pub fn matching(root: &FileRoot, rel: &std::path::Path) -> Option<String> {
    if root.exclude.is_empty() {
        return None;
    }
    let hit = root.excluded.matches(rel);
    if let Some(i) = hit.first() {
        return Some(root.exclude[*i].clone());
    }
    let name = rel.file_name()?;
    let by_name = root.excluded.matches(std::path::Path::new(name));
    by_name.first().and_then(|i| {
        // Only globs without a separator apply to bare names.
        let pattern = &root.exclude[*i];
        (!pattern.contains('/')).then(|| pattern.clone())
    })
}

/// The extra secret words of `redact_keys`, checked and lower-cased.
pub fn secret_words(words: Vec<String>) -> Result<Vec<String>, String> {
    if words.len() > MAX_PATTERNS {
        return Err(format!("at most {MAX_PATTERNS} words"));
    }
    words
        .into_iter()
        .map(|w| {
            let w = crate::backup::redact::normalize_key(&w);
            if w.is_empty() || w.len() > MAX_PATTERN_LEN {
                Err(format!(
                    "each word must hold 1 to {MAX_PATTERN_LEN} letters or digits"
                ))
            } else {
                Ok(w)
            }
        })
        .collect()
}
