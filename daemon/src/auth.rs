//! The single authorization point. Every request passes through `authorize`
//! before its handler runs, with the identity taken from the socket's peer
//! credentials (never from anything the client says about itself). Access
//! is denied by default: a peer needs a grant, by user, uid or group, for a
//! role (viewer < operator < admin), or an `app` grant for the main
//! application, whose requests must name the end user they act for and may
//! then do what both that user's role and the grant's ceiling allow. Root
//! and the daemon's own user are admins unless a grant names them.

use berkut_proto::wire::{OnBehalfOf, Operation, Role};
use tokio::net::UnixStream;

use crate::error::OpError;
use crate::handlers::required_role;

/// The daemon's group lookups (`Peer::resolve_groups`): four at once, one
/// per uid at a time, five seconds to wait for each turn and for the answer.
static LOOKUPS: Lookups = Lookups::new(4, std::time::Duration::from_secs(5));

/// What bounds group lookups: `slots` at once daemon-wide, and a turn per
/// uid, so that one user opening connections by the hundred waits behind
/// its own lookup instead of taking every slot from the others.
pub struct Lookups {
    slots: tokio::sync::Semaphore,
    turns:
        std::sync::Mutex<std::collections::BTreeMap<u32, std::sync::Arc<tokio::sync::Semaphore>>>,
    wait: std::time::Duration,
}

impl Lookups {
    pub const fn new(slots: usize, wait: std::time::Duration) -> Lookups {
        Lookups {
            slots: tokio::sync::Semaphore::const_new(slots),
            turns: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            wait,
        }
    }

    /// The uid's turn, shared by its connections.
    fn turn_of(&self, uid: u32) -> std::sync::Arc<tokio::sync::Semaphore> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        // Turns nobody holds or waits for go, so the map stays about as
        // large as the number of users connecting at once.
        if turns.len() >= 256 {
            turns.retain(|_, t| std::sync::Arc::strong_count(t) > 1);
        }
        std::sync::Arc::clone(
            turns
                .entry(uid)
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1))),
        )
    }
}

/// Who is on the other end of a connection, as the kernel says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        })
    }

    /// The peer's groups, looked up off the async runtime: the user
    /// database may be a network service (NSS: LDAP, SSSD) that takes its
    /// time. A connection looks them up once, like a login session whose
    /// groups are fixed when it begins.
    ///
    /// The lookup runs before the connection is admitted, so it is bounded
    /// here (`LOOKUPS`): a few at once daemon-wide (each holds a thread of
    /// the blocking pool, and one stuck in an unreachable directory server
    /// holds it until NSS gives up), one per uid at a time, and a wait for
    /// each turn and for the answer. A lookup that does not answer in time
    /// counts only the primary group: a grant by a supplementary group then
    /// does not apply, so access fails closed, and the log says why.
    pub async fn resolve_groups(self) -> Vec<u32> {
        self.resolve_groups_with(&LOOKUPS, move |p| p.groups())
            .await
    }

    /// `resolve_groups` with its bounds and its lookup given.
    async fn resolve_groups_with(
        self,
        lookups: &'static Lookups,
        lookup: impl FnOnce(Peer) -> Vec<u32> + Send + 'static,
    ) -> Vec<u32> {
        let primary = || vec![self.gid];
        let wait = lookups.wait;
        let turn = lookups.turn_of(self.uid);
        let Ok(Ok(turn)) = tokio::time::timeout(wait, turn.acquire_owned()).await else {
            tracing::warn!(uid = self.uid, "this user's previous group lookup has not answered (a slow user database?); only the primary group counts for this connection");
            return primary();
        };
        let Ok(Ok(slot)) = tokio::time::timeout(wait, lookups.slots.acquire()).await else {
            tracing::warn!(uid = self.uid, "group lookups are all busy (a slow user database?); only the primary group counts for this connection");
            return primary();
        };
        let lookup = tokio::task::spawn_blocking(move || {
            let _held = (turn, slot);
            lookup(self)
        });
        match tokio::time::timeout(wait, lookup).await {
            Ok(Ok(groups)) => groups,
            Ok(Err(_)) => {
                tracing::warn!(
                    uid = self.uid,
                    "the group lookup failed; only the primary group counts for this connection"
                );
                primary()
            }
            Err(_) => {
                tracing::warn!(uid = self.uid, wait_seconds = wait.as_secs(), "the group lookup did not answer in time (a slow user database?); only the primary group counts for this connection");
                primary()
            }
        }
    }

    /// The peer's groups: its primary one and, when its user is known to
    /// the system, the supplementary ones. Blocking (see `resolve_groups`).
    pub fn groups(&self) -> Vec<u32> {
        let mut groups = vec![self.gid];
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(self.uid)) {
            if let Ok(name) = std::ffi::CString::new(user.name) {
                if let Ok(list) = nix::unistd::getgrouplist(&name, user.gid) {
                    groups.extend(list.into_iter().map(|g| g.as_raw()));
                }
            }
        }
        groups
    }
}

/// Who a grant is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Uid(u32),
    Gid(u32),
}

/// What a grant gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Role(Role),
    /// The main application: acts for its users, up to `ceiling`.
    App {
        ceiling: Role,
    },
}

/// The access rules in force.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The uid the daemon runs as.
    pub own_uid: u32,
    pub grants: Vec<(Subject, Grant)>,
}

/// What an allowed request may do, for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub role: Role,
}

impl Policy {
    pub fn new(grants: Vec<(Subject, Grant)>) -> Policy {
        Policy {
            own_uid: nix::unistd::geteuid().as_raw(),
            grants,
        }
    }

    /// The grant that applies to `peer`, looking its groups up (blocking:
    /// for tests; a connection uses `grant_in` with the groups it resolved
    /// once).
    #[cfg(test)]
    pub fn grant_for(&self, peer: &Peer) -> Option<Grant> {
        self.grant_in(peer, &peer.groups())
    }

    /// The grant that applies to `peer` in `groups`: one for its uid first;
    /// else the strongest of its groups'; else admin for root and the
    /// daemon's own user; else none.
    pub fn grant_in(&self, peer: &Peer, groups: &[u32]) -> Option<Grant> {
        if let Some((_, g)) = self
            .grants
            .iter()
            .find(|(s, _)| *s == Subject::Uid(peer.uid))
        {
            return Some(*g);
        }
        let by_group = self
            .grants
            .iter()
            .filter(|(s, _)| matches!(s, Subject::Gid(g) if groups.contains(g)))
            .map(|(_, g)| *g)
            .max_by_key(|g| match g {
                Grant::Role(r) | Grant::App { ceiling: r } => *r,
            });
        by_group.or_else(|| {
            (peer.uid == 0 || peer.uid == self.own_uid).then_some(Grant::Role(Role::Admin))
        })
    }

    /// Authorizes a request of `peer`, looking its groups up (blocking:
    /// for tests; a connection uses `authorize_in`).
    #[cfg(test)]
    pub fn authorize(
        &self,
        peer: &Peer,
        op: &Operation,
        on_behalf_of: Option<&OnBehalfOf>,
    ) -> Result<Allowed, OpError> {
        self.authorize_in(peer, &peer.groups(), op, on_behalf_of)
    }

    /// Authorizes a request of `peer`, a member of `groups`.
    pub fn authorize_in(
        &self,
        peer: &Peer,
        groups: &[u32],
        op: &Operation,
        on_behalf_of: Option<&OnBehalfOf>,
    ) -> Result<Allowed, OpError> {
        let role = match (self.grant_in(peer, groups), on_behalf_of) {
            (None, _) => return Err(OpError::forbidden()),
            (Some(Grant::Role(_)), Some(_)) => {
                return Err(OpError::new(
                    berkut_proto::wire::ErrorCode::Forbidden,
                    "only the main application may act on behalf of a user",
                ))
            }
            (Some(Grant::Role(role)), None) => role,
            (Some(Grant::App { .. }), None) => {
                return Err(OpError::new(
                    berkut_proto::wire::ErrorCode::Forbidden,
                    "the main application must say which user it acts for (on_behalf_of)",
                ))
            }
            (Some(Grant::App { ceiling }), Some(user)) => user.role.min(ceiling),
        };
        if role >= required_role(op) {
            Ok(Allowed { role })
        } else {
            Err(OpError::forbidden())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berkut_proto::wire::ops;

    fn peer(uid: u32) -> Peer {
        Peer {
            uid,
            gid: 999_999,
            pid: None,
        }
    }

    fn obo(role: Role) -> OnBehalfOf {
        OnBehalfOf {
            user: "alice".into(),
            role,
        }
    }

    /// The groups a connection resolves off the runtime are the peer's
    /// groups, its primary one first.
    #[tokio::test]
    async fn groups_resolved_off_the_runtime_are_the_peers() {
        let me = Peer {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            pid: None,
        };
        let groups = me.resolve_groups().await;
        assert_eq!(groups, me.groups());
        assert_eq!(groups.first(), Some(&me.gid));
    }

    #[test]
    fn deny_by_default_and_root_is_admin_unless_named() {
        let policy = Policy {
            own_uid: 1234,
            grants: vec![],
        };
        assert!(policy
            .authorize(&peer(0), &Operation::StoreRewrap(ops::StoreRewrap {}), None)
            .is_ok());
        assert!(policy
            .authorize(
                &peer(1234),
                &Operation::PlanDisable(ops::PlanDisable {}),
                None
            )
            .is_ok());
        let err = policy
            .authorize(&peer(1000), &Operation::Status(ops::Status {}), None)
            .unwrap_err();
        assert_eq!(err.code, berkut_proto::wire::ErrorCode::Forbidden);
        let policy = Policy {
            own_uid: 1234,
            grants: vec![(Subject::Uid(0), Grant::Role(Role::Viewer))],
        };
        assert!(
            policy
                .authorize(&peer(0), &Operation::StoreRewrap(ops::StoreRewrap {}), None)
                .is_err(),
            "a grant for root narrows it"
        );
    }

    #[test]
    fn roles_are_ordered() {
        let policy = Policy {
            own_uid: 1,
            grants: vec![
                (Subject::Uid(10), Grant::Role(Role::Viewer)),
                (Subject::Uid(11), Grant::Role(Role::Operator)),
            ],
        };
        let list = Operation::list_first_page();
        let create = Operation::BackupCreate(ops::BackupCreate {
            label: String::new(),
            scope: Default::default(),
            include_files: false,
            wait: false,
        });
        assert!(policy.authorize(&peer(10), &list, None).is_ok());
        assert!(policy.authorize(&peer(10), &create, None).is_err());
        assert!(policy.authorize(&peer(11), &create, None).is_ok());
        assert!(policy
            .authorize(
                &peer(11),
                &Operation::PlanDisable(ops::PlanDisable {}),
                None
            )
            .is_err());
        let id: berkut_proto::ids::BackupId = "20260101T000000Z-00000000".parse().unwrap();
        let drill = |with_globals| {
            Operation::RestoreStart(ops::RestoreStart {
                backup_id: id.clone(),
                dry_run: true,
                with_globals,
                wait: false,
            })
        };
        assert!(policy.authorize(&peer(11), &drill(false), None).is_ok());
        assert_eq!(
            policy
                .authorize(&peer(11), &drill(true), None)
                .unwrap_err()
                .code,
            berkut_proto::wire::ErrorCode::Forbidden,
            "applying roles needs admin even in a dry-run"
        );
        assert_eq!(required_role(&drill(true)), Role::Admin);
    }

    #[test]
    fn delegation_narrows_to_the_users_role_and_the_grants_ceiling() {
        let policy = Policy {
            own_uid: 1,
            grants: vec![
                (
                    Subject::Uid(20),
                    Grant::App {
                        ceiling: Role::Operator,
                    },
                ),
                (Subject::Uid(21), Grant::Role(Role::Admin)),
            ],
        };
        let delete = Operation::BackupDelete(ops::BackupDelete {
            id: "20260101T000000Z-00000000".parse().unwrap(),
        });
        assert!(
            policy
                .authorize(&peer(20), &delete, Some(&obo(Role::Viewer)))
                .is_err(),
            "an app acting for a viewer cannot delete"
        );
        assert!(
            policy
                .authorize(&peer(20), &delete, Some(&obo(Role::Admin)))
                .is_err(),
            "nor beyond its own ceiling"
        );
        assert_eq!(
            policy
                .authorize(
                    &peer(20),
                    &Operation::Status(ops::Status {}),
                    Some(&obo(Role::Admin))
                )
                .unwrap()
                .role,
            Role::Operator
        );
        assert!(
            policy
                .authorize(&peer(20), &Operation::Status(ops::Status {}), None)
                .is_err(),
            "an app must name its user"
        );
        assert!(
            policy
                .authorize(
                    &peer(21),
                    &Operation::Status(ops::Status {}),
                    Some(&obo(Role::Viewer))
                )
                .is_err(),
            "only apps may delegate"
        );
    }

    /// A lookup that hangs until `unstick` says, counting those that began.
    #[allow(clippy::type_complexity)]
    fn hanging() -> (
        std::sync::mpsc::Sender<()>,
        impl Fn() -> Box<dyn FnOnce(Peer) -> Vec<u32> + Send>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let (unstick, stuck) = std::sync::mpsc::channel::<()>();
        let stuck = std::sync::Arc::new(std::sync::Mutex::new(stuck));
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&started);
        let make = move || {
            let (stuck, started) = (stuck.clone(), counted.clone());
            Box::new(move |p: Peer| {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stuck.lock().unwrap().recv();
                vec![p.gid, 27]
            }) as Box<dyn FnOnce(Peer) -> Vec<u32> + Send>
        };
        (unstick, make, started)
    }

    fn user(uid: u32) -> Peer {
        Peer {
            uid,
            gid: uid,
            pid: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stuck_group_lookups_hold_few_threads_and_count_the_primary_group() {
        static LOOKUPS: Lookups = Lookups::new(2, std::time::Duration::from_millis(200));
        let (unstick, lookup, started) = hanging();
        // Two users' lookups that hang: each answers with the primary group
        // only once the wait has passed, and keeps its slot while it hangs.
        let hung = futures::future::join(
            user(1000).resolve_groups_with(&LOOKUPS, lookup()),
            user(1001).resolve_groups_with(&LOOKUPS, lookup()),
        )
        .await;
        assert_eq!(hung, (vec![1000], vec![1001]));
        // A third user gets no slot in time and never reaches the directory.
        let third = user(1002).resolve_groups_with(&LOOKUPS, lookup()).await;
        assert_eq!(third, vec![1002]);
        assert_eq!(
            started.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "a third thread was taken"
        );
        // Once the directory answers, the slots come back.
        unstick.send(()).unwrap();
        unstick.send(()).unwrap();
        static PATIENT: Lookups = Lookups::new(2, std::time::Duration::from_secs(30));
        let answered = user(1002)
            .resolve_groups_with(&PATIENT, |p| vec![p.gid, 27])
            .await;
        assert_eq!(answered, vec![1002, 27]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_user_flooding_waits_behind_its_own_lookup() {
        static LOOKUPS: Lookups = Lookups::new(2, std::time::Duration::from_millis(200));
        let (unstick, lookup, started) = hanging();
        // One user's connections, all at once: the first lookup hangs, the
        // others wait for it and give up, taking no slot and no thread.
        let flood = futures::future::join_all(
            (0..5).map(|_| user(1000).resolve_groups_with(&LOOKUPS, lookup())),
        )
        .await;
        assert!(flood.iter().all(|g| g == &vec![1000]), "{flood:?}");
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Another user still has a slot and gets its groups.
        let other = user(2000)
            .resolve_groups_with(&LOOKUPS, |p| vec![p.gid, 27])
            .await;
        assert_eq!(other, vec![2000, 27]);
        unstick.send(()).unwrap();
    }
}
