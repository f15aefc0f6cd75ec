//! Exit codes that mean something to a script, and how errors are printed:
//! the daemon's code and message on stderr, never a Rust backtrace.

use std::process::ExitCode;

use berkut_proto::wire::{ClientError, ErrorCode};

pub const HELP: &str = "\
Exit codes:
  0  success
  1  the operation ran and failed (e.g. a backup whose record is failed),
     or `status` reports a fault (store alarm, a background task died)
  2  wrong usage
  3  the daemon cannot be reached
  4  not_found      5  conflict      6  forbidden     7  maintenance
  8  unavailable    9  invalid or too_large            10 internal or protocol error";

pub const FAILED: u8 = 1;

pub fn code_for(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::NotFound => 4,
        ErrorCode::Conflict => 5,
        ErrorCode::Forbidden => 6,
        ErrorCode::Maintenance => 7,
        ErrorCode::Unavailable => 8,
        ErrorCode::Invalid | ErrorCode::TooLarge => 9,
        ErrorCode::VersionMismatch | ErrorCode::Internal | ErrorCode::Unknown => 10,
    }
}

/// Prints an error and chooses the exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Server(body)) => {
            match &body.correlation_id {
                Some(id) => eprintln!(
                    "berkutctl: {}: {} (correlation id {id})",
                    body.code, body.message
                ),
                None => eprintln!("berkutctl: {}: {}", body.code, body.message),
            }
            ExitCode::from(code_for(body.code))
        }
        Some(ClientError::Connect(_)) => {
            eprintln!("berkutctl: {e:#}");
            eprintln!("berkutctl: is berkutd running? Set --socket or BERKUT_SOCKET if it listens elsewhere.");
            ExitCode::from(3)
        }
        // An archive that does not verify is an operation that ran and
        // failed, not a fault of berkutctl.
        _ if e
            .downcast_ref::<berkut_proto::archive::ArchiveError>()
            .is_some() =>
        {
            eprintln!("berkutctl: {e:#}");
            ExitCode::from(FAILED)
        }
        _ => {
            eprintln!("berkutctl: {e:#}");
            ExitCode::from(10)
        }
    }
}
