//! The daemon's own connection to the database, for what pg_dump does not
//! tell: whether the server is up, its version, the database's name and how
//! many tables a dump will go through (for progress). Only this module and
//! the tools the job runner starts talk to PostgreSQL.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::OpError;

mod url;
pub use url::{redact_url, split_password, tool_command, tool_env, DatabaseUrl};

/// The `application_name` of every session the daemon opens (its pool and
/// its tools, through `PGAPPNAME`): how a restore's swap tells the daemon's
/// own sessions from the application's.
pub const APPLICATION_NAME: &str = "berkutd";

/// How long a check may wait for the server before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    config: tokio_postgres::Config,
}

/// What a backup records about the server.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    pub database: String,
    pub server_version: String,
    /// Tables whose data pg_dump will copy.
    pub tables: u64,
}

impl Db {
    pub fn new(url: &str) -> Result<Db, OpError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| OpError::invalid("the database URL is not valid").with_source(&e))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name(APPLICATION_NAME);
        // A database brings its own `ALTER DATABASE ... SET` settings (a
        // restored one, the ones it had): a statement timeout must not
        // cancel the daemon's row counts or ANALYZE, and the literals the
        // daemon writes assume standard strings whatever the database says.
        let options = format!(
            "{} {OWN_SESSION_OPTIONS}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        let parsed = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(4)
            .build()
            .map_err(|e| OpError::internal(format!("building the connection pool: {e}")))?;
        Ok(Db {
            pool,
            config: parsed,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, OpError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => {
                Err(OpError::unavailable("the database is not reachable").with_source(&e))
            }
            Err(_) => Err(OpError::unavailable("the database did not answer in time")),
        }
    }

    /// Closes the pool's idle connections (they reconnect when next
    /// needed): before a restore renames the database they are connected
    /// to, so that only the application's sessions are left to end, and no
    /// connection of ours dies under us with an error in the log.
    pub fn close_idle(&self) -> usize {
        self.pool.retain(|_, _| false).removed.len()
    }

    /// Answers whether the server takes queries right now.
    pub async fn check(&self) -> Result<(), OpError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(|e| {
            OpError::unavailable("the database is not answering queries").with_source(&e)
        })?;
        Ok(())
    }

    pub async fn facts(&self) -> Result<ServerFacts, OpError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT current_database()::text, current_setting('server_version'), \
                 (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%')",
                &[],
            )
            .await
            .map_err(|e| {
                OpError::unavailable("the database is not answering queries").with_source(&e)
            })?;
        let tables: i64 = row.get(2);
        Ok(ServerFacts {
            database: row.get(0),
            server_version: row.get(1),
            tables: tables.max(0) as u64,
        })
    }
}

impl Db {
    /// The database the daemon backs up (from its URL).
    pub fn database_name(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_owned)
            .or_else(|| self.config.get_user().map(str::to_owned))
            .unwrap_or_else(|| "postgres".into())
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A fresh connection to database `dbname` of this server.
    pub async fn connect_to(&self, dbname: &str) -> Result<tokio_postgres::Client, OpError> {
        let mut config = self.config.clone();
        config.dbname(dbname);
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            OpError::unavailable("the database server is not reachable").with_source(&e)
        })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// What the daemon's own sessions on a database set for themselves, over
/// whatever the database or role settings say.
const OWN_SESSION_OPTIONS: &str = "-c statement_timeout=0 -c lock_timeout=0 \
     -c idle_in_transaction_session_timeout=0 -c standard_conforming_strings=on \
     -c default_transaction_read_only=off";

/// A repeatable-read transaction on a connection of its own, holding an
/// exported snapshot: pg_dump is given the snapshot (`--snapshot`), so the
/// row counts taken here describe exactly the data in the dump. The
/// connection is not pooled, because it must not be reused with its
/// transaction open.
pub struct Snapshot {
    client: tokio_postgres::Client,
    pub id: String,
}

impl Db {
    pub async fn export_snapshot(&self) -> Result<Snapshot, OpError> {
        let (client, connection) =
            self.config.connect(NoTls).await.map_err(|e| {
                OpError::unavailable("the database is not reachable").with_source(&e)
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "snapshot connection ended");
            }
        });
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(|e| OpError::unavailable("the database refused a snapshot").with_source(&e))?;
        let row = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| OpError::unavailable("the database refused a snapshot").with_source(&e))?;
        Ok(Snapshot {
            id: row.get(0),
            client,
        })
    }
}

impl Snapshot {
    /// The connection holding the snapshot, for reading the catalogs as
    /// pg_dump will see them.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// Exact row counts of every table whose data pg_dump copies (ordinary
    /// tables and leaf partitions outside the system schemas, and not
    /// belonging to an extension).
    pub async fn count_rows(&self) -> Result<Vec<berkut_proto::manifest::TableCount>, OpError> {
        let fail =
            |e: tokio_postgres::Error| OpError::unavailable("counting rows failed").with_source(&e);
        let tables = self
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                 AND d.objid = c.oid AND d.deptype = 'e') \
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(fail)?;
        let mut counts = Vec::with_capacity(tables.len());
        for row in tables {
            let (schema, table): (String, String) = (row.get(0), row.get(1));
            let sql = format!(
                "SELECT count(*) FROM {}.{}",
                quote_ident(&schema),
                quote_ident(&table)
            );
            let rows: i64 = self.client.query_one(&sql, &[]).await.map_err(fail)?.get(0);
            counts.push(berkut_proto::manifest::TableCount {
                schema,
                table,
                rows,
            });
        }
        Ok(counts)
    }
}

/// Quotes an SQL identifier, doubling embedded quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
