//! Checking an uploaded archive while it arrives, so that an import reads
//! its bytes once: every piece written to the quarantine file is also handed
//! to a blocking thread that authenticates the archive (every chunk, the
//! structure, the manifest against the parts) while a second thread takes
//! the file's sha256. When the upload ends the verdict is ready, instead of
//! the file being read back in a second pass.

use std::io::{self, Read};

use berkut_proto::archive::{self, Depth, Header};
use berkut_proto::manifest::Manifest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::catalogue::ArchiveFacts;
use crate::error::OpError;
use crate::state::Daemon;

/// Pieces in flight between the connection and the checking thread.
const DEPTH: usize = 8;

/// The checking side of an import in progress.
pub struct Check {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    task: JoinHandle<Result<(Manifest, ArchiveFacts), OpError>>,
}

impl Check {
    pub fn start(daemon: &std::sync::Arc<Daemon>) -> Check {
        let (tx, rx) = mpsc::channel(DEPTH);
        let keyring = daemon.config().keyring.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = archive::HashingReadAhead::new(Pieces {
                rx,
                buf: Vec::new(),
                pos: 0,
            });
            let manifest =
                archive::verify_with(&mut reader, &keyring, Depth::Authenticate, |_, _| Ok(()))
                    .map_err(crate::restore::archive::refused)?;
            let (size_bytes, sha256) = reader
                .finish()
                .map_err(|e| OpError::unavailable("the upload could not be read").with_detail(e))?;
            Ok((
                manifest,
                ArchiveFacts {
                    size_bytes,
                    sha256,
                    key_id: String::new(),
                },
            ))
        });
        Check { tx: Some(tx), task }
    }

    /// Hands a piece to the checker. `false` when the checker has stopped
    /// (it refused the archive): the caller ends the upload and asks
    /// [`Check::verdict`] why.
    pub async fn feed(&mut self, piece: Vec<u8>) -> bool {
        match &self.tx {
            Some(tx) => tx.send(piece).await.is_ok(),
            None => false,
        }
    }

    /// Ends the input and waits for the checker's verdict; `head` is the
    /// archive's first bytes, for the key id.
    pub async fn verdict(mut self, head: &[u8]) -> Result<(Manifest, ArchiveFacts), OpError> {
        self.tx = None;
        let (manifest, mut facts) = self
            .task
            .await
            .unwrap_or_else(|e| Err(OpError::internal(format!("verification panicked: {e}"))))?;
        let header = Header::read_from(&mut &head[..]).map_err(crate::restore::archive::refused)?;
        facts.key_id = header.key_id.to_string();
        Ok((manifest, facts))
    }
}

/// The pieces as a `Read`, ending when the sender is dropped.
struct Pieces {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(piece) => {
                    self.buf = piece;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
