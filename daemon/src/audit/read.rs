//! Reading the trail: pages of its newest lines (`audit_tail`) and the check
//! of the whole chain against the daemon's head (`audit_verify`).
//!
//! Both work on a snapshot: the files opened, the current file's length and
//! the head, all taken under the writer's lock, so a rotation, a removal or
//! an append while the files are read changes nothing they see.
//!
//! Lines are numbered from the genesis (1 is the first line ever written),
//! removed ones included, so a number keeps naming the same line across
//! rotations and removals: `audit_tail`'s cursor is such a number.

use std::fs::File;

use super::chain::{self, Head, Line, Reason, TrailFile, GENESIS};

pub struct Snapshot {
    /// Oldest first, each with the bytes of it that belong to the snapshot.
    files: Vec<(TrailFile, File, u64)>,
    /// Where the daemon knows the trail ends; `None` when it does not.
    head: Option<Head>,
}

/// The outcome of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The lines read.
    pub lines: u64,
    /// The lines before the oldest file kept, removed under the bound.
    pub removed: u64,
    /// The first line that does not follow from the one before (or where
    /// the trail stops matching the head): file name, line number in it
    /// (from 1), and why.
    pub first_bad: Option<(String, u64, String)>,
}

/// A page of the trail, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub lines: Vec<String>,
    /// The number of the first line of the page when older lines remain:
    /// the cursor for the page before this one.
    pub next: Option<u64>,
}

impl Snapshot {
    pub fn new(files: Vec<(TrailFile, File, u64)>, head: Option<Head>) -> Snapshot {
        Snapshot { files, head }
    }

    /// Opens the files of `dir` as they are, with no head (for tests and
    /// for a trail the daemon is not writing).
    pub fn of_dir(dir: &std::path::Path) -> Snapshot {
        let files = chain::files(dir)
            .into_iter()
            .filter_map(|f| {
                let file = File::open(&f.path).ok()?;
                let len = file.metadata().ok()?.len();
                Some((f, file, len))
            })
            .collect();
        Snapshot { files, head: None }
    }

    fn lines_of(&self, i: usize) -> std::io::Result<Vec<String>> {
        let (_, file, len) = &self.files[i];
        chain::read_lines(file, Some(*len))
    }

    /// How many lines came before each file: from its checkpoint, or, for
    /// a file without one (written before checkpoints), by counting the
    /// file before it.
    fn bases(&self) -> Vec<u64> {
        let mut bases: Vec<u64> = Vec::with_capacity(self.files.len());
        for i in 0..self.files.len() {
            let first = chain::first_line(&self.files[i].1);
            let mark = first
                .as_deref()
                .and_then(Line::parse)
                .and_then(|l| l.checkpoint().map(|m| m.lines));
            let base = match mark {
                Some(lines) => lines,
                None if i == 0 => 0,
                None => bases[i - 1] + self.lines_of(i - 1).map_or(0, |l| l.len() as u64),
            };
            bases.push(base);
        }
        bases
    }

    /// Where the trail as it stands ends.
    pub fn end(&self) -> Head {
        let bases = self.bases();
        for i in (0..self.files.len()).rev() {
            let lines = self.lines_of(i).unwrap_or_default();
            if let Some(last) = lines.last() {
                return Head {
                    lines: bases[i] + lines.len() as u64,
                    last: chain::hash(last),
                };
            }
        }
        Head {
            lines: bases.first().copied().unwrap_or(0),
            last: GENESIS.to_owned(),
        }
    }

    /// The hash of the line numbered `number` (the genesis for 0), if the
    /// trail holds it.
    pub fn hash_at(&self, number: u64) -> Option<String> {
        if number == 0 {
            return Some(GENESIS.to_owned());
        }
        let bases = self.bases();
        let i = (0..self.files.len()).rev().find(|&i| bases[i] < number)?;
        let lines = self.lines_of(i).ok()?;
        let line = lines.get((number - bases[i] - 1) as usize)?;
        Some(chain::hash(line))
    }

    /// Up to `count` lines before the line numbered `before` (the newest
    /// when `None`), newest ones first to go in, in at most `budget` bytes
    /// (but always one line when there is one).
    pub fn page(&self, count: usize, before: Option<u64>, budget: usize) -> Page {
        let bases = self.bases();
        let oldest = bases.first().map_or(1, |b| b + 1);
        let mut lines: Vec<String> = Vec::new();
        let mut first_number = None;
        let mut bytes = 0usize;
        'files: for i in (0..self.files.len()).rev() {
            if lines.len() >= count {
                break;
            }
            if before.is_some_and(|b| b <= bases[i] + 1) {
                continue;
            }
            let Ok(in_file) = self.lines_of(i) else {
                continue;
            };
            for (k, line) in in_file.into_iter().enumerate().rev() {
                let number = bases[i] + k as u64 + 1;
                if before.is_some_and(|b| number >= b) {
                    continue;
                }
                if lines.len() >= count || (!lines.is_empty() && bytes + line.len() > budget) {
                    break 'files;
                }
                bytes += line.len();
                lines.push(line);
                first_number = Some(number);
            }
        }
        lines.reverse();
        Page {
            lines,
            next: first_number.filter(|n| *n > oldest),
        }
    }

    /// Checks the chain from the oldest file kept to the end, and the end
    /// against the head.
    pub fn verify(&self) -> Verdict {
        let mut verdict = Verdict {
            lines: 0,
            removed: 0,
            first_bad: None,
        };
        fn bad(verdict: &mut Verdict, name: &str, number: u64, why: String) {
            verdict.first_bad = Some((name.to_owned(), number, why));
        }
        let mut prev: Option<String> = None;
        let mut count = 0u64;
        // The oldest rotated file the newest checkpoint says is kept, and
        // where that checkpoint stands.
        let mut kept_from: Option<(u64, String, u64)> = None;
        let mut last_at = (chain::CURRENT.to_owned(), 0u64);
        let mut previous_number: Option<u64> = None;
        for i in 0..self.files.len() {
            let (tf, _, _) = &self.files[i];
            let name = tf.name();
            if let (Some(before), Some(n)) = (previous_number, tf.number) {
                if n != before + 1 {
                    bad(
                        &mut verdict,
                        &name,
                        1,
                        format!(
                            "the file before it, {}.{}, is missing",
                            chain::CURRENT,
                            before + 1
                        ),
                    );
                    return verdict;
                }
            }
            previous_number = tf.number.or(previous_number);
            let lines = match self.lines_of(i) {
                Ok(lines) => lines,
                Err(_) => {
                    bad(&mut verdict, &name, 1, "unreadable".into());
                    return verdict;
                }
            };
            for (k, text) in lines.iter().enumerate() {
                let number = k as u64 + 1;
                verdict.lines += 1;
                last_at = (name.clone(), number);
                let Some(line) = Line::parse(text) else {
                    bad(&mut verdict, &name, number, "not an audit event".into());
                    return verdict;
                };
                let expected = match &prev {
                    Some(p) => p.clone(),
                    // The first line kept: the genesis, or a checkpoint
                    // recording the lines removed before it.
                    None => match line.checkpoint() {
                        Some(mark) => {
                            count = mark.lines;
                            verdict.removed = mark.lines;
                            line.prev().to_owned()
                        }
                        None => GENESIS.to_owned(),
                    },
                };
                if line.prev() != expected {
                    let why = if prev.is_none() {
                        "the trail starts here, after lines that were removed, and no checkpoint records them".into()
                    } else {
                        "does not follow from the line before it (this line or the one before was edited, removed or moved)".into()
                    };
                    bad(&mut verdict, &name, number, why);
                    return verdict;
                }
                if let Some(mark) = line.checkpoint() {
                    if mark.lines != count {
                        bad(&mut verdict, &name, number, format!("a checkpoint that counts {} lines before it, where the trail has {count}", mark.lines));
                        return verdict;
                    }
                    if mark.reason == Reason::HeadMismatch {
                        let expected = mark.expected.as_ref().map_or_else(
                            || "an unreadable head file".to_owned(),
                            |h| format!("line {} with hash {}", h.lines, h.last),
                        );
                        bad(&mut verdict, &name, number, format!("when the daemon started, the trail did not end where it had left it ({expected}); lines were cut, added or edited while it was stopped"));
                        return verdict;
                    }
                    kept_from = mark.first.map(|f| (f, name.clone(), number));
                }
                count += 1;
                prev = Some(chain::hash(text));
            }
        }
        if let Some((first, at, number)) = kept_from {
            let oldest = self.files.first().and_then(|(f, _, _)| f.number);
            if oldest.is_none_or(|o| o > first) {
                bad(
                    &mut verdict,
                    &at,
                    number,
                    format!("this checkpoint says the trail keeps {}.{first} and later files, but {}.{first} is missing", chain::CURRENT, chain::CURRENT),
                );
                return verdict;
            }
        }
        if let Some(head) = &self.head {
            let last = prev.unwrap_or_else(|| GENESIS.to_owned());
            let (name, number) = last_at;
            let why = if count < head.lines {
                Some(format!("the trail ends here, at line {count}, but the daemon wrote {} lines: the newest lines were removed", head.lines))
            } else if count > head.lines {
                Some(format!(
                    "the trail goes on past line {}, the last the daemon wrote: lines were added",
                    head.lines
                ))
            } else if last != head.last {
                Some(
                    "this last line is not the one the daemon wrote: it was edited or replaced"
                        .to_owned(),
                )
            } else {
                None
            };
            if let Some(why) = why {
                bad(&mut verdict, &name, number, why);
            }
        }
        verdict
    }
}
