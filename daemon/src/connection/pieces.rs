//! The buffers download pieces travel in, from the file to the socket.
//!
//! A piece costs a trip to the blocking pool, a handoff to the connection's
//! writer and a wake-up of the client whatever its size, and a fresh buffer
//! costs a page fault per 4 KiB (the allocator hands large blocks back to
//! the system at once, so that what stalled clients held does not linger).
//! Small pieces therefore make a download several times slower than a
//! copy; large ones make a client that stops reading hold more. So large
//! pieces come from one pool for the whole daemon, bounded by
//! `LARGE_PIECES` (a semaphore owns that limit and each large piece holds
//! its permit until it is on the socket) and reused, not reallocated; when
//! the pool is exhausted (many downloads at once, or clients that stopped
//! reading while holding large pieces) a download goes on with small,
//! unpooled pieces, as slow as before but never waiting for another
//! client. What stalled downloads hold is thus bounded by the pool plus
//! two small pieces each (one in the outbox, one waiting for room),
//! however many there are.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of a piece taken when the pool is exhausted: small enough that
/// hundreds of stalled downloads hold little.
pub const SMALL_PIECE: usize = 32 * 1024;
/// Bytes of a pooled piece: large enough that per-piece costs vanish next
/// to the copying and hashing of its bytes.
pub const LARGE_PIECE: usize = 256 * 1024;
/// Large pieces in existence at once, daemon-wide (1.5 MiB): a download keeps
/// two in flight (one being written, one being read or waiting for room),
/// so three downloads run at full speed at once. Each is memory that
/// clients which stop reading may hold (three such clients hold them all;
/// a cap per connection is not made).
pub const LARGE_PIECES: usize = 6;
/// Freed large buffers kept for reuse; the rest go back to the system, so
/// an idle daemon holds at most this many (1 MiB).
const KEEP_FREE: usize = 4;

/// The pool of large pieces.
pub struct Pieces {
    permits: Arc<Semaphore>,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Default for Pieces {
    fn default() -> Self {
        Pieces {
            permits: Arc::new(Semaphore::new(LARGE_PIECES)),
            free: Arc::default(),
        }
    }
}

impl Pieces {
    /// An empty buffer for the next piece: a pooled large one when the pool
    /// has room, else a small one of its own. Never waits.
    pub fn take(&self) -> Piece {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                let buf = lock(&self.free)
                    .pop()
                    .unwrap_or_else(|| vec![0; LARGE_PIECE]);
                Piece {
                    buf,
                    len: 0,
                    pooled: Some(Pooled {
                        _permit: permit,
                        free: Arc::clone(&self.free),
                    }),
                }
            }
            Err(_) => Piece {
                buf: vec![0; SMALL_PIECE],
                len: 0,
                pooled: None,
            },
        }
    }

    /// Large pieces in use now (for tests).
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        LARGE_PIECES - self.permits.available_permits()
    }
}

/// One piece's bytes: `filled()` of them are the content, the rest room to
/// read into. A pooled piece goes back to the pool when dropped, that is
/// once it is on the socket or its download ended.
pub struct Piece {
    buf: Vec<u8>,
    len: usize,
    pooled: Option<Pooled>,
}

struct Pooled {
    _permit: OwnedSemaphorePermit,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Piece {
    /// The whole buffer, to read into; then `set_len`.
    pub fn room(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Says how many bytes of the buffer are content (at most its size).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len());
    }

    pub fn filled(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// Bytes made elsewhere (an evidence export's tar), sent as one piece.
impl From<Vec<u8>> for Piece {
    fn from(buf: Vec<u8>) -> Piece {
        Piece {
            len: buf.len(),
            buf,
            pooled: None,
        }
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            let mut free = lock(&pooled.free);
            if free.len() < KEEP_FREE {
                free.push(std::mem::take(&mut self.buf));
            }
            // The permit goes back after the buffer, so whoever takes it
            // next finds the buffer free.
        }
    }
}

/// The free list holds plain buffers: a panic while it was locked left
/// nothing half-done in it.
fn lock(free: &Mutex<Vec<Vec<u8>>>) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
    free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_pieces_are_bounded_and_reused_then_small_ones_follow() {
        let pieces = Pieces::default();
        let held: Vec<Piece> = (0..LARGE_PIECES).map(|_| pieces.take()).collect();
        assert!(held.iter().all(|p| p.buf.len() == LARGE_PIECE));
        assert_eq!(pieces.in_use(), LARGE_PIECES);
        // The pool is exhausted: the next download goes on with small
        // pieces, at once.
        let small = pieces.take();
        assert_eq!(small.buf.len(), SMALL_PIECE);
        drop(small);
        assert_eq!(pieces.in_use(), LARGE_PIECES);
        // Freed pieces come back, and at most KEEP_FREE buffers are kept.
        drop(held);
        assert_eq!(pieces.in_use(), 0);
        let kept: Vec<*const u8> = lock(&pieces.free).iter().map(|b| b.as_ptr()).collect();
        assert_eq!(kept.len(), KEEP_FREE);
        // The next large piece is one of them, not a new allocation.
        let again = pieces.take();
        assert_eq!(again.buf.len(), LARGE_PIECE);
        assert!(again.is_empty());
        assert!(kept.contains(&again.buf.as_ptr()));
        assert_eq!(pieces.in_use(), 1);
    }

    #[test]
    fn a_piece_says_what_it_holds() {
        let mut piece = Piece::from(vec![1, 2, 3]);
        assert_eq!(piece.filled(), &[1, 2, 3]);
        piece.set_len(10);
        assert_eq!(piece.len(), 3);
        piece.set_len(1);
        assert_eq!(piece.filled(), &[1]);
    }
}
