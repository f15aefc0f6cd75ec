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

/// Bytes handed to the hashing thread at a time.
const BUF: usize = 1 << 20;

/// Buffers in flight between the threads.
const DEPTH: usize = 4;

/// A `Read` over `inner` whose bytes are also hashed on another thread.
pub struct HashingReadAhead<R> {
    inner: R,
    /// Filled buffers to the hasher; `None` once the input has ended.
    full: Option<SyncSender<Vec<u8>>>,
    /// Buffers the hasher is done with.
    empty: Receiver<Vec<u8>>,
    /// The buffer being filled with what the caller read.
    current: Vec<u8>,
    total: u64,
    thread: Option<JoinHandle<[u8; 32]>>,
}

impl<R: Read> HashingReadAhead<R> {
    pub fn new(inner: R) -> HashingReadAhead<R> {
        let (full, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        for _ in 0..DEPTH {
            let _ = empty_tx.send(Vec::with_capacity(BUF));
        }
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            // The reader hanging up (dropping its end) ends the input.
            while let Ok(mut buf) = full_rx.recv() {
                hasher.update(&buf);
                buf.clear();
                // The reader may be gone already (it stopped early).
                let _ = empty_tx.send(buf);
            }
            hasher.finalize().into()
        });
        HashingReadAhead {
            inner,
            full: Some(full),
            empty,
            current: Vec::with_capacity(BUF),
            total: 0,
            thread: Some(thread),
        }
    }

    /// Reads whatever is left, then returns the file's length and its
    /// lower-case hex sha256.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        self.hand_over()?;
        // Closing the channel ends the hasher's loop.
        self.full = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?;
        let digest = thread
            .join()
            .map_err(|_| io::Error::other("the hashing thread failed"))?;
        Ok((self.total, hex::encode(digest)))
    }

    /// Sends the current buffer to the hasher and takes a free one.
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

impl<R: Read> Read for HashingReadAhead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let mut read = &out[..n];
        while !read.is_empty() {
            let take = (BUF - self.current.len()).min(read.len());
            self.current.extend_from_slice(&read[..take]);
            read = &read[take..];
            if self.current.len() == BUF {
                self.hand_over()?;
            }
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
