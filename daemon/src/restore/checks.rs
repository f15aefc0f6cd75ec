//! The operator's own smoke checks (`[[smoke_check]]`): SQL from the
//! configuration, run in the restored scratch database after every drill
//! and every real restore, before the swap. Each runs alone in a read-only
//! transaction on a connection of its own, with a statement timeout, through
//! the extended protocol (so one statement, never a script), and is rolled
//! back whatever it did. A check passes when it returns exactly one row
//! whose first column is what the check expects.
//!
//! What a client sees of a check is a message in the daemon's words: the
//! query's text and the server's error message go only to the daemon's log
//! (under the restore's id), since neither was reviewed for a client.

use std::time::{Duration, Instant};

use berkut_proto::wire::SmokeCheckResult;
use futures::{pin_mut, TryStreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use crate::config::smoke::{Expect, SmokeCheck};
use crate::db::Db;

/// How much longer than the statement timeout the daemon waits for the
/// server before it gives up on a check itself (a server that does not
/// even cancel).
const GRACE: Duration = Duration::from_secs(10);

/// Runs every check against database `scratch`, in order; every check
/// runs even when an earlier one failed, so the evidence shows them all.
pub async fn run(
    target: &Db,
    scratch: &str,
    checks: &[SmokeCheck],
    timeout: Duration,
    restore: &str,
) -> Vec<SmokeCheckResult> {
    let mut results = Vec::with_capacity(checks.len());
    for check in checks {
        let started = Instant::now();
        let outcome =
            match tokio::time::timeout(timeout + GRACE, run_one(target, scratch, check, timeout))
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Failed::new(
                    format!("timed out after {} s", timeout.as_secs()),
                    "the server did not answer in time",
                )),
            };
        let duration_ms = started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        let (passed, message) = match outcome {
            Ok(()) => (true, "passed".to_owned()),
            Err(f) => {
                tracing::warn!(
                    restore,
                    check = %check.name,
                    sql = %check.sql,
                    detail = %f.detail,
                    "a smoke check failed: {}",
                    f.message
                );
                (false, f.message)
            }
        };
        results.push(SmokeCheckResult {
            name: check.name.clone(),
            passed,
            duration_ms,
            message,
        });
    }
    results
}

/// Why a check failed: `message` for anyone, `detail` for the log.
struct Failed {
    message: String,
    detail: String,
}

impl Failed {
    fn new(message: impl Into<String>, detail: impl Into<String>) -> Failed {
        Failed {
            message: message.into(),
            detail: detail.into(),
        }
    }

    fn plain(message: impl Into<String>) -> Failed {
        let message = message.into();
        Failed {
            detail: message.clone(),
            message,
        }
    }
}

async fn run_one(
    target: &Db,
    scratch: &str,
    check: &SmokeCheck,
    timeout: Duration,
) -> Result<(), Failed> {
    let client = target.connect_to(scratch).await.map_err(|e| {
        Failed::new(
            "could not connect to the restored database",
            e.detail.unwrap_or(e.message),
        )
    })?;
    // The daemon's own sessions turn timeouts off (`db::Db::new`); a
    // check gets its own, within a transaction that cannot write.
    let millis = timeout.as_millis().min(i32::MAX as u128);
    let begin = format!(
        "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
         SET LOCAL statement_timeout = {millis}; SET LOCAL lock_timeout = {millis}; \
         SET LOCAL idle_in_transaction_session_timeout = 0"
    );
    client
        .batch_execute(&begin)
        .await
        .map_err(|e| Failed::new("could not start a read-only transaction", e.to_string()))?;
    // A snapshot is taken before the check runs, so a check that is
    // `SET TRANSACTION READ WRITE` is refused like any other write.
    client
        .batch_execute("SELECT 1")
        .await
        .map_err(|e| Failed::new("could not start a read-only transaction", e.to_string()))?;
    let outcome = first_rows(&client, &check.sql, timeout).await;
    // Rolled back whatever it did; the connection is dropped anyway.
    let _ = client.batch_execute("ROLLBACK").await;
    let rows = outcome?;
    match rows.as_slice() {
        [] => Err(Failed::plain("returned no row; exactly one was expected")),
        [row] => compare(row, &check.expect),
        _ => Err(Failed::plain(
            "returned more than one row; exactly one was expected",
        )),
    }
}

/// At most the first two rows: enough to tell one from several, without
/// reading a large result into memory.
async fn first_rows(client: &Client, sql: &str, timeout: Duration) -> Result<Vec<Row>, Failed> {
    let stream = client
        .query_raw(sql, std::iter::empty::<&str>())
        .await
        .map_err(|e| server_failure(&e, timeout))?;
    pin_mut!(stream);
    let mut rows = Vec::new();
    while rows.len() < 2 {
        match stream.try_next().await {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => break,
            Err(e) => return Err(server_failure(&e, timeout)),
        }
    }
    Ok(rows)
}

/// A server error in the daemon's words, chosen by its SQLSTATE: the
/// server's own message (which may quote the query or the data) goes to the
/// log only.
fn server_failure(e: &tokio_postgres::Error, timeout: Duration) -> Failed {
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    let Some(code) = e.code() else {
        return Failed::new("the connection to the restored database failed", detail);
    };
    let message = if *code == SqlState::QUERY_CANCELED {
        format!("timed out after {} s", timeout.as_secs())
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        "tried to write: smoke checks run read-only".to_owned()
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        format!("waited more than {} s for a lock", timeout.as_secs())
    } else if code.code().starts_with("42") {
        // Syntax errors and access rule violations: a missing table or
        // column, a function that does not exist, a permission.
        format!(
            "is not valid SQL for the restored database (SQLSTATE {})",
            code.code()
        )
    } else if *code == SqlState::ACTIVE_SQL_TRANSACTION
        || *code == SqlState::NO_ACTIVE_SQL_TRANSACTION
        || code.code().starts_with("25")
    {
        format!(
            "cannot run inside a read-only transaction (SQLSTATE {})",
            code.code()
        )
    } else {
        format!("failed on the server (SQLSTATE {})", code.code())
    };
    Failed::new(message, detail)
}

/// Whether the row's first column is what the check expects.
fn compare(row: &Row, expect: &Expect) -> Result<(), Failed> {
    let Some(column) = row.columns().first() else {
        return Err(Failed::plain("returned a row with no column"));
    };
    let ty = column.type_().clone();
    let found: Found = if ty == Type::BOOL {
        Found::Bool(row.try_get::<_, Option<bool>>(0).ok().flatten())
    } else if ty == Type::INT2 {
        Found::Int(
            row.try_get::<_, Option<i16>>(0)
                .ok()
                .flatten()
                .map(i64::from),
        )
    } else if ty == Type::INT4 {
        Found::Int(
            row.try_get::<_, Option<i32>>(0)
                .ok()
                .flatten()
                .map(i64::from),
        )
    } else if ty == Type::INT8 {
        Found::Int(row.try_get::<_, Option<i64>>(0).ok().flatten())
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(&ty) {
        Found::Text(row.try_get::<_, Option<String>>(0).ok().flatten())
    } else {
        return Err(Failed::plain(format!(
            "returned a value of type {}; a check's first column must be a boolean, an \
             integer or a text",
            ty.name()
        )));
    };
    let null = || Failed::plain(format!("returned NULL, expected {expect}"));
    let pass = match (expect, &found) {
        (Expect::Bool(want), Found::Bool(got)) => got.ok_or_else(null)? == *want,
        (Expect::Int(want), Found::Int(got)) => got.ok_or_else(null)? == *want,
        (Expect::Text(want), Found::Text(got)) => got.as_deref().ok_or_else(null)? == want.as_str(),
        _ => {
            return Err(Failed::plain(format!(
                "returned a {}, expected {expect}",
                found.kind()
            )))
        }
    };
    if pass {
        Ok(())
    } else {
        // The value found is the database's data, which a client of the
        // daemon need not see; only its kind and the expectation are said.
        Err(Failed::new(
            format!("returned another value than the expected {expect}"),
            format!("found {found:?}"),
        ))
    }
}

#[derive(Debug)]
enum Found {
    Bool(Option<bool>),
    Int(Option<i64>),
    Text(Option<String>),
}

impl Found {
    fn kind(&self) -> &'static str {
        match self {
            Found::Bool(_) => "boolean",
            Found::Int(_) => "integer",
            Found::Text(_) => "text",
        }
    }
}

/// The failure of a restore whose checks did not all pass, in words.
pub fn verdict(results: &[SmokeCheckResult]) -> Option<String> {
    let failed: Vec<&SmokeCheckResult> = results.iter().filter(|r| !r.passed).collect();
    let first = failed.first()?;
    let more = match failed.len() {
        1 => String::new(),
        n => format!(" ({} more failed)", n - 1),
    };
    Some(format!(
        "smoke check {:?} failed: {}{more}",
        first.name, first.message
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_names_the_first_failed_check() {
        let r = |name: &str, passed| SmokeCheckResult {
            name: name.into(),
            passed,
            duration_ms: 1,
            message: if passed { "passed" } else { "returned no row" }.into(),
        };
        assert_eq!(verdict(&[r("a", true)]), None);
        assert_eq!(verdict(&[]), None);
        assert_eq!(
            verdict(&[r("a", true), r("b", false), r("c", false)]).unwrap(),
            "smoke check \"b\" failed: returned no row (1 more failed)"
        );
    }
}
