//! The one choice of the server a restore works on: a dry-run goes to the
//! drill server (`drill_database_url`) when there is one, everything else
//! to the live server. A restore being accepted makes it once (`submit`
//! keeps it in its `Params`); a restore read back from its record (start-up
//! recovery, rollback, cleanup) makes it again from the record's `dry_run`
//! with the same function, and `restore_start` asks it whether roles may be
//! applied. Nothing else looks at `drill_database_url`.

use std::fmt;

use crate::db::Db;
use crate::state::Daemon;

/// The server a restore works on.
#[derive(Clone)]
pub enum Server {
    /// The live server: a real restore's, and a dry-run's when no drill
    /// server is configured.
    Live(Db),
    /// The drill server (`drill_database_url`), for dry-runs.
    Drill(Db),
}

impl Server {
    pub fn db(&self) -> &Db {
        match self {
            Server::Live(db) | Server::Drill(db) => db,
        }
    }
}

/// Which server, not its connection details (a URL may carry a password).
impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Server::Live(_) => "Live",
            Server::Drill(_) => "Drill",
        })
    }
}

/// The server for a restore that is a dry-run or not.
pub fn server(daemon: &Daemon, dry_run: bool) -> Server {
    match (&daemon.drill_db, dry_run) {
        (Some(drill), true) => Server::Drill(drill.clone()),
        _ => Server::Live(daemon.db.clone()),
    }
}
