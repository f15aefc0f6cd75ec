//! Who gets a connection slot. The daemon serves at most `max_connections`
//! at once; the last `admin_reserved` of them only admins may take, and no
//! other uid may hold more than `max_per_uid`, so neither one user nor a
//! crowd of them can lock an administrator out. A slot is taken when the
//! connection is accepted (before the handshake, so silent connections
//! count too) and given back when it closes. Admins are limited by the
//! total alone: they can already stop the daemon, and a cap on root would
//! only let a runaway script of root's lock out root's own shell.
//!
//! A refused client gets an id-less `unavailable` error that says which
//! limit it met.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berkut_proto::wire::{ErrorBody, ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

use crate::config::ConnectionLimits;

/// The connections open now, in all and by uid.
pub struct Slots {
    held: Mutex<Held>,
    /// Refused connections waiting for their client to take the answer:
    /// bounded, so that a flood of refused connections cannot hold the
    /// daemon's descriptors.
    lingering: Arc<Semaphore>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// Why a connection was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full { max: usize },
    /// Only the slots kept for admins are left.
    Reserved { reserved: usize },
    /// This uid holds its share already.
    PerUid { max: usize },
}

impl Refusal {
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            Refusal::Full { max } => format!(
                "the daemon serves {max} connections at once and has no free one; try again later"
            ),
            Refusal::Reserved { reserved } => format!(
                "the daemon's free connections are the {reserved} kept for administrators; \
                 try again later"
            ),
            Refusal::PerUid { max } => format!(
                "this user already has {max} connections open, the most one user may hold; \
                 close one"
            ),
        };
        ErrorBody::new(ErrorCode::Unavailable, message)
    }
}

/// A connection's slot; dropping it gives the slot back.
pub struct Slot {
    slots: Arc<Slots>,
    uid: u32,
}

impl Slots {
    pub fn new() -> Arc<Slots> {
        Arc::new(Slots {
            held: Mutex::default(),
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
        })
    }

    /// Takes a slot for a connection of `uid` (an admin or not) under
    /// `limits`, or says why not.
    pub fn take(
        self: &Arc<Self>,
        uid: u32,
        admin: bool,
        limits: &ConnectionLimits,
    ) -> Result<Slot, Refusal> {
        let mut held = self.held.lock().unwrap();
        if held.total >= limits.max_connections {
            return Err(Refusal::Full {
                max: limits.max_connections,
            });
        }
        if !admin {
            let open = limits.max_connections.saturating_sub(limits.admin_reserved);
            if held.total >= open {
                return Err(Refusal::Reserved {
                    reserved: limits.admin_reserved,
                });
            }
            if held.by_uid.get(&uid).copied().unwrap_or(0) >= limits.max_per_uid {
                return Err(Refusal::PerUid {
                    max: limits.max_per_uid,
                });
            }
        }
        held.total += 1;
        *held.by_uid.entry(uid).or_default() += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            uid,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.held.lock().unwrap().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap();
        held.total -= 1;
        if let Some(n) = held.by_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                held.by_uid.remove(&self.uid);
            }
        }
    }
}

/// How long a refused client has to take its answer: the daemon reads (and
/// drops) what the client sends meanwhile, so that a client which writes
/// `hello` first does not find the socket closed under it and miss why.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Refused connections that may linger at once; beyond them a refusal is
/// written and the connection closed at once.
const MAX_LINGERING: usize = 64;

/// Tells a client why it is not served, then closes.
pub async fn refuse(slots: &Slots, mut stream: UnixStream, error: ErrorBody) {
    let frame = super::outbox::frame(&ServerMessage::Error { id: None, error });
    if stream.write_all(&frame).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let Ok(_lingering) = slots.lingering.clone().try_acquire_owned() else {
        return;
    };
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_uid: usize, reserved: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_per_uid: per_uid,
            admin_reserved: reserved,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn one_user_meets_its_cap_others_and_admins_do_not() {
        let slots = Slots::new();
        let l = limits(10, 2, 3);
        let a: Vec<_> = (0..2)
            .map(|_| slots.take(1000, false, &l).unwrap())
            .collect();
        assert_eq!(
            slots.take(1000, false, &l).err(),
            Some(Refusal::PerUid { max: 2 })
        );
        let b = slots.take(1001, false, &l).unwrap();
        let root: Vec<_> = (0..4).map(|_| slots.take(0, true, &l).unwrap()).collect();
        assert_eq!(slots.open(), 7);
        // Seven of ten open: the last three are the admins'.
        assert_eq!(
            slots.take(1002, false, &l).err(),
            Some(Refusal::Reserved { reserved: 3 })
        );
        let more_root: Vec<_> = (0..3).map(|_| slots.take(0, true, &l).unwrap()).collect();
        assert_eq!(
            slots.take(0, true, &l).err(),
            Some(Refusal::Full { max: 10 })
        );
        drop((more_root, root, b));
        drop(a);
        assert_eq!(slots.open(), 0);
        assert!(slots.take(1000, false, &l).is_ok());
    }
}
