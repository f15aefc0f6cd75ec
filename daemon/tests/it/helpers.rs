//! The test kit's helpers, under the name every module of this binary
//! imports (`use crate::helpers::*`). They live in `berkut-testkit`
//! (`clusters`, `client`, `archives`, `ctl`, `wait`), shared with
//! berkutctl's tests. This binary's own: finding berkutctl, running it as a
//! test user against a daemon with grants for them, and hand-made frames.

pub use berkut_testkit::{
    assert_no_partials, assert_safe, backup, backup_now, backup_with_files_now, create_op,
    daemon_for, daemon_with_gated_restores, databases, evidence, import, list, plan, read_parts,
    reseal, restore_into, restore_op, restore_outcome, restore_status, restored, rich_cluster,
    server_error, small_cluster, spec, status, step_log, step_states, test_uids, tmp_dir_is_empty,
    wait_for_status, wait_for_step, Run, LONG,
};

use berkut_proto::wire::{Connection, ServerMessage};
use berkut_testkit::{run_as, run_ctl, run_ctl_with, temp_dir, workspace_bin, Daemon, PgCluster};
use tokio::net::UnixStream;

/// Runs the workspace's berkutctl (as root, the daemon's own admin)
/// against `daemon`.
pub fn ctl(daemon: &Daemon, args: &[&str]) -> Run {
    run_ctl(&workspace_bin("berkutctl"), &daemon.socket, args)
}

/// Runs the workspace's berkutctl as `uid` (a test user) against `daemon`.
pub fn as_user(daemon: &Daemon, uid: u32, args: &[&str]) -> Run {
    run_ctl_with(&workspace_bin("berkutctl"), &daemon.socket, args, |cmd| {
        run_as(cmd, uid);
    })
}

/// A daemon whose socket the test users can reach, with grants for them.
pub fn daemon_with_grants(pg: &PgCluster) -> Daemon {
    let dir = temp_dir("grants-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(
        &config,
        r#"
[[access]]
user = "berkut-t-viewer"
role = "viewer"

[[access]]
user = "berkut-t-operator"
role = "operator"

[[access]]
user = "berkut-t-admin"
role = "admin"

[[access]]
user = "berkut-t-app"
role = "app"
"#,
    )
    .unwrap();
    let daemon = daemon_for(pg)
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    std::mem::forget(dir);
    // Open the file-mode fence wide so that only the daemon's check stands.
    daemon.open_socket_to_all();
    daemon
}

/// A connection read and written frame by frame, below the client.
pub type Conn = Connection<UnixStream>;

/// A request as a hand-made MessagePack map.
pub fn raw_request(id: u64, op: &str, fields: Vec<(&str, rmpv::Value)>) -> Vec<u8> {
    let mut op_map = vec![(rmpv::Value::from("type"), rmpv::Value::from(op))];
    op_map.extend(fields.into_iter().map(|(k, v)| (rmpv::Value::from(k), v)));
    let msg = rmpv::Value::Map(vec![
        ("type".into(), "request".into()),
        ("id".into(), id.into()),
        ("op".into(), rmpv::Value::Map(op_map)),
    ]);
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &msg).unwrap();
    out
}

/// Sends one frame body and reads one message back.
pub async fn send_raw(conn: &mut Conn, body: &[u8]) -> ServerMessage {
    conn.write_frame(body.to_vec()).await.unwrap();
    conn.read_message::<ServerMessage>()
        .await
        .unwrap()
        .expect("an answer")
}

/// Ages every backup in a stopped daemon's catalogue by `days`, as if they
/// had been taken that long ago, and lets `edit` change each entry (JSON,
/// as the catalogue stores it) before it is written back.
pub fn age_catalogue(daemon: &Daemon, days: i64, mut edit: impl FnMut(&mut serde_json::Value)) {
    use time::format_description::well_known::Rfc3339;
    let path = daemon.state_dir.join("catalogue.json");
    let mut cat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for entry in cat["backups"].as_array_mut().unwrap() {
        for field in ["created_at", "started_at", "finished_at"] {
            let t = time::OffsetDateTime::parse(entry["state"][field].as_str().unwrap(), &Rfc3339)
                .unwrap();
            entry["state"][field] = (t - time::Duration::days(days))
                .format(&Rfc3339)
                .unwrap()
                .into();
        }
        edit(entry);
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&cat).unwrap()).unwrap();
}

/// Announces on `conn` a frame one byte over a request's limit, sends none
/// of it, and returns the connection-level error that must come (messages
/// of requests already running may come first). Fails if the daemon waits
/// for the body instead.
pub async fn large_frame_refusal(conn: Conn) -> berkut_proto::wire::ErrorBody {
    use berkut_proto::wire::MAX_REQUEST_FRAME_LEN;
    use tokio::io::AsyncWriteExt;
    let mut stream = conn.into_inner();
    stream
        .write_all(&(MAX_REQUEST_FRAME_LEN as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    let mut conn = Connection::new(stream);
    tokio::time::timeout(LONG, async {
        loop {
            match conn.read_message::<ServerMessage>().await.unwrap() {
                Some(ServerMessage::Error { id: None, error }) => break error,
                Some(_) => continue,
                None => panic!("closed without a word"),
            }
        }
    })
    .await
    .expect("the daemon waited for the frame's body")
}
