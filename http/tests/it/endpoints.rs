//! Every endpoint onto its socket operation, through the real gateway: the
//! statuses and headers an application relies on (202 and `Location` for
//! what runs on, 204 for a delete, `ETag`/`If-Match` on the plan), the
//! user the application names reaching the daemon's decision (401 without
//! one, a viewer cannot delete), and the request id in the log.

use reqwest::Method;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_created_listed_shown_followed_and_deleted() {
    let Some((_pg, _daemon, gw)) = setup() else {
        return;
    };

    let health = http().get(gw.url("/api/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let created = req(Method::POST, gw.url("/api/backups"), "olga", "operator")
        .json(&serde_json::json!({"label": "from http", "scope": "database"}))
        .send()
        .await
        .unwrap();
    let location = accepted(&created);
    let record: serde_json::Value = created.json().await.unwrap();
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/backups/{id}"));
    assert_eq!(record["label"], "from http");

    // The job's events run to its end.
    let events = req(
        Method::GET,
        gw.url(&format!("/api/backups/jobs/{id}/events")),
        "olga",
        "viewer",
    )
    .send()
    .await
    .unwrap();
    let (events, end) = stream_to_end(events).await;
    assert_eq!(end["status"], "succeeded", "{events:?}");

    let shown = req(Method::GET, gw.url(&location), "v", "viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let shown: serde_json::Value = shown.json().await.unwrap();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["scope"], "database");

    let listed: serde_json::Value =
        req(Method::GET, gw.url("/api/backups?limit=10"), "v", "viewer")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["backups"][0]["id"], id.as_str());

    // A viewer cannot delete: the daemon decides, the gateway says 403.
    let denied = req(Method::DELETE, gw.url(&location), "v", "viewer")
        .send()
        .await
        .unwrap();
    problem(denied, 403, "forbidden").await;
    let deleted = admin(Method::DELETE, gw.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = admin(Method::GET, gw.url(&location)).send().await.unwrap();
    problem(gone, 404, "not_found").await;
    let again = admin(Method::DELETE, gw.url(&location))
        .send()
        .await
        .unwrap();
    problem(again, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_user_is_401_and_the_request_id_is_logged() {
    let Some((_pg, _daemon, gw)) = setup() else {
        return;
    };
    for (user, role) in [(None, None), (Some("alice"), None), (None, Some("admin"))] {
        let mut r = http().get(gw.url("/api/backups"));
        if let Some(u) = user {
            r = r.header("X-Berkut-User", u);
        }
        if let Some(role) = role {
            r = r.header("X-Berkut-Role", role);
        }
        problem(r.send().await.unwrap(), 401, "unauthorized").await;
    }
    let bad_role = req(Method::GET, gw.url("/api/backups"), "alice", "root")
        .send()
        .await
        .unwrap();
    problem(bad_role, 400, "invalid").await;

    let ok = req(Method::GET, gw.url("/api/backups"), "alice", "viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!id.is_empty());
    // An id the proxy sets is kept, and both reach the log.
    let given = req(Method::GET, gw.url("/api/backups"), "alice", "viewer")
        .header("X-Request-Id", "proxy-given-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "proxy-given-42");
    wait_for("the request ids in the log", LONG, || {
        let log = gw.log();
        (log.contains(&id) && log.contains("proxy-given-42")).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_has_an_etag_that_put_must_match() {
    let Some((_pg, _daemon, gw)) = setup() else {
        return;
    };
    let url = gw.url("/api/backups/plan");
    let shown = admin(Method::GET, url.clone()).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    let first_tag = shown.headers()["etag"].to_str().unwrap().to_owned();
    let plan: serde_json::Value = shown.json().await.unwrap();
    assert_eq!(plan["enabled"], false);

    let daily = serde_json::json!({"preset": "daily", "at": "02:00", "timezone": "UTC"});
    // No If-Match: 428, nothing changed.
    let blind = admin(Method::PUT, url.clone())
        .json(&daily)
        .send()
        .await
        .unwrap();
    problem(blind, 428, "precondition_required").await;
    let set = admin(Method::PUT, url.clone())
        .header("If-Match", &first_tag)
        .json(&daily)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let second_tag = set.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(first_tag, second_tag);
    let plan: serde_json::Value = set.json().await.unwrap();
    assert_eq!(
        (plan["enabled"].clone(), plan["at"].clone()),
        (true.into(), "02:00".into())
    );

    // A second administrator who read the plan before: 412, their change lost.
    let weekly = serde_json::json!({"preset": "weekly", "weekday": "sun", "at": "03:00"});
    let stale = admin(Method::PUT, url.clone())
        .header("If-Match", &first_tag)
        .json(&weekly)
        .send()
        .await
        .unwrap();
    problem(stale, 412, "precondition_failed").await;
    let now: serde_json::Value = admin(Method::GET, url.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["preset"], "daily");

    // Disable and enable, each a new tag; If-Match is honoured there too.
    let off = admin(Method::POST, gw.url("/api/backups/plan/disable"))
        .header("If-Match", &second_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    let off_tag = off.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        off.json::<serde_json::Value>().await.unwrap()["enabled"],
        false
    );
    let stale_on = admin(Method::POST, gw.url("/api/backups/plan/enable"))
        .header("If-Match", &second_tag)
        .send()
        .await
        .unwrap();
    problem(stale_on, 412, "precondition_failed").await;
    let on = admin(Method::POST, gw.url("/api/backups/plan/enable"))
        .header("If-Match", &off_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), 200);
    assert_eq!(on.headers()["etag"].to_str().unwrap(), second_tag);

    // An invalid plan is the daemon's `invalid`; a viewer may not set one.
    let bad = admin(Method::PUT, url.clone())
        .header("If-Match", "*")
        .json(&serde_json::json!({"preset": "daily", "at": "25:00"}))
        .send()
        .await
        .unwrap();
    problem(bad, 400, "invalid").await;
    let viewer = req(Method::PUT, url, "v", "viewer")
        .header("If-Match", "*")
        .json(&daily)
        .send()
        .await
        .unwrap();
    problem(viewer, 403, "forbidden").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_is_accepted_followed_and_shown() {
    let Some((_pg, daemon, gw)) = setup() else {
        return;
    };
    let backup = backup_now(
        &mut daemon.client().await,
        berkut_proto::manifest::Scope::Database,
    )
    .await;
    // An operator may not restore for real (the daemon's rule).
    let real = req(
        Method::POST,
        gw.url(&format!("/api/backups/{}/restore", backup.id)),
        "olga",
        "operator",
    )
    .send()
    .await
    .unwrap();
    problem(real, 403, "forbidden").await;

    let started = req(
        Method::POST,
        gw.url(&format!("/api/backups/{}/restore/dry-run", backup.id)),
        "olga",
        "operator",
    )
    .send()
    .await
    .unwrap();
    let location = accepted(&started);
    let record: serde_json::Value = started.json().await.unwrap();
    let rid = record["restore_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/backups/restores/{rid}"));
    assert_eq!(record["dry_run"], true);

    let events = req(
        Method::GET,
        gw.url(&format!("{location}/events")),
        "v",
        "viewer",
    )
    .send()
    .await
    .unwrap();
    let (_, end) = stream_to_end(events).await;
    assert_eq!(end["status"], "succeeded", "{end}");

    let status: serde_json::Value = req(Method::GET, gw.url(&location), "v", "viewer")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["backup_id"], backup.id.to_string());

    // Its evidence, as one tar archive for an auditor: operators only.
    let evidence = gw.url(&format!("{location}/evidence"));
    let export = req(Method::GET, evidence.clone(), "olga", "operator")
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/x-tar");
    let body = export.bytes().await.unwrap();
    let mut archive = tar::Archive::new(&body[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for file in ["DIGEST", "summary.json"] {
        assert!(
            names.iter().any(|n| n == &format!("{rid}/{file}")),
            "{file} not in {names:?}"
        );
    }
    let viewer = req(Method::GET, evidence.clone(), "v", "viewer")
        .send()
        .await
        .unwrap();
    problem(viewer, 403, "forbidden").await;
    // Evidence changed since its DIGEST was written: the status line has
    // gone out, so the body ends in an error instead of its last chunk.
    let summary = daemon
        .state_dir
        .join("restores")
        .join(&rid)
        .join("summary.json");
    let mut text = std::fs::read(&summary).unwrap();
    text.extend_from_slice(b" ");
    std::fs::write(&summary, text).unwrap();
    // The evidence is small: the whole body may be cut off before the
    // status line has gone out, and then the response itself breaks.
    let delivered = match req(Method::GET, evidence, "olga", "operator").send().await {
        Err(_) => None,
        Ok(tampered) => {
            assert_eq!(tampered.status(), 200);
            tampered.bytes().await.ok()
        }
    };
    assert!(delivered.is_none(), "a changed export was delivered whole");

    // An unknown restore is 404, its events too.
    let unknown = req(
        Method::GET,
        gw.url("/api/backups/restores/r-20000101T000000Z-00000000/events"),
        "v",
        "viewer",
    )
    .send()
    .await
    .unwrap();
    problem(unknown, 404, "not_found").await;
    let unknown = req(
        Method::GET,
        gw.url("/api/backups/restores/r-20000101T000000Z-00000000/evidence"),
        "olga",
        "operator",
    )
    .send()
    .await
    .unwrap();
    problem(unknown, 404, "not_found").await;
}
