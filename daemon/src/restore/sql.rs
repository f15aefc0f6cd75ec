//! The SQL a restore runs on the server as a whole: creating the scratch
//! database like the live one, dropping it, and swapping names. It runs on a
//! connection to the `postgres` maintenance database, never to the live one,
//! which must be free to be renamed.

use std::time::Duration;

use tokio_postgres::Client;

use crate::db::{quote_ident, Db, APPLICATION_NAME};
use crate::error::OpError;

/// How long a swap tries to get the live database free of sessions before it
/// gives up and lets connections in again: a session it must not end (the
/// daemon's own busy one) or cannot end keeps the live database as it was.
const SESSIONS_GONE_WITHIN: Duration = Duration::from_secs(15);

pub struct Admin {
    client: Client,
}

fn failed(what: &str) -> impl Fn(tokio_postgres::Error) -> OpError + '_ {
    move |e| OpError::unavailable(format!("the database server refused to {what}")).with_source(&e)
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Admin {
    pub async fn connect(db: &Db) -> Result<Admin, OpError> {
        let client = match db.connect_to("postgres").await {
            Ok(client) => client,
            Err(_) => db.connect_to("template1").await?,
        };
        Ok(Admin { client })
    }

    /// The connection itself, for the restore's other server-level steps.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn exists(&self, name: &str) -> Result<bool, OpError> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await
            .map_err(failed("list its databases"))?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    /// Creates `name` from template0 with the encoding, collation and owner
    /// of `like` when that database exists (a restore into the live server),
    /// with the server's defaults otherwise (a fresh server).
    pub async fn create_like(&self, name: &str, like: &str) -> Result<(), OpError> {
        let row = self
            .client
            .query_opt(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                &[&like],
            )
            .await
            .map_err(failed("describe the live database"))?;
        let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
        if let Some(row) = row {
            let (encoding, collate, ctype, owner): (String, String, String, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            sql.push_str(&format!(
                " ENCODING {} LC_COLLATE {} LC_CTYPE {} OWNER {}",
                literal(&encoding),
                literal(&collate),
                literal(&ctype),
                quote_ident(&owner)
            ));
        }
        self.client
            .batch_execute(&sql)
            .await
            .map_err(failed("create the scratch database"))
    }

    /// Drops a database, ending its sessions; a missing one is fine.
    pub async fn drop(&self, name: &str) -> Result<(), OpError> {
        self.client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(name)
            ))
            .await
            .map_err(failed("drop a database"))
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), OpError> {
        self.client
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            ))
            .await
            .map_err(failed("rename a database"))
    }

    pub async fn allow_connections(&self, name: &str, allow: bool) -> Result<(), OpError> {
        self.client
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
                quote_ident(name)
            ))
            .await
            .map_err(failed("change who may connect to a database"))
    }

    /// Which of `names` exist on the server, in one query.
    pub async fn existing(&self, names: &[String]) -> Result<Vec<String>, OpError> {
        let rows = self
            .client
            .query(
                "SELECT datname::text FROM pg_database WHERE datname = ANY($1)",
                &[&names],
            )
            .await
            .map_err(failed("list its databases"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Ends the application's sessions on `name`; returns their pids. The
    /// daemon's own sessions (its `application_name`) are spared while they
    /// work: a busy one belongs to a job, which is waited for, never cut off
    /// (the caller holds every job slot, so none should be left). Idle ones
    /// are pooled connections that hold nothing, and are closed like any
    /// other, since a renamed database must have no session at all.
    pub async fn terminate_sessions(&self, name: &str) -> Result<Vec<i32>, OpError> {
        let rows = self
            .client
            .query(
                // In the select list, so only the rows the WHERE keeps are
                // ended (a qual's evaluation order is the planner's).
                "SELECT pid, backend_type = 'client backend', pg_terminate_backend(pid) \
                 FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() \
                 AND NOT (application_name = $2 AND state IS DISTINCT FROM 'idle')",
                &[&name, &APPLICATION_NAME],
            )
            .await
            .map_err(failed("end the sessions on the live database"))?;
        // Only clients count as sessions ended; an autovacuum worker on
        // the database is stopped too, but it was nobody's session.
        Ok(rows
            .iter()
            .filter(|r| r.get::<_, Option<bool>>(1).unwrap_or(false))
            .map(|r| r.get::<_, i32>(0))
            .collect())
    }

    /// Moves `live` aside as `old` (if it exists) and gives `new` its name.
    /// New connections to the live database are refused first, so the
    /// sessions ended cannot come straight back; if the second rename fails
    /// the first is undone. Whichever database carries the live name at the
    /// end accepts connections, even one that was refused them before (a
    /// database kept aside by a swap that a crash interrupted). Returns the
    /// sessions ended, and whether there was a live database to keep (there
    /// is none on a fresh server).
    pub async fn swap(&self, live: &str, new: &str, old: &str) -> Result<(u64, bool), OpError> {
        // A session told to end may still be listed at the next attempt:
        // each one counts once.
        let mut ended = std::collections::HashSet::new();
        if self.exists(live).await? {
            self.allow_connections(live, false).await?;
            let deadline = tokio::time::Instant::now() + SESSIONS_GONE_WITHIN;
            let mut attempt = 0;
            loop {
                ended.extend(self.terminate_sessions(live).await?);
                match self.rename(live, old).await {
                    Ok(()) => break,
                    // A session may take a moment to go after being told
                    // to (the server itself waits up to 5 seconds per
                    // rename for them).
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        attempt += 1;
                        tracing::debug!(error = %e, attempt, "the live database is still in use; trying again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        let _ = self.allow_connections(live, true).await;
                        return Err(e);
                    }
                }
            }
            if let Err(e) = self.rename(new, live).await {
                let _ = self.rename(old, live).await;
                let _ = self.allow_connections(live, true).await;
                return Err(e);
            }
            self.allow_connections(live, true).await?;
            // The old database stays reachable by its new name for a look
            // before cleanup.
            self.allow_connections(old, true).await?;
            Ok((ended.len() as u64, true))
        } else {
            self.rename(new, live).await?;
            self.allow_connections(live, true).await?;
            Ok((0, false))
        }
    }
}

/// A table as the restored database's catalog has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relation {
    /// A partitioned table (relkind `p`), rather than one holding rows.
    pub partitioned: bool,
    /// Attached to a partitioned parent.
    pub partition: bool,
}

/// The tables (ordinary and partitioned) of database `dbname`, outside the
/// system schemas, by schema and name.
pub async fn relations(
    db: &Db,
    dbname: &str,
) -> Result<std::collections::HashMap<(String, String), Relation>, OpError> {
    let client = db.connect_to(dbname).await?;
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind = 'p', c.relispartition \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
            &[],
        )
        .await
        .map_err(failed("list the restored tables"))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                Relation {
                    partitioned: r.get(2),
                    partition: r.get(3),
                },
            )
        })
        .collect())
}

/// Counts the rows of the tables in `tables` in database `dbname`, over
/// `parallel` connections at once: `None` for a table that does not exist.
pub async fn count_rows(
    db: &Db,
    dbname: &str,
    tables: &[(String, String)],
    parallel: usize,
) -> Result<Vec<Option<i64>>, OpError> {
    let lanes = parallel.clamp(1, tables.len().max(1));
    let work = (0..lanes).map(|lane| {
        let mine: Vec<(usize, &(String, String))> = tables
            .iter()
            .enumerate()
            .skip(lane)
            .step_by(lanes)
            .collect();
        async move {
            let client = db.connect_to(dbname).await?;
            let mut out = Vec::with_capacity(mine.len());
            for (i, (schema, table)) in mine {
                out.push((i, count_one(&client, schema, table).await?));
            }
            Ok::<_, OpError>(out)
        }
    });
    let mut counts = vec![None; tables.len()];
    for lane in futures::future::try_join_all(work).await? {
        for (i, n) in lane {
            counts[i] = n;
        }
    }
    Ok(counts)
}

async fn count_one(client: &Client, schema: &str, table: &str) -> Result<Option<i64>, OpError> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
            &[&schema, &table],
        )
        .await
        .map_err(failed("look up a table"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let sql = format!(
        "SELECT count(*) FROM {}.{}",
        quote_ident(schema),
        quote_ident(table)
    );
    Ok(Some(
        client
            .query_one(&sql, &[])
            .await
            .map_err(failed("count rows"))?
            .get(0),
    ))
}

/// A database name derived from `base`, within PostgreSQL's 63 bytes.
pub fn derived_name(base: &str, tag: &str, suffix: &str) -> String {
    let tail = format!("_berkut_{tag}_{suffix}");
    let mut cut = 63usize.saturating_sub(tail.len()).min(base.len());
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &base[..cut])
}

#[cfg(test)]
mod tests {
    #[test]
    fn derived_names_fit_and_stay_valid_utf8() {
        assert_eq!(
            super::derived_name("app", "new", "0a1b2c3d"),
            "app_berkut_new_0a1b2c3d"
        );
        let long = "склад".repeat(20);
        let name = super::derived_name(&long, "old", "0a1b2c3d");
        assert!(name.len() <= 63, "{}", name.len());
        assert!(name.ends_with("_berkut_old_0a1b2c3d"));
    }
}
