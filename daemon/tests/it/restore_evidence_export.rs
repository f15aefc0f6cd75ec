//! `restore_evidence_export`: a finished restore's evidence directory as
//! one tar archive, streamed in ordered pieces like a download; refused
//! while the restore runs; served to an operator who cannot read the
//! daemon's state directory.

use std::io::Read;

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, ErrorCode, Operation, Reply, RestoreStatus, ServerMessage};
use sha2::{Digest, Sha256};

use crate::helpers::*;

fn export_op(restore_id: &berkut_proto::ids::RestoreId) -> Operation {
    Operation::RestoreEvidenceExport(ops::RestoreEvidenceExport {
        restore_id: restore_id.clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_streams_as_a_tar_once_the_restore_has_ended() {
    let pg = small_cluster();
    let (_bin, gate, daemon) = daemon_with_gated_restores(&pg);
    let daemon = daemon.start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let started = restored(client.call(restore_op(&backup.id, true, false)).await);
    let rid = started.restore_id.clone();
    wait_for_step(&daemon, &rid, "pre_data").await;

    // Running: its logs still grow and it has no DIGEST.
    let err = server_error(client.call(export_op(&rid)).await);
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(err.message.contains("has not ended"), "{err:?}");

    gate.open_forever();
    let done = restore_outcome(&mut client, rid.clone()).await;
    assert_eq!(done.status, RestoreStatus::Succeeded, "{done:#?}");

    let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
    let reply = client
        .call_streaming(export_op(&rid), |m| {
            if let ServerMessage::Data { offset, data, .. } = m {
                pieces.push((*offset, data.clone()));
            }
        })
        .await
        .unwrap();
    // In order, without gaps, none larger than a download's.
    let mut tar = Vec::new();
    for (offset, data) in &pieces {
        assert_eq!(*offset, tar.len() as u64);
        assert!(data.len() <= 32 * 1024);
        tar.extend_from_slice(data);
    }
    let Reply::EvidenceExported {
        restore_id,
        size_bytes,
        sha256,
        files,
        digest,
    } = reply
    else {
        panic!("{reply:?}")
    };
    assert_eq!(restore_id, rid);
    assert_eq!(size_bytes, tar.len() as u64);
    assert_eq!(sha256, hex::encode(Sha256::digest(&tar)));
    let digest = digest.expect("a finished restore has a DIGEST");
    assert!(digest.problems.is_empty(), "{digest:?}");

    // The archive holds every file of the evidence directory, byte for
    // byte, under the restore's id; the DIGEST lists all but itself.
    let kept = daemon.state_dir.join("restores").join(rid.as_str());
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut archived = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let rel = path
            .strip_prefix(&format!("{rid}/"))
            .unwrap_or_else(|| panic!("{path} is outside {rid}/"))
            .to_owned();
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        assert_eq!(body, std::fs::read(kept.join(&rel)).unwrap(), "{rel}");
        archived.push(rel);
    }
    assert_eq!(archived.len() as u64, files);
    assert_eq!(digest.matched + 1, files, "{archived:?}");
    for must in ["DIGEST", "summary.json", "logs/00-verify.log"] {
        assert!(archived.iter().any(|a| a == must), "{must}: {archived:?}");
    }

    let unknown: berkut_proto::ids::RestoreId = "r-20000101T000000Z-00000000".parse().unwrap();
    let err = server_error(client.call(export_op(&unknown)).await);
    assert_eq!(err.code, ErrorCode::NotFound, "{err:?}");
}

/// berkutctl needs no access to the state directory: an operator exports
/// through the daemon; a viewer may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_exports_what_they_cannot_read() {
    let Some(uids) = test_uids() else { return };
    let pg = small_cluster();
    let daemon = daemon_with_grants(&pg);
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let done = restored(client.call(restore_op(&backup.id, true, true)).await);
    assert_eq!(done.status, RestoreStatus::Succeeded, "{done:#?}");
    let rid = done.restore_id.to_string();

    let out = berkut_testkit::temp_dir("export-");
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let file = out.path().join("evidence.tar.gz");
    let summary = daemon
        .state_dir
        .join("restores")
        .join(&rid)
        .join("summary.json");
    let (operator, viewer) = (uids[1], uids[0]);
    let reads = as_user_cmd(operator, "cat", &[summary.to_str().unwrap()]);
    assert!(!reads, "the test user can read the state directory");

    let viewed = as_user(
        &daemon,
        viewer,
        &[
            "restore",
            "evidence",
            &rid,
            "--export",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(viewed.code, 6, "{}", viewed.stderr);
    assert!(!file.exists());

    as_user(
        &daemon,
        operator,
        &[
            "restore",
            "evidence",
            &rid,
            "--export",
            file.to_str().unwrap(),
        ],
    )
    .ok();
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), operator);
    let listed = tar_list(&file);
    let names: Vec<&str> = listed.lines().collect();
    assert!(
        names.contains(&format!("{rid}/DIGEST").as_str()),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("{rid}/summary.json").as_str()),
        "{names:?}"
    );
}

/// Runs `program` as `uid`; whether it succeeded.
fn as_user_cmd(uid: u32, program: &str, args: &[&str]) -> bool {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    berkut_testkit::run_as(&mut cmd, uid);
    cmd.output().unwrap().status.success()
}

/// The archive's names as GNU tar lists them.
fn tar_list(file: &std::path::Path) -> String {
    let out = std::process::Command::new("tar")
        .args(["-tzf", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}
