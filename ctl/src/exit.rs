//! Exit codes that mean something to a script, and how errors are printed:
//! the daemon's code and message on stderr, never a Rust backtrace. Output
//! cut short by its reader (`berkutctl backup list | head -1`) ends
//! berkutctl quietly, like any Unix tool (`quiet_when_stdout_closes`).

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
  8  unavailable    9  invalid or too_large            10 internal or protocol error
  141  standard output was closed before berkutctl finished (e.g. `| head`)";

pub const FAILED: u8 = 1;

/// The exit code when the reader of standard output went away: what a
/// shell reports for a tool killed by SIGPIPE (128 + 13).
pub const STDOUT_CLOSED: i32 = 141;

/// Makes every write to a closed standard output, wherever it happens, end
/// the process quietly with `STDOUT_CLOSED`. Rust ignores SIGPIPE (a
/// daemon socket closing must be an error berkutctl can report, not a
/// silent death), so `println!` meets `EPIPE` and panics; the panic hook is
/// the one place every such write passes through. Any other panic keeps
/// the default report.
pub fn quiet_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_closed_stdout(message) {
            std::process::exit(STDOUT_CLOSED);
        }
        default(info);
    }));
}

/// Whether a panic message is `print!`'s on a closed pipe (`EPIPE`, os
/// error 32).
fn is_closed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout")
        && (message.contains("os error 32") || message.contains("Broken pipe"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_stdout_is_quiet() {
        assert!(is_closed_stdout(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_closed_stdout("index out of bounds"));
    }
}
