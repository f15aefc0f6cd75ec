//! Hashing a file on a thread of its own while it is read, so that the
//! file's sha256 (which the catalogue records) costs no time on the thread
//! that authenticates the archive: on two cores the two passes overlap
//! instead of adding up.
//!
//! The caller's thread does the reading, straight into its own buffer, and
//! hands a copy of every byte to the hashing thread: SHA-256 is the slowest
//! stage (about 1.5 GB/s with SHA-NI, against several GB/s for a read from
//! the page cache, a copy and Poly1305), so its thread does nothing else.
//! Buffers go round between the two threads, so nothing is allocated per
//! read, and at most a few megabytes are in flight; when the hasher falls
//! behind, the reader waits for a free buffer.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Bytes [`HashingReadAhead`] hands to its hashing thread at a time.
const BUF: usize = 1 << 20;

/// Buffers in flight between the threads.
const DEPTH: usize = 4;

/// SHA-256 computed on a thread of its own: [`BackgroundHasher::update`]
/// copies the bytes into a buffer that goes to the thread when full.
pub struct BackgroundHasher {
    /// Filled buffers to the hasher; dropping it ends the hasher's loop.
    full: Option<SyncSender<Vec<u8>>>,
    /// Buffers the hasher is done with.
    empty: Receiver<Vec<u8>>,
    /// The buffer being filled.
    current: Vec<u8>,
    buf_len: usize,
    thread: Option<JoinHandle<[u8; 32]>>,
}

impl BackgroundHasher {
    /// Starts the thread; `buf_len` bytes go to it at a time, and at most
    /// `DEPTH + 1` buffers of that size exist.
    pub fn new(buf_len: usize) -> io::Result<BackgroundHasher> {
        let (full, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        for _ in 0..DEPTH {
            let _ = empty_tx.send(Vec::with_capacity(buf_len));
        }
        let thread = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                // The owner hanging up (dropping its end) ends the input.
                while let Ok(mut buf) = full_rx.recv() {
                    hasher.update(&buf);
                    buf.clear();
                    // The owner may be gone already (it stopped early).
                    let _ = empty_tx.send(buf);
                }
                hasher.finalize().into()
            })?;
        Ok(BackgroundHasher {
            full: Some(full),
            empty,
            current: Vec::with_capacity(buf_len),
            buf_len,
            thread: Some(thread),
        })
    }

    /// Adds `data` to the hash; waits for a free buffer when the thread is
    /// behind.
    pub fn update(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let take = (self.buf_len - self.current.len()).min(data.len());
            self.current.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.current.len() == self.buf_len {
                self.hand_over()?;
            }
        }
        Ok(())
    }

    /// The digest of everything added.
    pub fn finalize(mut self) -> io::Result<[u8; 32]> {
        self.hand_over()?;
        // Closing the channel ends the hasher's loop.
        self.full = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?;
        thread
            .join()
            .map_err(|_| io::Error::other("the hashing thread failed"))
    }

    /// Sends the current buffer to the thread and takes a free one.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let stopped = || io::Error::other("the hashing thread stopped");
        let next = self.empty.recv().map_err(|_| stopped())?;
        let full = std::mem::replace(&mut self.current, next);
        self.full
            .as_ref()
            .ok_or_else(stopped)?
            .send(full)
            .map_err(|_| stopped())
    }
}

/// A `Read` over `inner` whose bytes are also hashed on another thread.
pub struct HashingReadAhead<R> {
    inner: R,
    hasher: Option<BackgroundHasher>,
    /// Why the hashing thread could not start, reported by the first read.
    unavailable: Option<io::Error>,
    total: u64,
}

impl<R: Read> HashingReadAhead<R> {
    pub fn new(inner: R) -> HashingReadAhead<R> {
        let (hasher, unavailable) = match BackgroundHasher::new(BUF) {
            Ok(h) => (Some(h), None),
            Err(e) => (None, Some(e)),
        };
        HashingReadAhead {
            inner,
            hasher,
            unavailable,
            total: 0,
        }
    }

    /// Reads whatever is left, then returns the file's length and its
    /// lower-case hex sha256.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        let hasher = self.hasher.take().ok_or_else(|| self.not_hashing())?;
        Ok((self.total, hex::encode(hasher.finalize()?)))
    }

    fn not_hashing(&mut self) -> io::Error {
        self.unavailable
            .take()
            .unwrap_or_else(|| io::Error::other("the hashing thread is gone"))
    }
}

impl<R: Read> Read for HashingReadAhead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.hasher.is_none() {
            return Err(self.not_hashing());
        }
        let n = self.inner.read(out)?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(&out[..n])?;
        }
        self.total += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_hashes_exactly_the_input() {
        for len in [0usize, 1, BUF - 1, BUF, 3 * BUF + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let mut r = HashingReadAhead::new(io::Cursor::new(data.clone()));
            let mut back = Vec::new();
            let mut piece = vec![0u8; 70_001];
            loop {
                let n = r.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&piece[..n]);
            }
            assert_eq!(back, data, "length {len}");
            let (total, digest) = r.finish().unwrap();
            assert_eq!(total, len as u64);
            assert_eq!(digest, hex::encode(Sha256::digest(&data)));
        }
    }

    #[test]
    fn the_background_hasher_hashes_exactly_what_it_is_given() {
        // Buffers of 1000 bytes, so that pieces straddle them and the
        // thread has more buffers to hash than there are in flight.
        for len in [0usize, 1, 999, 1000, 1001, 12_345] {
            let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let mut hasher = BackgroundHasher::new(1000).unwrap();
            for piece in data.chunks(777) {
                hasher.update(piece).unwrap();
            }
            let digest = hasher.finalize().unwrap();
            assert_eq!(
                digest,
                <[u8; 32]>::from(Sha256::digest(&data)),
                "length {len}"
            );
        }
    }

    #[test]
    fn a_read_error_reaches_the_reader() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut r = HashingReadAhead::new(Failing);
        let err = r.read(&mut [0u8; 10]).unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
    }
}
