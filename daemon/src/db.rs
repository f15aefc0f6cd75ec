//! The daemon's own connection to the database, for what pg_dump does not
//! tell: whether the server is up, its version, the database's name and how
//! many tables a dump will go through (for progress). Only this module and
//! the tools the job runner starts talk to PostgreSQL.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::OpError;

/// How long a check may wait for the server before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Db {
    pool: Pool,
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
            .map_err(|e| OpError::invalid("the database URL is not valid").with_detail(e))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("berkutd");
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
        Ok(Db { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, OpError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(OpError::unavailable("the database is not reachable").with_detail(e)),
            Err(_) => Err(OpError::unavailable("the database did not answer in time")),
        }
    }

    /// Answers whether the server takes queries right now.
    pub async fn check(&self) -> Result<(), OpError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(|e| {
            OpError::unavailable("the database is not answering queries").with_detail(e)
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
                OpError::unavailable("the database is not answering queries").with_detail(e)
            })?;
        let tables: i64 = row.get(2);
        Ok(ServerFacts {
            database: row.get(0),
            server_version: row.get(1),
            tables: tables.max(0) as u64,
        })
    }
}
