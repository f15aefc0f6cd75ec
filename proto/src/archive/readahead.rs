//! Reading a file on a thread of its own while hashing it, so that the
//! file's sha256 (which the catalogue records) costs no time on the thread
//! that authenticates the archive: on two cores the two passes overlap
//! instead of adding up. Buffers go round between the two threads, so
//! nothing is allocated per read and at most a few megabytes are in flight.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Bytes the reading thread reads at a time.
const BUF: usize = 1 << 20;

/// Buffers in flight between the threads.
const DEPTH: usize = 4;

/// A `Read` over `inner`, read and hashed ahead on another thread.
pub struct HashingReadAhead {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
    thread: Option<JoinHandle<(u64, [u8; 32])>>,
}

impl HashingReadAhead {
    pub fn new<R: Read + Send + 'static>(mut inner: R) -> HashingReadAhead {
        let (full_tx, full) = mpsc::sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let (empty, empty_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        for _ in 0..DEPTH {
            let _ = empty.send(Vec::with_capacity(BUF));
        }
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            let mut total = 0u64;
            // The consumer hanging up (dropping its end) stops the thread.
            while let Ok(mut buf) = empty_rx.recv() {
                buf.resize(BUF, 0);
                let n = loop {
                    match inner.read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                match n {
                    Ok(n) => {
                        buf.truncate(n);
                        hasher.update(&buf);
                        total += n as u64;
                        if full_tx.send(Ok(buf)).is_err() || n == 0 {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
            }
            (total, hasher.finalize().into())
        });
        HashingReadAhead {
            full,
            empty,
            current: Vec::new(),
            pos: 0,
            ended: false,
            thread: Some(thread),
        }
    }

    /// Reads whatever is left, then returns the file's length and its
    /// lower-case hex sha256.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?;
        let (total, digest) = thread
            .join()
            .map_err(|_| io::Error::other("the reading thread failed"))?;
        Ok((total, hex::encode(digest)))
    }
}

impl Read for HashingReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            let buf = self
                .full
                .recv()
                .map_err(|_| io::Error::other("the reading thread stopped"))??;
            let old = std::mem::replace(&mut self.current, buf);
            self.pos = 0;
            if self.current.is_empty() {
                self.ended = true;
            }
            let _ = self.empty.send(old);
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
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
