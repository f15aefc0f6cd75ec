//! The gateway fixture: berkut-http started as the application's user
//! with a loopback socket passed to it the way systemd's socket unit does
//! (`LISTEN_FDS`, fd 3), so every test gets a free port without races; a
//! daemon that grants that user `app`; and requests made for a user and
//! role of the application.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use berkut_testkit::{
    backup_now, daemon_for, small_cluster, test_uids, wait_for, wait_for_async, Daemon,
    DaemonBuilder, PgCluster, LONG,
};
use berkut_testkit::{run_as, temp_dir, workspace_bin};

/// The grants every test daemon has: the application's user is `app`;
/// root (the test itself) stays the daemon's admin.
const APP_GRANT: &str = "[[access]]\nuser = \"berkut-t-app\"\nrole = \"app\"\n";

/// Starts `builder`'s daemon with the `app` grant, its socket open to the
/// test users (the daemon's grants are what decides).
pub fn start_daemon(builder: DaemonBuilder) -> Daemon {
    let dir = temp_dir("http-grants-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(&config, APP_GRANT).unwrap();
    let daemon = builder
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    // The daemon reads the file again on reload only; the directory may go
    // when the test ends.
    std::mem::forget(dir);
    daemon.open_socket_to_all();
    daemon
}

/// A running berkut-http.
pub struct Gateway {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// The gateway as the application's user, on a loopback port passed
    /// by socket activation, talking to `socket`.
    pub fn start(socket: &Path, extra: &[&str]) -> Gateway {
        let uids = test_uids().expect("the gateway tests run as root");
        let dir = temp_dir("http-gw-");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log_path = dir.path().join("berkut-http.log");
        let log = File::create(&log_path).unwrap();
        let mut cmd = activated(&workspace_bin("berkut-http"), listener.as_raw_fd());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BERKUT_SOCKET", socket)
            .env("BERKUT_HTTP_LOG", "info")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        run_as(&mut cmd, uids[3]);
        let child = cmd.spawn().expect("berkut-http starts");
        drop(listener);
        let gw = Gateway {
            child: Some(child),
            base,
            log_path,
            _dir: dir,
        };
        wait_for("berkut-http to log that it listens", LONG, || {
            gw.log().contains("berkut-http listening").then_some(())
        });
        gw
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- berkut-http log ---\n{}--- end ---", self.log());
        }
    }
}

/// A command that starts `bin` with `fd` as fd 3, `LISTEN_FDS=1` and
/// `LISTEN_PID` its own pid, as systemd does: a shell sets the pid (`$$`)
/// and `exec`s the binary, which keeps it.
pub fn activated(bin: &Path, fd: i32) -> Command {
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec \"$0\" \"$@\"")
        .arg(bin);
    // SAFETY: the hook makes only async-signal-safe system calls.
    unsafe {
        sh.pre_exec(move || {
            use nix::libc::{dup2, fcntl, FD_CLOEXEC, F_GETFD, F_SETFD};
            if fd == 3 {
                let flags = fcntl(3, F_GETFD);
                if flags < 0 || fcntl(3, F_SETFD, flags & !FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    sh
}

/// A small cluster, a daemon for it and a gateway in front; `None`
/// (skipped) without root.
pub fn setup() -> Option<(PgCluster, Daemon, Gateway)> {
    test_uids()?;
    let pg = small_cluster();
    let daemon = start_daemon(daemon_for(&pg));
    let gw = Gateway::start(&daemon.socket, &[]);
    Some((pg, daemon, gw))
}

/// An HTTP client for the application's side.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// A request made for `user` with `role`.
pub fn req(
    method: reqwest::Method,
    url: String,
    user: &str,
    role: &str,
) -> reqwest::RequestBuilder {
    http()
        .request(method, url)
        .header("X-Berkut-User", user)
        .header("X-Berkut-Role", role)
}

pub fn admin(method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    req(method, url, "alice", "admin")
}

/// Asserts that `response` is a problem document with `status` and
/// `code`, and returns the document.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    let got = response.status().as_u16();
    let ctype = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    assert_eq!(ctype.as_deref(), Some("application/problem+json"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["code"], code, "{doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert!(doc["type"].as_str().unwrap().ends_with(code), "{doc}");
    berkut_testkit::assert_safe(doc["detail"].as_str().unwrap());
    doc
}

/// Asserts that `response` is `202 Accepted` and returns its `Location`.
pub fn accepted(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 202);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Reads a Server-Sent Events response to its end: asserts `200`, the
/// event-stream type and that the last event is `end`; returns every
/// event and the end's data.
pub async fn stream_to_end(
    response: reqwest::Response,
) -> (Vec<(String, serde_json::Value)>, serde_json::Value) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(&response.text().await.unwrap());
    let (last, end) = events.last().expect("at least the end event").clone();
    assert_eq!(last, "end", "{events:?}");
    (events, end)
}

/// The events of a Server-Sent Events body, as (event, data) pairs.
pub fn sse_events(body: &str) -> Vec<(String, serde_json::Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            Some((event?, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}
