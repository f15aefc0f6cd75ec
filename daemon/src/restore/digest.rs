//! The `DIGEST` of a restore's evidence directory: the SHA-256 of every
//! file in it (`summary.json`, the step logs), one `sha256sum` line each,
//! sorted by path, so an auditor can check it with `sha256sum -c DIGEST`
//! as well as with `berkutctl restore evidence RID --verify`. It is written
//! when a restore ends and whenever its summary changes afterwards
//! (rollback, cleanup, start-up recovery), atomically like the summary.
//! Temporary files of an atomic write in progress (`*.tmp`) are not
//! evidence and are left out.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const DIGEST_FILE: &str = "DIGEST";

/// The files of the directory (but `DIGEST` and `*.tmp`) by their path
/// relative to it, with their SHA-256. A link or anything but a file or a
/// directory is an error: evidence holds none.
pub fn hash_tree(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for path in files(dir)? {
        let sha = sha256_file(&dir.join(&path))?;
        out.insert(path, sha);
    }
    Ok(out)
}

/// The paths, relative to `dir`, of the files the `DIGEST` covers (every
/// file but `DIGEST` itself and `*.tmp`), sorted. A link or anything but a
/// file or a directory is an error: evidence holds none.
pub fn files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(std::io::Error::other("a file name that is not UTF-8"));
            };
            let path = rel.join(name);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_file() {
                if (rel.as_os_str().is_empty() && name == DIGEST_FILE) || name.ends_with(".tmp") {
                    continue;
                }
                out.push(path.to_string_lossy().into_owned());
            } else {
                return Err(std::io::Error::other(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes the `DIGEST` of `dir` anew.
pub fn write(dir: &Path) -> std::io::Result<()> {
    let text: String = hash_tree(dir)?
        .iter()
        .map(|(path, sha)| format!("{sha}  {path}\n"))
        .collect();
    crate::fsutil::write_atomically(&dir.join(DIGEST_FILE), text.as_bytes())
}

/// What a check of the `DIGEST` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Files whose digest matched.
    pub matched: usize,
    /// What is wrong, in words: a file changed, missing, or not listed.
    pub problems: Vec<String>,
}

/// Checks `dir` against its `DIGEST`.
pub fn verify(dir: &Path) -> std::io::Result<Checked> {
    let listed = std::fs::read_to_string(dir.join(DIGEST_FILE))?;
    Ok(compare(&listed, &hash_tree(dir)?))
}

/// Compares the text of a `DIGEST` with the files found (path → SHA-256).
pub fn compare(listed: &str, found: &BTreeMap<String, String>) -> Checked {
    let mut checked = Checked::default();
    let mut seen = std::collections::BTreeSet::new();
    for line in listed.lines() {
        let Some((sha, path)) = line.split_once("  ") else {
            checked
                .problems
                .push("the DIGEST holds a line that is not `sha256  path`".into());
            continue;
        };
        seen.insert(path);
        match found.get(path) {
            Some(actual) if actual == sha => checked.matched += 1,
            Some(_) => checked.problems.push(format!("{path}: changed")),
            None => checked.problems.push(format!("{path}: missing")),
        }
    }
    for path in found.keys() {
        if !seen.contains(path.as_str()) {
            checked.problems.push(format!("{path}: not in the DIGEST"));
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_lists_every_file_and_catches_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("logs")).unwrap();
        std::fs::write(d.join("summary.json"), "{}\n").unwrap();
        std::fs::write(d.join("logs/00-verify.log"), "ok\n").unwrap();
        std::fs::write(d.join("summary.tmp"), "half").unwrap();
        write(d).unwrap();
        let text = std::fs::read_to_string(d.join(DIGEST_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("  logs/00-verify.log\n"), "{text}");
        // What `sha256sum` says of "ok\n".
        assert_eq!(
            text.lines().next().unwrap(),
            "dc51b8c96c2d745df3bd5590d990230a482fd247123599548e0632fdbf97fc22  logs/00-verify.log"
        );
        assert_eq!(
            verify(d).unwrap(),
            Checked {
                matched: 2,
                problems: vec![]
            }
        );

        std::fs::write(d.join("logs/00-verify.log"), "forged\n").unwrap();
        std::fs::write(d.join("logs/99-extra.log"), "x").unwrap();
        std::fs::remove_file(d.join("summary.json")).unwrap();
        let c = verify(d).unwrap();
        assert_eq!(c.matched, 0);
        assert_eq!(
            c.problems,
            [
                "logs/00-verify.log: changed",
                "summary.json: missing",
                "logs/99-extra.log: not in the DIGEST"
            ]
        );
    }
}
