//! What the daemon must never give away, however a client provokes it: a
//! corpus of malformed requests (every operation, every field, wrong types,
//! unknown names, bad UTF-8, strings too long, control characters) gets
//! short errors in the protocol's words, never Rust's or serde's; a client's
//! string cannot forge a line of the text log; and debug logging shows the
//! configuration without its database password.

use berkut_proto::wire::input::{QUOTE_MAX_CHARS, TEXT_LIMITS};
use berkut_proto::wire::{Connection, ErrorBody, ErrorCode, Operation, Reply, ServerMessage};
use rmpv::Value;
use tokio::net::UnixStream;

use crate::helpers::*;

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

fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

fn pack(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    let marker = NOT_UTF8.as_bytes();
    let mut at = 0;
    while let Some(i) = out[at..].windows(marker.len()).position(|w| w == marker) {
        out[at + i] = 0xff;
        out[at + i + 1] = 0xfe;
        at += i + marker.len();
    }
    out
}

/// Stands for a string whose bytes are not UTF-8: `pack` turns its first
/// two bytes into 0xff 0xfe.
const NOT_UTF8: &str = "@@not-utf-8@@";

fn not_utf8() -> Value {
    NOT_UTF8.into()
}

const BACKUP_ID: &str = "20260102T030405Z-00abcdef";
const RESTORE_ID: &str = "r-20260102T030405Z-00abcdef";

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    /// Free text with a limit (`label`).
    Text(usize),
    BackupId,
    RestoreId,
    Bool,
    U32,
    U64,
    /// A name from a list (`scope`).
    Name,
    Plan,
}

/// Every operation with its fields and what each holds.
fn operations() -> Vec<(&'static str, Vec<(&'static str, Ty)>)> {
    use Ty::*;
    vec![
        ("status", vec![]),
        (
            "backup_create",
            vec![
                ("label", Text(200)),
                ("scope", Name),
                ("include_files", Bool),
                ("wait", Bool),
            ],
        ),
        ("backup_list", vec![("offset", U64), ("limit", U32)]),
        ("backup_show", vec![("id", BackupId)]),
        ("backup_delete", vec![("id", BackupId)]),
        ("job_attach", vec![("id", BackupId)]),
        ("backup_pin", vec![("id", BackupId)]),
        ("backup_unpin", vec![("id", BackupId)]),
        ("plan_show", vec![]),
        ("plan_set", vec![("plan", Plan)]),
        ("plan_enable", vec![]),
        ("plan_disable", vec![]),
        (
            "restore_start",
            vec![
                ("backup_id", BackupId),
                ("dry_run", Bool),
                ("with_globals", Bool),
                ("wait", Bool),
            ],
        ),
        (
            "restore_status",
            vec![("restore_id", RestoreId), ("wait", Bool)],
        ),
        ("restore_evidence", vec![("restore_id", RestoreId)]),
        ("restore_rollback", vec![("restore_id", RestoreId)]),
        ("restore_cleanup", vec![("restore_id", RestoreId)]),
        ("maintenance_status", vec![]),
        ("maintenance_watch", vec![]),
        ("maintenance_clear", vec![]),
        ("backup_download", vec![("id", BackupId)]),
        ("backup_import", vec![("size", U64)]),
        ("audit_tail", vec![("lines", U32)]),
        ("audit_verify", vec![]),
        ("store_rewrap", vec![]),
    ]
}

/// Values that a field of this type never accepts.
fn bad_values(ty: Ty) -> Vec<(&'static str, Value)> {
    let mut common = vec![
        ("an array", Value::Array(vec![1.into()])),
        ("a map", map(vec![("k", 1.into())])),
        ("an extension", Value::Ext(7, vec![1, 2])),
        ("a float", Value::F64(1.5)),
        ("a string over 1 KiB", "\u{1}".repeat(2000).into()),
    ];
    let strings = vec![
        ("an integer", Value::from(42)),
        ("a boolean", Value::from(true)),
        ("bad UTF-8", not_utf8()),
    ];
    let numbers = vec![
        ("a string", Value::from("seven")),
        ("a boolean", Value::from(false)),
        ("a negative number", Value::from(-1)),
        ("bad UTF-8", not_utf8()),
    ];
    let extra: Vec<(&'static str, Value)> = match ty {
        Ty::Text(max) => {
            let mut v = strings;
            v.push(("too long", "x".repeat(max + 1).into()));
            v.push(("a newline", "a\n2026-01-01 INFO forged".into()));
            v.push(("an escape", "a\u{1b}[2Jb".into()));
            v.push(("nil", Value::Nil));
            v
        }
        Ty::BackupId | Ty::RestoreId => {
            let mut v = strings;
            v.push(("the wrong shape", "../../etc/passwd".into()));
            v.push(("nil", Value::Nil));
            v.push(("binary", Value::Binary(b"20260102T030405Z".to_vec())));
            v
        }
        Ty::Bool => vec![
            ("a string", Value::from("yes")),
            ("an integer", Value::from(1)),
            ("nil", Value::Nil),
            ("binary", Value::Binary(vec![1])),
            ("bad UTF-8", not_utf8()),
        ],
        Ty::U32 => {
            let mut v = numbers;
            v.push(("too big", Value::from(1u64 << 40)));
            v
        }
        Ty::U64 => {
            let mut v = numbers;
            v.push(("nil", Value::Nil));
            v
        }
        Ty::Name => {
            let mut v = strings;
            v.push(("an unknown name", "everything".into()));
            v.push(("nil", Value::Nil));
            v
        }
        Ty::Plan => vec![
            ("an integer", Value::from(5)),
            ("nil", Value::Nil),
            ("an empty array", Value::Array(vec![])),
        ],
    };
    common.extend(extra);
    common
}

/// A request map: `type`, `id`, `op` and any extra top-level fields.
fn request(id: u64, op: Value, extra: Vec<(&str, Value)>) -> Vec<u8> {
    let mut fields = vec![("type", "request".into()), ("id", id.into()), ("op", op)];
    fields.extend(extra);
    pack(&map(fields))
}

/// The operation with `field` set to `value` and its other required fields
/// valid, so the error can only be about `field`.
fn op_with(name: &str, fields: &[(&str, Ty)], field: &str, value: Value) -> Value {
    let mut entries = vec![(Value::from("type"), Value::from(name))];
    for (f, ty) in fields {
        let good = match ty {
            _ if *f == field => continue,
            Ty::BackupId => BACKUP_ID.into(),
            Ty::RestoreId => RESTORE_ID.into(),
            Ty::Bool if *f == "dry_run" => true.into(),
            _ => continue,
        };
        entries.push(((*f).into(), good));
    }
    entries.push((field.into(), value));
    Value::Map(entries)
}

/// A string of `n` bytes that are all control characters: serde's messages
/// would escape each as six.
fn huge(n: usize) -> Value {
    "\u{1}".repeat(n).into()
}

/// Just under the frame limit, with room for the rest of the request.
const HUGE: usize = 4_000_000;

fn plan(fields: Vec<(&str, Value)>) -> Value {
    let mut all = vec![("preset", Value::from("daily"))];
    if !fields.iter().any(|(f, _)| *f == "at" || *f == "preset") {
        all.push(("at", "02:30".into()));
    }
    all.extend(fields);
    map(all)
}

/// Plan fields, each wrong in every way.
fn plan_cases() -> Vec<(String, Value)> {
    let mut cases = Vec::new();
    for limit in TEXT_LIMITS
        .iter()
        .filter(|l| l.field.starts_with("op.plan."))
    {
        let field = limit.field.trim_start_matches("op.plan.");
        for (what, value) in [
            ("too long", Value::from("x".repeat(limit.max_chars + 1))),
            ("4 MB", huge(HUGE)),
            ("a newline", Value::from("Europe/Berlin\nforged")),
            ("an integer", Value::from(7)),
            ("bad UTF-8", not_utf8()),
        ] {
            cases.push((format!("plan.{field}: {what}"), plan(vec![(field, value)])));
        }
    }
    for (field, value) in [
        ("preset", Value::from("hourly")),
        ("preset", Value::from(3)),
        ("scope", Value::from("everything")),
        ("retention_days", Value::from(-1)),
        ("retention_days", Value::from("30")),
        ("keep_last_successful", Value::from(1u64 << 33)),
        ("include_files", Value::from("no")),
        ("catch_up", Value::Nil),
    ] {
        cases.push((format!("plan.{field}: {value}"), plan(vec![(field, value)])));
    }
    cases.push((
        "plan without a preset".into(),
        map(vec![("at", "02:30".into())]),
    ));
    cases
}

/// Every malformed request of the corpus, with what it is.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut cases = Vec::new();
    let mut id = 1000u64;
    let mut next = || {
        id += 1;
        id
    };
    for (name, fields) in operations() {
        for (field, ty) in &fields {
            for (what, value) in bad_values(*ty) {
                let op = op_with(name, &fields, field, value);
                cases.push((
                    format!("{name}.{field}: {what}"),
                    request(next(), op, vec![]),
                ));
            }
            // A key too long to be read, in place of the field.
            let long_key = "k".repeat(2000);
            let op = op_with(name, &fields, &long_key, 1.into());
            cases.push((
                format!("{name}.{field}: a long key"),
                request(next(), op, vec![]),
            ));
        }
        cases.push((
            format!("{name} as a string"),
            request(next(), Value::from(name), vec![]),
        ));
    }
    // Strings of 4 MB, where text is expected and where it is not read.
    for (name, field) in [
        ("backup_create", "label"),
        ("backup_show", "id"),
        ("status", "pad"),
    ] {
        let op = map(vec![("type", name.into()), (field, huge(HUGE))]);
        cases.push((format!("{name}.{field}: 4 MB"), request(next(), op, vec![])));
    }
    for (what, p) in plan_cases() {
        let op = map(vec![("type", "plan_set".into()), ("plan", p)]);
        cases.push((what, request(next(), op, vec![])));
    }
    let status = || map(vec![("type", "status".into())]);
    for (what, op) in [
        (
            "an unknown operation",
            map(vec![("type", "frobnicate".into())]),
        ),
        (
            "an operation type that is a number",
            map(vec![("type", 3.into())]),
        ),
        (
            "an operation without a type",
            map(vec![("label", "x".into())]),
        ),
        ("an operation that is nil", Value::Nil),
        ("an operation that is binary", Value::Binary(vec![1, 2, 3])),
    ] {
        cases.push((what.to_owned(), request(next(), op, vec![])));
    }
    for (what, who) in [
        (
            "an empty user",
            map(vec![("user", "".into()), ("role", "viewer".into())]),
        ),
        (
            "a user too long",
            map(vec![
                ("user", "u".repeat(201).into()),
                ("role", "viewer".into()),
            ]),
        ),
        (
            "a user with a newline",
            map(vec![
                ("user", "alice\nforged".into()),
                ("role", "viewer".into()),
            ]),
        ),
        (
            "a user not UTF-8",
            map(vec![("user", not_utf8()), ("role", "viewer".into())]),
        ),
        (
            "a role as a number",
            map(vec![("user", "alice".into()), ("role", 2.into())]),
        ),
        (
            "an unknown role",
            map(vec![("user", "alice".into()), ("role", "superuser".into())]),
        ),
        ("a role missing", map(vec![("user", "alice".into())])),
        (
            "on_behalf_of as an array",
            Value::Array(vec!["alice".into()]),
        ),
    ] {
        cases.push((
            format!("on_behalf_of: {what}"),
            request(next(), status(), vec![("on_behalf_of", who)]),
        ));
    }
    for (what, msg) in [
        (
            "an unknown message type",
            map(vec![("type", "gossip".into()), ("id", next().into())]),
        ),
        (
            "a message type that is a number",
            map(vec![("type", 1.into()), ("id", next().into())]),
        ),
        (
            "a request id that is a string",
            map(vec![
                ("type", "request".into()),
                ("id", "one".into()),
                ("op", status()),
            ]),
        ),
        (
            "a request id that is negative",
            map(vec![
                ("type", "request".into()),
                ("id", (-5).into()),
                ("op", status()),
            ]),
        ),
        (
            "a request without an op",
            map(vec![("type", "request".into()), ("id", next().into())]),
        ),
        (
            "data that is a number",
            map(vec![
                ("type", "data".into()),
                ("id", next().into()),
                ("data", 5.into()),
            ]),
        ),
        (
            "data without an id",
            map(vec![
                ("type", "data".into()),
                ("data", Value::Binary(vec![1])),
            ]),
        ),
        (
            "a second hello with a forged name",
            map(vec![
                ("type", "hello".into()),
                ("protocol_version", 1.into()),
                ("client", "x\nforged".into()),
            ]),
        ),
        (
            "a map with a number for a key",
            Value::Map(vec![(1.into(), 2.into())]),
        ),
        ("a bare integer", Value::from(42)),
        ("a bare string", Value::from("request")),
    ] {
        cases.push((what.to_owned(), pack(&msg)));
    }
    cases
}

/// The id of a corpus request, when it has a readable one.
fn id_of(body: &[u8]) -> Option<u64> {
    let value = rmpv::decode::read_value(&mut &body[..]).ok()?;
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some("id"))
        .and_then(|(_, v)| v.as_u64())
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
        crate::protocol::send_raw(
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
        match crate::protocol::send_raw(&mut conn, body).await {
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
        ("plan.timezone: 4 MB", "op.plan.timezone: a string of 4000000 bytes"),
        ("status.pad: 4 MB", "op.pad: a string of 4000000 bytes"),
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
    // Strings of 4 MiB of control characters cost no more than their frame:
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
        client.call(Operation::PlanShow).await,
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
    match crate::protocol::send_raw(&mut conn, &body).await {
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
        ("a name of 4 MB", Value::from("\n".repeat(HUGE))),
    ] {
        let error = hello(&daemon, client).await.expect("refused");
        assert_eq!(error.code, ErrorCode::Invalid, "{what}");
        check_message(what, &error.message);
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
        client.call(Operation::Status).await,
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
    use crate::restore_start::{restore_op, restored};
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
        reason.contains("public.t: 500 rows expected, 400 found"),
        "{reason}"
    );
    check_message("the failure's reason", &reason);
    let evidence = match client
        .call(Operation::RestoreEvidence {
            restore_id: record.restore_id.clone(),
        })
        .await
    {
        Ok(Reply::Evidence { evidence }) => evidence,
        other => panic!("{other:?}"),
    };
    let text = serde_json::to_string_pretty(&evidence).unwrap();
    assert!(text.contains("500 rows expected, 400 found"), "{text}");
    for word in INTERNAL {
        assert!(!text.contains(word), "the evidence shows {word:?}: {text}");
    }
}
