//! Hook delivery: the sink's program run with the event's JSON on its
//! stdin and the minimal environment, killed at the sink's timeout
//! (`tools::run_hook`, since only `tools.rs` spawns processes). A hook runs
//! once per event: retrying is the hook's own choice.

use std::path::Path;
use std::time::Duration;

/// Runs the hook once. Ok when it exits 0.
pub async fn run(command: &Path, body: &[u8], timeout: Duration) -> Result<String, String> {
    match crate::tools::run_hook(command, body, timeout).await {
        Ok(status) if status.success() => Ok("exited 0".to_owned()),
        Ok(status) => Err(format!(
            "the hook failed ({})",
            crate::tools::describe_status(status)
        )),
        Err(e) => Err(format!("the hook {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn hook(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("hook.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn the_hook_reads_the_event_with_a_minimal_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(
            dir.path(),
            &format!("cat > {0}.stdin; env > {0}.env", out.display()),
        );
        let r = run(&h, b"{\"type\":\"test\"}", Duration::from_secs(10)).await;
        assert_eq!(r, Ok("exited 0".to_owned()));
        let stdin = std::fs::read_to_string(dir.path().join("out.stdin")).unwrap();
        assert_eq!(stdin, "{\"type\":\"test\"}");
        let env = std::fs::read_to_string(dir.path().join("out.env")).unwrap();
        for line in env.lines() {
            let name = line.split('=').next().unwrap();
            assert!(
                matches!(
                    name,
                    "PATH" | "LANG" | "LANGUAGE" | "TZ" | "PWD" | "SHLVL" | "_"
                ) || name.starts_with("LC_"),
                "{name} reaches the hook"
            );
        }
        let failing = hook(dir.path(), "exit 3");
        let e = run(&failing, b"{}", Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(e.contains("exit status 3"), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_hook_and_its_children_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let h = hook(
            dir.path(),
            &format!("sleep 600 & echo $$ $! > {}; wait", pids.display()),
        );
        let started = std::time::Instant::now();
        let e = run(&h, b"{}", Duration::from_secs(1)).await.unwrap_err();
        assert!(e.contains("killed at its timeout of 1 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.split_whitespace() {
            let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
            // Killed, and reaped (the shell by us, the sleep by init).
            berkut_testkit::wait_for(
                &format!("process {pid} to end"),
                Duration::from_secs(10),
                || {
                    let state = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
                    (state.is_empty() || state.contains(") Z ")).then_some(())
                },
            );
        }
    }
}
