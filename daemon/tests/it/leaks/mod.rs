//! What the daemon must never give away, however a client provokes it: a
//! corpus of malformed requests (every operation, every field, wrong types,
//! unknown names, bad UTF-8, strings too long, control characters) gets
//! short errors in the protocol's words, never Rust's or serde's; a client's
//! string cannot forge a line of the text log; and debug logging shows the
//! configuration without its database password.

use berkut_proto::wire::input::QUOTE_MAX_CHARS;
use berkut_proto::wire::{ops, Connection, ErrorBody, ErrorCode, Operation, Reply, ServerMessage};
use rmpv::Value;
use tokio::net::UnixStream;

use crate::helpers::*;

mod corpus;

use corpus::{corpus, id_of, map, pack, request, HUGE};

/// Words that belong to the implementation, not the protocol.
const INTERNAL: &[&str] = &[
    "Some(",
    "None",
    "enum",
    "struct",
    "newtype",
    "variant",
    "serde",
    "rmp",
    "ClientMessage",
    "ServerMessage",
    "PlanSpec",
    "OnBehalfOf",
    "Operation",
    "expected one of",
    "/src/",
    ".rs",
    "panicked",
    "u32",
    "u64",
    "unit value",
    "sequence",
    "invalid type",
    "invalid value",
    "Utf8",
    "utf8",
];

/// The longest an error about a malformed request may be: a field's path,
/// a sentence, and at most one quote of the client's text.
const MAX_MESSAGE_CHARS: usize = 3 * QUOTE_MAX_CHARS;

fn check_message(what: &str, message: &str) {
    assert_safe(message);
    for word in INTERNAL {
        assert!(
            !message.contains(word),
            "{what}: the error shows {word:?}: {message}"
        );
    }
    assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS,
        "{what}: an error of {} characters: {}",
        message.chars().count(),
        &message[..message.len().min(400)]
    );
    assert!(
        !message.chars().any(char::is_control),
        "{what}: control characters in {message:?}"
    );
}

/// The daemon's peak resident memory, from the kernel.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_a_short_error_in_the_protocols_words() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut conn = daemon.client().await.into_connection();
    // Warm up, so the peak below measures the corpus and not start-up.
    assert!(matches!(
        send_raw(
            &mut conn,
            &request(1, map(vec![("type", "status".into())]), vec![])
        )
        .await,
        ServerMessage::Reply { .. }
    ));
    let before = peak_rss_kib(daemon.pid().unwrap());
    let corpus = corpus();
    assert!(corpus.len() > 300, "{}", corpus.len());
    let mut messages = Vec::new();
    for (what, body) in &corpus {
        match send_raw(&mut conn, body).await {
            ServerMessage::Error { id, error } => {
                assert_eq!(error.code, ErrorCode::Invalid, "{what}: {error:?}");
                assert_eq!(id, id_of(body), "{what}: {error:?}");
                check_message(what, &error.message);
                messages.push((what.clone(), error.message));
            }
            other => panic!("{what}: expected an error, got {other:?}"),
        }
    }
    // Errors name the field and what was wrong with it.
    let said = |what: &str| {
        &messages
            .iter()
            .find(|(w, _)| w == what)
            .unwrap_or_else(|| panic!("no case {what}"))
            .1
    };
    for (what, expected) in [
        ("restore_start.dry_run: an integer", "op.dry_run: expected true or false, found the integer 1"),
        ("backup_create.scope: an unknown name", "op.scope: unknown value \"everything\" (expected full, database or schema)"),
        ("an unknown operation", "op.type: unknown operation \"frobnicate\""),
        ("backup_create.label: too long", "op.label: at most 200 characters are allowed, found 201"),
        ("backup_create.label: a newline", "op.label: control characters are not allowed, found U+000A"),
        ("plan.timezone: 60 kB", "op.plan.timezone: a string of 60000 bytes"),
        ("status.pad: 60 kB", "op.pad: a string of 60000 bytes"),
        ("plan.timezone: too long", "op.plan.timezone: at most 64 characters are allowed"),
        ("plan.at: bad UTF-8", "op.plan.at: expected a string, found a string that is not valid UTF-8"),
        ("on_behalf_of: a role as a number", "on_behalf_of.role: expected a string, found the integer 2"),
        ("on_behalf_of: a user with a newline", "on_behalf_of.user: control characters are not allowed"),
        ("backup_list.limit: too big", "op.limit: expected a whole number from 0 to 4294967295, found the integer 1099511627776"),
        ("backup_show.id: the wrong shape", "not a valid backup id"),
        ("restore_start as a string", "op: expected a map with a \"type\" field, found the string \"restore_start\""),
    ] {
        assert!(said(what).contains(expected), "{what}: {}", said(what));
    }
    // Strings of 60 kB of control characters cost no more than their frame:
    // nothing copies, escapes or repeats them.
    let after = peak_rss_kib(daemon.pid().unwrap());
    assert!(
        after < before + 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    // The connection survived all of it, and nothing was changed.
    let mut client = daemon.client().await;
    assert!(list(client.call(Operation::list_first_page()).await).is_empty());
    assert!(matches!(
        client.call(Operation::PlanShow(ops::PlanShow {})).await,
        Ok(Reply::Plan { plan }) if !plan.enabled
    ));
}

/// Sends a hello and returns the daemon's error, if it answered with one.
async fn hello(daemon: &berkut_testkit::Daemon, client: Value) -> Option<ErrorBody> {
    let mut conn = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    let body = pack(&map(vec![
        ("type", "hello".into()),
        ("protocol_version", 1.into()),
        ("client", client),
    ]));
    match send_raw(&mut conn, &body).await {
        ServerMessage::Error { error, .. } => Some(error),
        ServerMessage::Welcome { .. } => None,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_name_cannot_forge_a_log_line() {
    let pg = small_cluster();
    let mut daemon = daemon_for(&pg).start();
    let forged = "2026-12-02T10:00:00.000000Z  INFO berkutd: forged";
    for name in [
        format!("berkutctl\n{forged}"),
        format!("berkutctl\r\n{forged}"),
        format!("berkutctl\u{1b}[1A\u{1b}[2K{forged}"),
    ] {
        let error = hello(&daemon, name.into()).await.expect("refused");
        assert_eq!(error.code, ErrorCode::Invalid);
        check_message("hello", &error.message);
        assert!(
            error.message.contains("client: control characters"),
            "{error:?}"
        );
    }
    for (what, client) in [
        ("a name too long", Value::from("c".repeat(201))),
        ("a name that is a number", Value::from(7)),
    ] {
        let error = hello(&daemon, client).await.expect("refused");
        assert_eq!(error.code, ErrorCode::Invalid, "{what}");
        check_message(what, &error.message);
    }
    // A name of 4 MB: a hello frame that large is refused on its length
    // alone (MAX_HELLO_FRAME_LEN), and the daemon may close before it has
    // read what was sent.
    let mut conn = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    let body = pack(&map(vec![
        ("type", "hello".into()),
        ("protocol_version", 1.into()),
        ("client", Value::from("\n".repeat(HUGE))),
    ]));
    let _ = conn.write_frame(body).await;
    match conn.read_message::<ServerMessage>().await {
        Ok(Some(ServerMessage::Error { error, .. })) => {
            assert_eq!(error.code, ErrorCode::TooLarge, "{error:?}");
            check_message("a name of 4 MB", &error.message);
        }
        other => panic!("a hello of 4 MB is not refused: {other:?}"),
    }
    // A name within the limits is welcome and logged as it is.
    assert!(hello(&daemon, "berkutctl 0.1.0 (ünïcode)".into())
        .await
        .is_none());
    berkut_testkit::wait_for("the client's name in the log", LONG, || {
        daemon
            .log()
            .contains("berkutctl 0.1.0 (ünïcode)")
            .then_some(())
    });
    assert!(daemon.stop().success());
    let log = daemon.log();
    for line in log.lines() {
        assert!(
            !line.starts_with(forged) && !line.contains('\u{1b}'),
            "a forged line in the log: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logging_shows_the_configuration_but_not_the_database_password() {
    let pg = small_cluster();
    // A keyword string with spaces around `=`, as libpq allows: the old
    // redaction looked only for `password=`.
    let url = format!(
        "host={} port={} user=postgres password = Hunter2InTheUrl dbname=app",
        pg.socket_dir().display(),
        pg.port()
    );
    let mut daemon = berkut_testkit::DaemonBuilder::new(url)
        .env(
            "BERKUT_DRILL_DATABASE_URL",
            format!("{}&password=Swordfish9", pg.url("app")),
        )
        .env("BERKUT_LOG", "debug")
        .start();
    let mut client = daemon.client().await;
    assert!(matches!(
        client.call(Operation::Status(ops::Status {})).await,
        Ok(Reply::Status { .. })
    ));
    drop(client);
    assert!(daemon.stop().success());
    let log = daemon.log();
    assert!(log.contains("configuration loaded"), "{log}");
    assert!(log.contains("password=***"), "{log}");
    for setting in [
        "access:",
        "audit_max_bytes:",
        "socket_group:",
        "drill_database_url:",
    ] {
        assert!(
            log.contains(setting),
            "the configuration's {setting} is not shown: {log}"
        );
    }
    for secret in ["Hunter2InTheUrl", "Swordfish9"] {
        assert!(!log.contains(secret), "the log shows {secret}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restore_explains_itself_without_internals() {
    use berkut_proto::manifest::Scope;
    use berkut_proto::wire::RestoreStatus;

    let pg = small_cluster();
    // A pg_restore that restores, then loses rows: the smoke checks must
    // catch it and say so in words.
    let bin = berkut_testkit::temp_dir("fake-");
    let real = berkut_testkit::pg_bin_dir();
    let lossy = berkut_testkit::fake_tool(
        bin.path(),
        "pg_restore",
        &format!(
            "case \"$*\" in *--list*) exec '{restore}' \"$@\" ;; esac\n\
             '{restore}' \"$@\" || exit $?\n\
             for a in \"$@\"; do case \"$a\" in --dbname=*) db=\"${{a#--dbname=}}\" ;; esac; done\n\
             exec '{psql}' -X -q -v ON_ERROR_STOP=1 -d \"$db\" -c 'DELETE FROM t WHERE id > 400' >/dev/null",
            restore = real.join("pg_restore").display(),
            psql = real.join("psql").display(),
        ),
    );
    let daemon = daemon_for(&pg).pg_restore(&lossy).start();
    let mut client = daemon.client().await;
    let backup = backup_now(&mut client, Scope::Database).await;
    let record = restored(client.call(restore_op(&backup.id, true, true)).await);
    assert_eq!(record.status, RestoreStatus::Failed, "{record:?}");
    let reason = record.failure.clone().expect("a reason").reason;
    assert!(
        reason.contains("\"public\".\"t\": expected 500 rows, found 400 rows"),
        "{reason}"
    );
    check_message("the failure's reason", &reason);
    let evidence = match client
        .call(Operation::RestoreEvidence(ops::RestoreEvidence {
            restore_id: record.restore_id.clone(),
        }))
        .await
    {
        Ok(Reply::Evidence { evidence }) => evidence,
        other => panic!("{other:?}"),
    };
    let text = serde_json::to_string_pretty(&evidence).unwrap();
    assert!(text.contains("expected 500 rows, found 400 rows"), "{text}");
    for word in INTERNAL {
        assert!(!text.contains(word), "the evidence shows {word:?}: {text}");
    }
}
