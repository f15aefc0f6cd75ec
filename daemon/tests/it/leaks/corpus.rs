//! The corpus of malformed requests: every operation with every field set
//! to values it never accepts (wrong types, unknown names, bad UTF-8,
//! strings too long, control characters, 60 kB strings), the plan's fields,
//! `on_behalf_of`, and messages that are no request at all.

use berkut_proto::wire::input::TEXT_LIMITS;
use rmpv::Value;

pub fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

pub fn pack(v: &Value) -> Vec<u8> {
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
pub fn request(id: u64, op: Value, extra: Vec<(&str, Value)>) -> Vec<u8> {
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
pub fn huge(n: usize) -> Value {
    "\u{1}".repeat(n).into()
}

/// Far over any frame a hello may take (`MAX_HELLO_FRAME_LEN`).
pub const HUGE: usize = 4_000_000;

/// The longest string a request can carry: just under its frame's limit
/// (`MAX_REQUEST_FRAME_LEN`), with room for the rest of the request. A
/// larger request is refused on its length before it is read (the
/// protocol tests).
pub const LONGEST: usize = 60_000;

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
            ("60 kB", huge(LONGEST)),
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
pub fn corpus() -> Vec<(String, Vec<u8>)> {
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
    // Strings of 60 kB, where text is expected and where it is not read.
    for (name, field) in [
        ("backup_create", "label"),
        ("backup_show", "id"),
        ("status", "pad"),
    ] {
        let op = map(vec![("type", name.into()), (field, huge(LONGEST))]);
        cases.push((
            format!("{name}.{field}: 60 kB"),
            request(next(), op, vec![]),
        ));
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
pub fn id_of(body: &[u8]) -> Option<u64> {
    let value = rmpv::decode::read_value(&mut &body[..]).ok()?;
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some("id"))
        .and_then(|(_, v)| v.as_u64())
}
