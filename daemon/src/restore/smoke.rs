//! The smoke checks of a restored database, before anything relies on it:
//! every table the dump creates exists, with the rows the backup counted in
//! its snapshot (when it counted them), and every partition the dump
//! attaches is attached. The tables come from the dump's own table of
//! contents (`toc`) and the recorded counts from the manifest; what was
//! restored is read from the scratch database's catalog, so names with
//! spaces, quotes, newlines or any script are compared exactly. Only when
//! the table of contents cannot be read does the list come from the
//! restored catalog itself (then only the recorded counts can be missed).

use std::collections::{HashMap, HashSet};

use berkut_proto::manifest::Manifest;
use berkut_proto::wire::CountCheck;

use super::sql;
use super::toc::Toc;
use crate::db::Db;
use crate::error::OpError;

/// What the checks found.
pub struct Smoke {
    pub counts: Vec<CountCheck>,
    /// Anything wrong beyond the counts (a partition left unattached).
    pub problems: Vec<String>,
}

impl Smoke {
    fn bad(&self) -> impl Iterator<Item = &CountCheck> {
        self.counts.iter().filter(|c| !passes(c))
    }

    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} tables checked, {} differ",
            self.counts.len(),
            self.bad().count()
        );
        if !self.problems.is_empty() {
            text.push_str(&format!(
                ", {} partitions not attached",
                self.problems.len()
            ));
        }
        text
    }

    /// The first thing wrong, in words, if any.
    pub fn first_problem(&self) -> Option<String> {
        self.bad()
            .next()
            .map(CountCheck::describe)
            .or_else(|| self.problems.first().cloned())
    }
}

fn passes(c: &CountCheck) -> bool {
    c.found.is_some() && (c.expected.is_none() || c.expected == c.found)
}

/// A table's name as SQL writes it, escaped to stay on one line.
pub fn shown(schema: &str, table: &str) -> String {
    berkut_proto::wire::restore::table_name(schema, table)
}

/// Runs the checks against database `scratch`.
pub async fn check(
    target: &Db,
    scratch: &str,
    manifest: &Manifest,
    toc: Option<&Toc>,
    parallel: usize,
) -> Result<Smoke, OpError> {
    let catalog = sql::relations(target, scratch).await?;
    let recorded: HashMap<(String, String), i64> = manifest
        .tables
        .iter()
        .flatten()
        .map(|t| ((t.schema.clone(), t.table.clone()), t.rows))
        .collect();

    // The dump's tables in its order, then any the manifest counted that
    // the dump does not list (there should be none).
    let mut names: Vec<(String, String)> = match toc {
        Some(toc) => toc
            .tables()
            .map(|e| (e.schema.clone(), e.name.clone()))
            .collect(),
        None => {
            let mut all: Vec<(String, String)> = catalog.keys().cloned().collect();
            all.sort();
            all
        }
    };
    if let Some(tables) = &manifest.tables {
        names.extend(tables.iter().map(|t| (t.schema.clone(), t.table.clone())));
    }
    let mut seen = HashSet::new();
    names.retain(|n| seen.insert(n.clone()));

    let found = sql::count_rows(target, scratch, &names, parallel).await?;
    let counts = names
        .into_iter()
        .zip(found)
        .map(|((schema, table), found)| CountCheck {
            expected: recorded.get(&(schema.clone(), table.clone())).copied(),
            schema,
            table,
            found,
        })
        .collect();

    let problems = toc
        .into_iter()
        .flat_map(|t| t.attached())
        .filter_map(|e| {
            let key = (e.schema.clone(), e.name.clone());
            match catalog.get(&key) {
                Some(r) if r.partition => None,
                Some(_) => Some(format!(
                    "{}: the dump attaches it to its parent table, but it was restored as a table of its own",
                    shown(&e.schema, &e.name)
                )),
                None => Some(format!(
                    "{}: the dump attaches it to its parent table, but it was not restored",
                    shown(&e.schema, &e.name)
                )),
            }
        })
        .collect();
    Ok(Smoke { counts, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: Option<i64>, found: Option<i64>) -> CountCheck {
        CountCheck {
            schema: "public".into(),
            table: "new\nline \"q\"".into(),
            expected,
            found,
        }
    }

    #[test]
    fn checks_read_as_words_never_as_rust() {
        for (e, f, want) in [
            (Some(12), Some(12), "expected 12 rows, found 12"),
            (Some(12), None, "expected 12 rows, found no such table"),
            (Some(1), Some(0), "expected 1 row, found 0 rows"),
            (None, Some(3), "present, 3 rows (the backup counted none)"),
            (None, None, "expected the table, found no such table"),
        ] {
            let text = check(e, f).describe();
            assert!(text.ends_with(want), "{text}");
            assert!(text.starts_with(r#""public"."new\nline ""q""""#), "{text}");
            assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
