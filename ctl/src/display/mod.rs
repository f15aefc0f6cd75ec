//! Everything berkutctl shows, for people and for scripts, in one layer:
//! one module per kind of thing shown. Commands talk to the daemon and hand
//! what came back to a function here; no command prints by itself. With
//! `--json`, output is the protocol's own records, one object per line, so
//! a script sees exactly the fields the protocol documents.

pub mod archive;
pub mod audit;
pub mod backup;
pub mod key;
pub mod maintenance;
pub mod monitoring;
pub mod plan;
pub mod progress;
pub mod remote;
pub mod restore;
pub mod status;
pub mod store;
pub mod text;

use std::process::ExitCode;

use serde::Serialize;

use crate::exit;

/// One JSON object on its own line.
pub fn json_line<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).expect("records serialise")
    );
}

/// A record with a form for people; its JSON form is its serialisation.
pub trait Show: Serialize {
    /// Prints the record for people.
    fn print(&self);
}

/// Shows a record: its JSON line with `--json`, else its form for people.
pub fn show<T: Show + ?Sized>(json: bool, record: &T) {
    if json {
        json_line(record);
    } else {
        record.print();
    }
}

/// A record that ends a job: one that failed makes the command fail.
pub trait Outcome: Show {
    /// Whether the job failed (the command then exits 1).
    fn failed(&self) -> bool;
    /// The line for people on stderr when it failed, after `berkutctl: `.
    fn failure_line(&self) -> Option<String>;
}

/// Shows a job's final record and chooses the exit code: a failed job is a
/// failed command, and people also read why on stderr.
pub fn finish<T: Outcome>(json: bool, record: &T) -> ExitCode {
    show(json, record);
    if !record.failed() {
        return ExitCode::SUCCESS;
    }
    if let (false, Some(line)) = (json, record.failure_line()) {
        eprintln!("berkutctl: {line}");
    }
    ExitCode::from(exit::FAILED)
}
