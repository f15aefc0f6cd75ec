//! A connection's uploads, and when they open the way for large frames.
//!
//! An import's upload is known from the moment its request is admitted (the
//! channel its pieces go through is made then), but it is *open*, and its
//! client may send pieces of up to `MAX_FRAME_LEN`, only once the handler
//! has taken its slot and said `continue` (`Gate::open`). An import still
//! waiting for a slot, or refused before its `continue`, opens nothing: a
//! client cannot lift the frame limit by asking for imports it never sends.
//! An open upload stays open until its `end`, even when the import was
//! refused partway, so that its remaining pieces are read and dropped and
//! the client hears the reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::handlers::backup_import::{channel, Piece};

const WAITING: u8 = 0;
const OPEN: u8 = 1;
/// The import ended without its `continue`: the entry goes.
const OVER: u8 = 2;

/// The handler's side of one upload.
#[derive(Clone)]
pub struct Gate {
    state: Arc<AtomicU8>,
    open: Arc<AtomicUsize>,
}

impl Gate {
    /// The import is about to say `continue`: its pieces may come.
    pub fn open(&self) {
        if self
            .state
            .compare_exchange(WAITING, OPEN, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.open.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The import's request has ended; one that never said `continue` is
    /// forgotten.
    pub fn ended(&self) {
        let _ = self
            .state
            .compare_exchange(WAITING, OVER, Ordering::SeqCst, Ordering::SeqCst);
    }
}

struct Upload {
    /// `None` once the import has ended early: its pieces are dropped.
    sender: Option<mpsc::Sender<Piece>>,
    state: Arc<AtomicU8>,
}

/// The uploads of one connection, by request id. Dropping it (the
/// connection ends) tells each import it was cut off.
#[derive(Default)]
pub struct Uploads {
    uploads: HashMap<u64, Upload>,
    /// Uploads open now, which the frame reader reads at each header.
    open: Arc<AtomicUsize>,
}

impl Uploads {
    /// What the frame reader watches: how many uploads are open.
    pub fn open_count(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.open)
    }

    /// A new import's upload: the pieces' receiver and the gate, for its
    /// handler.
    pub fn admit(&mut self, id: u64) -> (mpsc::Receiver<Piece>, Gate) {
        let (sender, receiver) = channel();
        let state = Arc::new(AtomicU8::new(WAITING));
        self.uploads.insert(
            id,
            Upload {
                sender: Some(sender),
                state: Arc::clone(&state),
            },
        );
        let gate = Gate {
            state,
            open: Arc::clone(&self.open),
        };
        (receiver, gate)
    }

    /// Forgets the imports that ended without their `continue`.
    pub fn prune(&mut self) {
        self.uploads
            .retain(|_, u| u.state.load(Ordering::SeqCst) != OVER);
    }

    /// Hands an upload's piece to its import. Data for an upload that is
    /// not open (never was, or has ended) is dropped: the client learns
    /// why from the request's error. An open upload stays open until its
    /// `end`.
    pub async fn route(&mut self, id: u64, data: crate::connection::Piece, end: bool) {
        let Some(upload) = self.uploads.get_mut(&id) else {
            return;
        };
        if upload.state.load(Ordering::SeqCst) != OPEN {
            return;
        }
        if let Some(sender) = &upload.sender {
            let mut alive = sender.send(Piece::Data(data)).await.is_ok();
            if end {
                alive = alive && sender.send(Piece::End).await.is_ok();
            }
            if !alive {
                upload.sender = None;
            }
        }
        if end {
            self.uploads.remove(&id);
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Pieces, UPLOADS};

    fn piece(pool: &Pieces) -> crate::connection::Piece {
        let mut p = pool.take_for(10);
        p.set_len(10);
        p
    }

    #[tokio::test]
    async fn only_an_import_that_said_continue_opens_until_its_end() {
        let pool = Pieces::new(UPLOADS);
        let mut uploads = Uploads::default();
        let open = uploads.open_count();
        // Waiting for a slot: nothing open, its pieces dropped.
        let (mut rx, gate) = uploads.admit(1);
        assert_eq!(open.load(Ordering::SeqCst), 0);
        uploads.route(1, piece(&pool), false).await;
        assert!(rx.try_recv().is_err(), "a piece before continue was taken");
        // Refused before its continue: forgotten.
        gate.ended();
        uploads.prune();
        assert!(uploads.uploads.is_empty());
        assert_eq!(open.load(Ordering::SeqCst), 0);

        // Opened: open until its end, even once its import is gone.
        let (rx, gate) = uploads.admit(2);
        gate.open();
        gate.open();
        assert_eq!(open.load(Ordering::SeqCst), 1, "opened once");
        drop(rx);
        gate.ended();
        uploads.prune();
        uploads.route(2, piece(&pool), false).await;
        assert_eq!(open.load(Ordering::SeqCst), 1, "still open before its end");
        uploads.route(2, piece(&pool), true).await;
        assert_eq!(open.load(Ordering::SeqCst), 0);
        assert!(uploads.uploads.is_empty());
    }
}
