//! The single authorization point. Every request passes through `authorize`
//! before its handler runs, with the identity taken from the socket's peer
//! credentials (never from anything the client says). For now the rule is
//! simple: root and the daemon's own user may do everything, everyone else
//! nothing. Roles and delegation replace the body of `authorize`, not its
//! callers.

use berkut_proto::wire::Operation;
use tokio::net::UnixStream;

use crate::error::OpError;

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
}

/// The access rules in force.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The uid the daemon runs as; it may always talk to itself.
    pub own_uid: u32,
}

impl Policy {
    pub fn current() -> Policy {
        Policy {
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn authorize(&self, peer: &Peer, _op: &Operation) -> Result<(), OpError> {
        if peer.uid == 0 || peer.uid == self.own_uid {
            Ok(())
        } else {
            Err(OpError::forbidden())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_are_allowed_others_are_not() {
        let policy = Policy { own_uid: 1234 };
        let peer = |uid| Peer {
            uid,
            gid: uid,
            pid: None,
        };
        assert!(policy.authorize(&peer(0), &Operation::Status).is_ok());
        assert!(policy
            .authorize(&peer(1234), &Operation::list_first_page())
            .is_ok());
        let err = policy
            .authorize(&peer(1000), &Operation::Status)
            .unwrap_err();
        assert_eq!(err.code, berkut_proto::wire::ErrorCode::Forbidden);
    }
}
