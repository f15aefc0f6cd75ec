//! The buffers the pieces of transfers travel in: a download's from the
//! file to the socket, an upload's from the socket to the import's file.
//!
//! A piece costs a trip to the blocking pool, a handoff between tasks and
//! a wake-up of the other side whatever its size, and a fresh buffer costs
//! a page fault per 4 KiB (the allocator hands large blocks back to the
//! system at once, so that what stalled clients held does not linger):
//! an import of 289 MB took 143 000 page faults before its frames were
//! read into reused buffers. Small pieces therefore make a transfer several
//! times slower than a copy; large ones make a client that stops reading
//! hold more. So large pieces come from a pool, one for downloads and one
//! for uploads, each bounded by its `Shape` (a semaphore owns the limit and
//! each large piece holds its permit until it is dropped) and reused, not
//! reallocated; when a pool is exhausted (many transfers at once, or
//! clients that stopped reading while holding large pieces) a transfer
//! goes on with unpooled pieces, as slow as before but never waiting for
//! another client. What stalled downloads hold is thus bounded by the pool
//! plus two small pieces each (one in the outbox, one waiting for room),
//! however many there are.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The sizes and bounds of one pool.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Bytes of a pooled piece.
    pub large: usize,
    /// Large pieces in existence at once.
    pub count: usize,
    /// Freed large buffers kept for reuse; the rest go back to the system.
    pub keep_free: usize,
    /// Bytes of a download piece taken when the pool is exhausted (an
    /// upload's frame gets a buffer of its own size instead).
    pub small: usize,
}

/// Downloads: 256 KiB pieces, large enough that per-piece costs vanish
/// next to the copying and hashing of their bytes. Six of them (1.5 MiB)
/// daemon-wide: a download keeps two in flight (one being written, one
/// being read or waiting for room), so three run at full speed at once.
/// Each is memory that clients which stop reading may hold (three such
/// clients hold them all; a cap per connection is not made). When they
/// are taken, 32 KiB pieces: small enough that hundreds of stalled
/// downloads hold little. An idle daemon keeps four (1 MiB).
pub const DOWNLOADS: Shape = Shape {
    large: 256 * 1024,
    count: 6,
    keep_free: 4,
    small: 32 * 1024,
};

/// Uploads: a frame of berkutctl's (a 1 MiB piece and its message's few
/// bytes) fits a pooled buffer. An import keeps about nine in flight
/// (`backup_import::channel`, `import_check::DEPTH`, one being read, one
/// being checked), so twelve let one import run without allocating; a
/// second one at the same time allocates as before. An idle daemon keeps
/// four (4 MiB). Frames of other sizes get buffers of their own size.
pub const UPLOADS: Shape = Shape {
    large: berkut_proto::wire::client::UPLOAD_CHUNK + 1024,
    count: 12,
    keep_free: 4,
    small: 0,
};

/// Frames up to this size are read into buffers of their own: requests,
/// and small upload pieces, for which a pooled megabyte would be waste.
/// It is past the largest first frame (`MAX_HELLO_FRAME_LEN`), so a peer
/// that has not said `hello` never holds a pooled buffer.
const POOLED_FROM: usize = berkut_proto::wire::MAX_HELLO_FRAME_LEN + 1;

/// A pool of large pieces.
pub struct Pieces {
    shape: Shape,
    permits: Arc<Semaphore>,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Pieces {
    pub fn new(shape: Shape) -> Pieces {
        Pieces {
            shape,
            permits: Arc::new(Semaphore::new(shape.count)),
            free: Arc::default(),
        }
    }

    /// An empty buffer for a download's next piece: a pooled large one
    /// when the pool has room, else a small one of its own. Never waits.
    pub fn take(&self) -> Piece {
        self.pooled()
            .unwrap_or_else(|| Piece::unpooled(self.shape.small))
    }

    /// A buffer for a frame of `len` bytes (then `room()[..len]` is read
    /// into and `set_len(len)` says so): pooled when it is a large frame
    /// that fits and the pool has room, else one of exactly its size.
    /// Never waits.
    pub fn take_for(&self, len: usize) -> Piece {
        let pooled = (POOLED_FROM..=self.shape.large).contains(&len);
        pooled
            .then(|| self.pooled())
            .flatten()
            .unwrap_or_else(|| Piece::unpooled(len))
    }

    fn pooled(&self) -> Option<Piece> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        let buf = lock(&self.free)
            .pop()
            .unwrap_or_else(|| vec![0; self.shape.large]);
        Some(Piece {
            buf,
            start: 0,
            len: 0,
            pooled: Some(Pooled {
                _permit: permit,
                free: Arc::clone(&self.free),
                keep_free: self.shape.keep_free,
            }),
        })
    }

    /// Large pieces in use now (for tests).
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.shape.count - self.permits.available_permits()
    }
}

/// One piece's bytes: `filled()` of them are the content, the rest room to
/// read into. A pooled piece goes back to the pool when dropped, that is
/// once it is on the socket or its transfer ended.
pub struct Piece {
    buf: Vec<u8>,
    /// Where the content starts: an upload's piece is the data inside the
    /// frame it was read with.
    start: usize,
    len: usize,
    pooled: Option<Pooled>,
}

struct Pooled {
    _permit: OwnedSemaphorePermit,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    keep_free: usize,
}

impl Piece {
    /// The whole buffer, to read into; then `set_len`.
    pub fn room(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Says how many bytes of the buffer are content (at most its size).
    pub fn set_len(&mut self, len: usize) {
        self.start = 0;
        self.len = len.min(self.buf.len());
    }

    /// Narrows the content to `range` of it (an upload's data within its
    /// frame); a range outside the content leaves it empty.
    pub fn keep(&mut self, range: Range<usize>) {
        if range.start <= range.end && range.end <= self.len {
            self.start += range.start;
            self.len = range.end - range.start;
        } else {
            self.len = 0;
        }
    }

    pub fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
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
            start: 0,
            pooled: None,
        }
    }
}

impl Piece {
    /// A zeroed buffer of `len` bytes of its own, not from a pool.
    fn unpooled(len: usize) -> Piece {
        Piece {
            buf: vec![0; len],
            start: 0,
            len: 0,
            pooled: None,
        }
    }
}

/// A piece on its way to the socket, which something else may be reading
/// at the same time (a download hashes each piece while it is sent).
pub struct Shared(pub Arc<Piece>);

impl From<Arc<Piece>> for Shared {
    fn from(piece: Arc<Piece>) -> Shared {
        Shared(piece)
    }
}

impl From<Piece> for Shared {
    fn from(piece: Piece) -> Shared {
        Shared(Arc::new(piece))
    }
}

impl From<Vec<u8>> for Shared {
    fn from(buf: Vec<u8>) -> Shared {
        Shared(Arc::new(Piece::from(buf)))
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            let mut free = lock(&pooled.free);
            if free.len() < pooled.keep_free {
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
        let pieces = Pieces::new(DOWNLOADS);
        let held: Vec<Piece> = (0..DOWNLOADS.count).map(|_| pieces.take()).collect();
        assert!(held.iter().all(|p| p.buf.len() == DOWNLOADS.large));
        assert_eq!(pieces.in_use(), DOWNLOADS.count);
        // The pool is exhausted: the next download goes on with small
        // pieces, at once.
        let small = pieces.take();
        assert_eq!(small.buf.len(), DOWNLOADS.small);
        drop(small);
        assert_eq!(pieces.in_use(), DOWNLOADS.count);
        // Freed pieces come back, and at most `keep_free` buffers are kept.
        drop(held);
        assert_eq!(pieces.in_use(), 0);
        let kept: Vec<*const u8> = lock(&pieces.free).iter().map(|b| b.as_ptr()).collect();
        assert_eq!(kept.len(), DOWNLOADS.keep_free);
        // The next large piece is one of them, not a new allocation.
        let again = pieces.take();
        assert_eq!(again.buf.len(), DOWNLOADS.large);
        assert!(again.is_empty());
        assert!(kept.contains(&again.buf.as_ptr()));
        assert_eq!(pieces.in_use(), 1);
    }

    #[test]
    fn upload_frames_are_read_into_reused_buffers_when_large_and_their_own_otherwise() {
        let pieces = Pieces::new(UPLOADS);
        let frame = (1 << 20) + 30;
        let first = pieces.take_for(frame);
        assert_eq!(pieces.in_use(), 1);
        let reused = first.buf.as_ptr();
        drop(first);
        let again = pieces.take_for(frame);
        assert_eq!(again.buf.as_ptr(), reused, "the freed buffer is reused");
        // A request, a frame larger than a pooled buffer and one that comes
        // when the pool is exhausted each get a buffer of their own size.
        let small = pieces.take_for(200);
        assert_eq!((small.buf.len(), pieces.in_use()), (200, 1));
        let huge = pieces.take_for(UPLOADS.large + 1);
        assert_eq!((huge.buf.len(), pieces.in_use()), (UPLOADS.large + 1, 1));
        let held: Vec<Piece> = (1..UPLOADS.count).map(|_| pieces.take_for(frame)).collect();
        assert_eq!(pieces.in_use(), UPLOADS.count);
        let over = pieces.take_for(frame);
        assert_eq!(over.buf.len(), frame);
        assert_eq!(pieces.in_use(), UPLOADS.count);
        drop((held, again));
        assert_eq!(pieces.in_use(), 0);
        assert_eq!(lock(&pieces.free).len(), UPLOADS.keep_free);
    }

    #[test]
    fn an_upload_piece_keeps_the_data_inside_its_frame() {
        let mut piece = Piece::from((0u8..100).collect::<Vec<_>>());
        piece.keep(10..20);
        assert_eq!(piece.filled(), &(10u8..20).collect::<Vec<_>>()[..]);
        piece.keep(2..5);
        assert_eq!(piece.filled(), &[12, 13, 14]);
        // A range past the content leaves nothing rather than panicking.
        piece.keep(2..9);
        assert!(piece.is_empty());
        let mut piece = Piece::from(vec![1, 2, 3]);
        #[allow(clippy::reversed_empty_ranges)]
        piece.keep(3..1);
        assert!(piece.is_empty());
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
