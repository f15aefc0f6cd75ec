//! Downloads and imports through the gateway: the bytes of a download are
//! the archive the record describes (length, sha256, `ETag`), a range
//! resumes it, and they import into a second daemon through a second
//! gateway; a client that goes away in the middle of either cancels the
//! socket operation and leaves nothing behind; the upload limit is 413.

use berkut_proto::archive::MasterKey;
use berkut_proto::manifest::Scope;
use futures::StreamExt;
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// A cluster whose database is big enough (about 20 MB of archive) that a
/// download cannot sit whole in the socket and TCP buffers.
fn big_cluster() -> PgCluster {
    let pg = small_cluster();
    pg.psql(
        "app",
        "CREATE TABLE big AS SELECT g, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 500000) g",
    )
    .unwrap();
    pg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_is_the_recorded_archive_and_imports_into_a_second_daemon() {
    let Some((_pg, daemon, gw)) = setup() else {
        return;
    };
    let backup = backup_now(&mut daemon.client().await, Scope::Database).await;
    let url = gw.url(&format!("/api/backups/{}/download", backup.id));
    let sha = backup.sha256.clone().unwrap();
    let size = backup.size_bytes.unwrap();

    let got = req(Method::GET, url.clone(), "olga", "operator")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let h = got.headers().clone();
    assert_eq!(h["content-length"], size.to_string().as_str());
    assert_eq!(h["etag"], format!("\"{sha}\"").as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"{}.bscc\"", backup.id).as_str()
    );
    let bytes = got.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha);
    assert_eq!(
        &bytes[..],
        &std::fs::read(daemon.archive_path(&backup.id.to_string())).unwrap()[..]
    );

    // Resuming: the rest from an offset, and a closed range, with If-Range.
    let rest = req(Method::GET, url.clone(), "olga", "operator")
        .header("Range", "bytes=1000-")
        .header("If-Range", format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    assert_eq!(
        rest.headers()["content-range"],
        format!("bytes 1000-{}/{size}", size - 1).as_str()
    );
    assert_eq!(rest.bytes().await.unwrap(), bytes.slice(1000..));
    let mid = req(Method::GET, url.clone(), "olga", "operator")
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(mid.status(), 206);
    assert_eq!(mid.bytes().await.unwrap(), bytes.slice(10..20));
    let outside = req(Method::GET, url.clone(), "olga", "operator")
        .header("Range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        outside.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
    problem(outside, 416, "invalid").await;
    // A viewer may not download.
    let viewer = req(Method::GET, url, "v", "viewer").send().await.unwrap();
    problem(viewer, 403, "forbidden").await;

    // A second daemon with the same key takes it in through its gateway.
    let pg2 = small_cluster();
    let key = MasterKey::parse(&daemon.key.to_base64()).unwrap();
    let daemon2 = start_daemon(daemon_for(&pg2).key(key));
    let gw2 = Gateway::start(&daemon2.socket, &[]);
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
        .chunks(7000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let imported = admin(Method::POST, gw2.url("/api/backups/import"))
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 201);
    assert_eq!(
        imported.headers()["location"],
        format!("/api/backups/{}", backup.id).as_str()
    );
    let record: serde_json::Value = imported.json().await.unwrap();
    assert_eq!(record["origin"], "imported");
    assert_eq!(record["sha256"], sha.as_str());
    // The same archive again is a conflict; an operator may not import.
    let twice = admin(Method::POST, gw2.url("/api/backups/import"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    problem(twice, 409, "conflict").await;
    let operator = req(
        Method::POST,
        gw2.url("/api/backups/import"),
        "olga",
        "operator",
    )
    .body(bytes.clone())
    .send()
    .await
    .unwrap();
    problem(operator, 403, "forbidden").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_download_ends_the_download_and_its_lease() {
    if test_uids().is_none() {
        return;
    }
    let pg = big_cluster();
    let daemon = start_daemon(daemon_for(&pg));
    let gw = Gateway::start(&daemon.socket, &[]);
    let backup = backup_now(&mut daemon.client().await, Scope::Database).await;
    assert!(backup.size_bytes.unwrap() > 16 << 20, "{backup:?}");
    let path = format!("/api/backups/{}", backup.id);

    let response = admin(Method::GET, gw.url(&format!("{path}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    // While the client holds the transfer, the archive is leased.
    let busy = admin(Method::DELETE, gw.url(&path)).send().await.unwrap();
    problem(busy, 409, "conflict").await;
    drop(body);
    // Gone: the daemon ends the download and gives the lease back.
    wait_for_async("the download's lease to end", LONG, || async {
        let r = admin(Method::DELETE, gw.url(&path)).send().await.unwrap();
        (r.status() == 204).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_leaves_nothing_and_one_over_the_limit_is_413() {
    let Some((_pg, daemon, _gw)) = setup() else {
        return;
    };
    let backup = backup_now(&mut daemon.client().await, Scope::Database).await;
    let archive = std::fs::read(daemon.archive_path(&backup.id.to_string())).unwrap();

    let pg2 = small_cluster();
    let limit = archive.len() as u64 + 10;
    let daemon2 = start_daemon(
        daemon_for(&pg2)
            .key(MasterKey::parse(&daemon.key.to_base64()).unwrap())
            .env("BERKUT_BACKUP_UPLOAD_MAX_BYTES", limit.to_string()),
    );
    let gw2 = Gateway::start(&daemon2.socket, &[]);
    let import = gw2.url("/api/backups/import");

    // Over the daemon's limit: 413 before the body is read.
    let big = admin(Method::POST, import.clone())
        .body(vec![0u8; limit as usize + 1])
        .send()
        .await
        .unwrap();
    problem(big, 413, "too_large").await;
    // No length: 411.
    let chunked = admin(Method::POST, import.clone())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"BSCC")),
        ])))
        .send()
        .await
        .unwrap();
    problem(chunked, 411, "length_required").await;

    // Half the archive, then the client breaks off.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<bytes::Bytes, std::io::Error>>();
    let half = archive.len() / 2;
    tx.unbounded_send(Ok(bytes::Bytes::copy_from_slice(&archive[..half])))
        .unwrap();
    let sending = tokio::spawn(
        admin(Method::POST, import.clone())
            .header("content-length", archive.len())
            .body(reqwest::Body::wrap_stream(rx))
            .send(),
    );
    let partials = || {
        daemon2
            .backup_files()
            .into_iter()
            .filter(|f| f.ends_with(".partial"))
            .count()
    };
    wait_for("the import's quarantine file", LONG, || {
        (partials() == 1).then_some(())
    });
    tx.unbounded_send(Err(std::io::Error::other("client gone")))
        .unwrap();
    assert!(sending.await.unwrap().is_err(), "the request was cut off");
    wait_for("the quarantine file to go", LONG, || {
        (partials() == 0).then_some(())
    });
    let listed: serde_json::Value = admin(Method::GET, gw2.url("/api/backups"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 0, "{listed}");
    // And a whole one still goes through.
    let ok = admin(Method::POST, import)
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}
