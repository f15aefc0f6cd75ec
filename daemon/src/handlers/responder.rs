//! How a handler talks back to its client while it runs: progress, pieces
//! of a download, a restore's record, maintenance events, and the pieces
//! of an upload it receives. The final reply (or error) is not sent here:
//! the connection sends and audits it (`connection::answer`).

use berkut_proto::wire::{Progress, ServerMessage};
use tokio::sync::mpsc;

use super::backup_import;
use crate::connection::{Gate, Outbox};

/// Sends what a handler has to say about one request back to its client.
pub struct Responder {
    id: u64,
    tx: Outbox,
    upload: std::sync::Mutex<Option<mpsc::Receiver<backup_import::Piece>>>,
    /// An import's upload: opened by `proceed`.
    gate: Option<Gate>,
}

impl Responder {
    pub fn new(id: u64, tx: Outbox) -> Responder {
        Responder {
            id,
            tx,
            upload: std::sync::Mutex::new(None),
            gate: None,
        }
    }

    /// A responder for an import, with the pieces the client uploads.
    pub fn with_upload(
        id: u64,
        tx: Outbox,
        upload: mpsc::Receiver<backup_import::Piece>,
        gate: Gate,
    ) -> Responder {
        Responder {
            id,
            tx,
            upload: std::sync::Mutex::new(Some(upload)),
            gate: Some(gate),
        }
    }

    pub fn take_upload(&self) -> Option<mpsc::Receiver<backup_import::Piece>> {
        self.upload.lock().unwrap().take()
    }

    /// Tells the client to send the data of its upload, which is open
    /// from now on (its pieces may be as large as a frame can be).
    pub async fn proceed(&self) -> bool {
        if let Some(gate) = &self.gate {
            gate.open();
        }
        self.tx
            .send(ServerMessage::Continue { id: self.id })
            .await
            .is_ok()
    }

    /// Sends a piece of a download (a pooled `connection::Piece`, perhaps
    /// shared with a hasher, or bytes made elsewhere); `false` once the
    /// client has gone away.
    pub async fn data(&self, offset: u64, data: impl Into<crate::connection::Shared>) -> bool {
        self.tx
            .send_piece(self.id, offset, data.into().0)
            .await
            .is_ok()
    }

    /// Sends a restore's record while it is followed; `false` once the
    /// client has gone away.
    pub async fn restore(&self, restore: berkut_proto::wire::RestoreRecord) -> bool {
        self.tx
            .send(ServerMessage::RestoreProgress {
                id: self.id,
                restore,
            })
            .await
            .is_ok()
    }

    /// Resolves once the client has hung up: for a handler that may wait a
    /// long time with nothing to send.
    pub async fn client_gone(&self) {
        self.tx.gone().await
    }

    /// Sends a maintenance event; `false` once the client has gone away.
    pub async fn event(&self, maintenance: berkut_proto::wire::MaintenanceInfo) -> bool {
        self.tx
            .send(ServerMessage::Event {
                id: self.id,
                maintenance,
            })
            .await
            .is_ok()
    }

    /// Sends a progress message; `false` once the client has gone away.
    pub async fn progress(&self, progress: Progress) -> bool {
        self.tx
            .send(ServerMessage::Progress {
                id: self.id,
                progress,
            })
            .await
            .is_ok()
    }
}
