//! The wire protocol between berkutd and its clients: length-prefixed
//! MessagePack frames over a Unix stream socket (`frame`), the messages they
//! carry (`messages`, with each operation's request type in `ops`, and
//! `records`), the stable error codes (`error`), the limits on what a client
//! may send and how errors quote it (`input`) and an async client
//! (`client`). `docs/PROTOCOL.md` describes the same thing for implementers
//! in other languages.

pub mod access;
pub mod client;
pub mod data;
pub mod error;
mod explain;
pub mod frame;
pub mod input;
pub mod messages;
pub mod ops;
pub mod plan;
pub mod records;
pub mod remote;
pub mod restore;
pub mod scan;

pub use access::{OnBehalfOf, Role};
pub use client::{Client, ClientError};
pub use error::{ErrorBody, ErrorCode};
pub use frame::{
    Connection, FrameError, MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN, MAX_REQUEST_FRAME_LEN,
};
pub use messages::{ClientMessage, Operation, Reply, ServerMessage, SinkResult, PROTOCOL_VERSION};
pub use plan::{PlanInfo, PlanSpec, Preset};
pub use records::{
    BackupRecord, BackupStatus, CopyRecord, CopyState, Failure, JobInfo, JobKind, Phase, Progress,
    StatusInfo, TaskFault,
};
pub use records::{DrillResult, DrillVerdict, RestoreEstimate};
pub use remote::{RemoteArchive, RemoteInfo, RemoteVerdict};
pub use restore::{
    CountCheck, DigestCheck, Evidence, MaintenanceInfo, RestoreRecord, RestoreStatus, RestoreStep,
    StepLog, StepState,
};
pub use restore::{DigestVerdict, SmokeCheckResult};
