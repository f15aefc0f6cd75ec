//! Roles, and the identity the main application acts for. The daemon
//! decides who a peer is from the socket's credentials; `on_behalf_of` is
//! only honoured from a peer that holds an `app` grant, and then narrows what
//! the request may do to what the end user's role allows.

use serde::{Deserialize, Serialize};

/// What a caller may do, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Status, lists, records, the plan, restore and maintenance status.
    Viewer,
    /// A viewer who may also take backups, download them and run dry-runs.
    Operator,
    /// Everything: restores, deletes, imports, the plan, keys, audit.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected viewer, operator or admin)"
            )),
        }
    }
}

/// The signed-in user of the main application a request is made for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnBehalfOf {
    /// The application's own id of the user, for the audit trail.
    pub user: String,
    /// That user's role in the application.
    pub role: Role,
}
