//! `[[access]]` entries of the configuration: who (a `user`, a `uid` or a
//! `group`) gets which role (`viewer`, `operator`, `admin`, or `app` for the
//! main application, with an optional `max_role` ceiling). Names are
//! resolved to ids when the configuration is loaded, so a typo is refused at
//! start (or reload) rather than silently granting nothing.

use berkut_proto::wire::Role;
use serde::Deserialize;

use crate::auth::{Grant, Subject};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEntry {
    user: Option<String>,
    uid: Option<u32>,
    group: Option<String>,
    role: String,
    max_role: Option<String>,
}

/// Resolves one entry; the message of an error is for the caller to say
/// where the entry came from.
pub fn resolve(entry: &AccessEntry) -> Result<(Subject, Grant), String> {
    let subject = match (&entry.user, entry.uid, &entry.group) {
        (Some(user), None, None) => match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => Subject::Uid(u.uid.as_raw()),
            _ => return Err(format!("there is no user {user:?}")),
        },
        (None, Some(uid), None) => Subject::Uid(uid),
        (None, None, Some(group)) => match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => Subject::Gid(g.gid.as_raw()),
            _ => return Err(format!("there is no group {group:?}")),
        },
        _ => return Err("each entry names exactly one of user, uid or group".into()),
    };
    let grant = match entry.role.as_str() {
        "app" => Grant::App {
            ceiling: match &entry.max_role {
                Some(r) => r.parse()?,
                None => Role::Admin,
            },
        },
        other => {
            if entry.max_role.is_some() {
                return Err("max_role only goes with role = \"app\"".into());
            }
            Grant::Role(other.parse().map_err(|_| {
                format!("unknown role {other:?} (expected viewer, operator, admin or app)")
            })?)
        }
    };
    Ok((subject, grant))
}
