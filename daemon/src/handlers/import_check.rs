//! Checking an uploaded archive while it arrives, so that an import reads
//! its bytes once: every piece goes to a blocking thread that writes it to
//! the quarantine file and authenticates the archive (every chunk, the
//! structure, the manifest against the parts) while a second thread takes
//! the file's sha256. When the upload ends the file is fsynced and the
//! verdict is ready, instead of the file being read back in a second pass.
//!
//! The thread writes the file itself, with plain blocking writes of whole
//! pieces, rather than the connection's task through `tokio::fs`, which
//! would copy every piece once more and hand each write to the blocking
//! pool. The pieces are the buffers the connection read their frames into
//! (`connection::Piece`, pooled), and the file hands its pages to the disk
//! as it grows (`WriteBehind`), so the fsync at the end waits for little.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use berkut_proto::archive::{self, Depth, Header, WriteBehind};
use berkut_proto::manifest::Manifest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::catalogue::ArchiveFacts;
use crate::connection::Piece;
use crate::error::OpError;
use crate::state::Daemon;

/// Pieces in flight between the connection and the checking thread (with
/// the upload channel's, what an import holds of the upload pool).
const DEPTH: usize = 4;

/// The checking side of an import in progress.
pub struct Check {
    tx: Option<mpsc::Sender<Piece>>,
    task: JoinHandle<Result<(Manifest, ArchiveFacts), OpError>>,
}

impl Check {
    /// Starts the checker; every piece fed is written to `file` (the
    /// quarantine file), which is fsynced before a verdict of success.
    pub fn start(daemon: &Arc<Daemon>, file: File) -> Check {
        let (tx, rx) = mpsc::channel(DEPTH);
        let keyring = daemon.config().keyring.clone();
        let task = tokio::task::spawn_blocking(move || {
            let write_error = Arc::new(Mutex::new(None));
            let mut reader = archive::HashingReadAhead::new(Pieces {
                rx,
                file: WriteBehind::new(file),
                write_error: Arc::clone(&write_error),
                buf: None,
                pos: 0,
            });
            let verified =
                archive::verify_with(&mut reader, &keyring, Depth::Authenticate, |_, _| Ok(()));
            // A failed write is the disk's fault, not the archive's.
            let failed_write = || {
                write_error
                    .lock()
                    .ok()
                    .and_then(|mut slot| slot.take())
                    .map(crate::store::io_error)
            };
            if let Some(e) = failed_write() {
                return Err(e);
            }
            let manifest = verified.map_err(crate::restore::archive::refused)?;
            let finished = reader.finish();
            if let Some(e) = failed_write() {
                return Err(e);
            }
            let (size_bytes, sha256) = finished
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
    pub async fn feed(&mut self, piece: Piece) -> bool {
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

/// The pieces as a `Read`, ending when the sender is dropped; each piece is
/// written to the file as it is taken, and the file is fsynced at the end.
struct Pieces {
    rx: mpsc::Receiver<Piece>,
    file: WriteBehind,
    /// The first write (or fsync) error, for the verdict to report as such.
    write_error: Arc<Mutex<Option<io::Error>>>,
    buf: Option<Piece>,
    pos: usize,
}

impl Pieces {
    fn failed(&self, e: io::Error) -> io::Error {
        let report = io::Error::new(e.kind(), e.to_string());
        if let Ok(mut slot) = self.write_error.lock() {
            slot.get_or_insert(e);
        }
        report
    }
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.buf.as_ref().map_or(0, |b| b.len() - self.pos);
            if left > 0 {
                break;
            }
            // The piece read out goes back to its pool here.
            self.buf = None;
            match self.rx.blocking_recv() {
                Some(piece) => {
                    if let Err(e) = self.file.write_all(piece.filled()) {
                        return Err(self.failed(e));
                    }
                    self.buf = Some(piece);
                    self.pos = 0;
                }
                None => {
                    // The upload is complete: make it durable before the
                    // verdict, as a backup's archive is before it is
                    // catalogued.
                    if let Err(e) = self.file.sync_all() {
                        return Err(self.failed(e));
                    }
                    return Ok(0);
                }
            }
        }
        let Some(buf) = self.buf.as_ref() else {
            return Ok(0);
        };
        let data = &buf.filled()[self.pos..];
        let n = out.len().min(data.len());
        out[..n].copy_from_slice(&data[..n]);
        self.pos += n;
        Ok(n)
    }
}
