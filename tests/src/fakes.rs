//! Stand-ins for PostgreSQL's tools, for injecting faults: a `pg_dump` that
//! fails, one that dies mid-stream, one that waits at a gate the test opens.
//! They are shell scripts; where they dump for real they `exec` the real
//! binary, so the data path stays genuine.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes an executable shell script that answers `--version` like pg_dump
/// and otherwise runs `body`.
pub fn fake_pg_dump(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'pg_dump (PostgreSQL) 15.99 (fake)'; exit 0; fi\n{body}\n"
    );
    std::fs::write(&path, script).expect("write fake pg_dump");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod fake pg_dump");
    path
}

/// Writes an executable shell script `name` running `body`: a stand-in for
/// any tool (a `pg_restore` that fails in one section, say).
pub fn fake_tool(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write fake tool");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod fake tool");
    path
}

/// A gate a fake tool waits at until the test opens it: a named pipe the
/// script reads one line from. Opening it is the test's explicit signal; no
/// timing is involved.
#[derive(Clone)]
pub struct Gate {
    path: PathBuf,
}

impl Gate {
    pub fn new(dir: &Path, name: &str) -> Gate {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666))
            .expect("mkfifo");
        Gate { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shell code that blocks until the gate opens.
    pub fn wait_snippet(&self) -> String {
        format!("read _ < '{}'", self.path.display())
    }

    /// A pg_dump that waits at this gate, then runs the real pg_dump.
    pub fn gated_pg_dump(&self, dir: &Path, name: &str) -> PathBuf {
        let real = crate::pg_bin_dir().join("pg_dump");
        fake_pg_dump(
            dir,
            name,
            &format!("{}\nexec '{}' \"$@\"", self.wait_snippet(), real.display()),
        )
    }

    /// A pg_restore that waits at this gate before it restores (its
    /// `--list` runs at once), then runs the real pg_restore.
    pub fn gated_pg_restore(&self, dir: &Path) -> PathBuf {
        let real = crate::pg_bin_dir().join("pg_restore");
        fake_tool(
            dir,
            "pg_restore",
            &format!(
                "case \"$*\" in *--list*) ;; *) {} ;; esac\nexec '{}' \"$@\"",
                self.wait_snippet(),
                real.display()
            ),
        )
    }

    /// Lets one waiting script through. Blocks until a script is waiting;
    /// use it only when exactly one script can be waiting.
    pub fn open_once(&self) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .expect("open gate");
        f.write_all(b"go\n").expect("write gate");
    }

    /// Opens the gate for good: every script waiting now goes through, and
    /// so does every later one.
    pub fn open_forever(&self) {
        // Opening a FIFO read-write never blocks on Linux and releases the
        // scripts blocked in opening it for reading.
        let mut fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .expect("open gate");
        let open = self.path.with_extension("open");
        std::fs::write(&open, b"go\n").expect("write open gate");
        std::fs::rename(&open, &self.path).expect("replace the gate");
        fifo.write_all(&b"go\n".repeat(256)).expect("write gate");
    }
}
