//! A real restore through the gateway: while it holds maintenance the
//! ordinary endpoints answer 503 with `Retry-After` and the restore's
//! status stays available, and its event stream reports every step to the
//! end. The restore's `pg_restore` waits at a gate, so the test acts in
//! the middle of it without any timing.

use std::collections::BTreeSet;

use berkut_proto::manifest::Scope;
use berkut_testkit::daemon_with_gated_restores;
use reqwest::Method;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_restore_makes_ordinary_endpoints_503_and_streams_every_step() {
    if test_uids().is_none() {
        return;
    }
    let pg = small_cluster();
    let (_bin, gate, builder) = daemon_with_gated_restores(&pg);
    let daemon = start_daemon(builder);
    let gw = Gateway::start(&daemon.socket, &[]);
    let backup = backup_now(&mut daemon.client().await, Scope::Database).await;

    let started = admin(
        Method::POST,
        gw.url(&format!("/api/backups/{}/restore", backup.id)),
    )
    .send()
    .await
    .unwrap();
    let location = accepted(&started);
    let events = tokio::spawn(
        req(
            Method::GET,
            gw.url(&format!("{location}/events")),
            "v",
            "viewer",
        )
        .send(),
    );

    // Maintenance: ordinary endpoints are 503 with Retry-After.
    wait_for_async("maintenance to begin", LONG, || async {
        let r = req(Method::GET, gw.url("/api/backups"), "v", "viewer")
            .send()
            .await
            .unwrap();
        (r.status() == 503).then_some(r)
    })
    .await;
    let list = req(Method::GET, gw.url("/api/backups"), "v", "viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(list.headers()["retry-after"], "30");
    problem(list, 503, "maintenance").await;
    let create = admin(Method::POST, gw.url("/api/backups"))
        .send()
        .await
        .unwrap();
    problem(create, 503, "maintenance").await;
    let download = admin(
        Method::GET,
        gw.url(&format!("/api/backups/{}/download", backup.id)),
    )
    .send()
    .await
    .unwrap();
    problem(download, 503, "maintenance").await;
    // The restore's status is still served.
    let status = req(Method::GET, gw.url(&location), "v", "viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert_eq!(
        status.json::<serde_json::Value>().await.unwrap()["status"],
        "running"
    );

    gate.open_forever();
    let (events, end) = stream_to_end(events.await.unwrap().unwrap()).await;
    assert_eq!(end["status"], "succeeded", "{end}");
    let steps: Vec<(String, String)> = end["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(steps.len() > 3, "{steps:?}");
    assert!(
        steps.iter().all(|(_, s)| s == "done" || s == "skipped"),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|(n, s)| n == "swap" && s == "done"),
        "{steps:?}"
    );
    // Every step that ran was reported by a progress event before the end
    // (running, or already done), and every event carries all steps.
    let mut reported = BTreeSet::new();
    for (name, record) in &events[..events.len() - 1] {
        assert_eq!(name, "progress");
        let listed = record["steps"].as_array().unwrap();
        assert_eq!(listed.len(), steps.len());
        for s in listed {
            if s["state"] == "running" || s["state"] == "done" {
                reported.insert(s["name"].as_str().unwrap().to_owned());
            }
        }
    }
    let ran: BTreeSet<String> = steps
        .iter()
        .filter(|(_, s)| s == "done")
        .map(|(n, _)| n.clone())
        .collect();
    // The last step may finish with the reply itself; all before it were
    // seen as they happened.
    let unseen: Vec<_> = ran.difference(&reported).collect();
    assert!(
        unseen.len() <= 1,
        "steps never reported: {unseen:?} in {events:?}"
    );

    let after = req(Method::GET, gw.url("/api/backups"), "v", "viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
}
