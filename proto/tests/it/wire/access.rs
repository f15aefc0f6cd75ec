//! Access control and audit on the wire: a request's `on_behalf_of` is left
//! out when there is none and read back when there is (nil reads as none);
//! roles are the documented snake_case strings and nothing else decodes as
//! one; `audit_tail` asks for 20 lines unless told otherwise; the `audit`
//! and `audit_verified` replies carry the documented tags and fields; and
//! the document's role table names every operation with a role, and the
//! document shows the request's fields, `OnBehalfOf`, the audit replies and
//! the audit event as encoded. (The Rust client's `set_on_behalf_of` is
//! checked in `client`.)

use std::collections::BTreeSet;

use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::{ops, ClientMessage, OnBehalfOf, Operation, Reply, Role};
use rmpv::Value;

use super::examples::{protocol_doc, section, table_names};
use super::fixtures::{
    alice, all_client_messages, all_operations, audit_operations, audit_replies, users,
    AUDIT_BURST, AUDIT_CHECKPOINT, AUDIT_EVENT, AUDIT_EVENT_FIELDS, ROLES,
};
use super::{field, invalid_id, keys, map, op, pack, request, unpack};

/// A request with `on_behalf_of` made by hand.
fn delegated(id: u64, operation: Value, user: Value) -> Vec<u8> {
    pack(&map(vec![
        ("on_behalf_of", user),
        ("type", "request".into()),
        ("op", operation),
        ("id", id.into()),
    ]))
}

#[test]
fn on_behalf_of_is_left_out_when_there_is_none() {
    let mut plain = 0;
    for msg in all_client_messages() {
        let ClientMessage::Request { on_behalf_of, .. } = &msg else {
            continue;
        };
        let value = unpack(&encode(&msg).unwrap());
        match on_behalf_of {
            None => {
                plain += 1;
                assert_eq!(keys(&value), ["type", "id", "op"], "{msg:?}");
            }
            Some(who) => {
                assert_eq!(keys(&value), ["type", "id", "op", "on_behalf_of"]);
                let obo = field(&value, "on_behalf_of");
                assert_eq!(keys(obo), ["user", "role"]);
                assert_eq!(field(obo, "user").as_str(), Some(who.user.as_str()));
                assert_eq!(field(obo, "role").as_str(), Some(who.role.as_str()));
            }
        }
    }
    assert!(plain > 0);
    // Absent and nil both read as none.
    let absent = request(3.into(), op("status", vec![]));
    let nil = delegated(3, op("status", vec![]), Value::Nil);
    for body in [absent, nil] {
        assert_eq!(
            decode_message::<ClientMessage>(&body).unwrap(),
            ClientMessage::Request {
                id: 3,
                op: Operation::Status(ops::Status {}),
                on_behalf_of: None
            }
        );
    }
}

#[test]
fn on_behalf_of_is_read_back_when_present() {
    let samples = users();
    assert!(samples.iter().any(|u| u.user.is_empty()));
    for who in samples {
        let msg = ClientMessage::Request {
            id: 9,
            op: Operation::BackupDelete(ops::BackupDelete {
                id: "20260102T030405Z-0a0b0c0d".parse().unwrap(),
            }),
            on_behalf_of: Some(who.clone()),
        };
        let bytes = encode(&msg).unwrap();
        assert_eq!(decode_message::<ClientMessage>(&bytes).unwrap(), msg);
        let alone = decode_message::<OnBehalfOf>(&encode(&who).unwrap()).unwrap();
        assert_eq!(alone, who);
    }
    // In any position, with fields a newer application might add.
    let body = delegated(
        u64::MAX,
        op("audit_tail", vec![]),
        map(vec![
            ("role", "operator".into()),
            ("display_name", "Alice A.".into()),
            ("user", "alice".into()),
        ]),
    );
    assert_eq!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            id: u64::MAX,
            op: Operation::AuditTail(ops::AuditTail {
                lines: 20,
                before: None
            }),
            on_behalf_of: Some(alice(Role::Operator)),
        }
    );
}

#[test]
fn roles_are_snake_case_and_nothing_else_is_a_role() {
    for (role, name) in ROLES {
        assert_eq!(encode(&role).unwrap(), pack(&name.into()), "{name}");
        assert_eq!(role.as_str(), name);
        assert_eq!(name.parse::<Role>().unwrap(), role);
        assert_eq!(decode_message::<Role>(&pack(&name.into())).unwrap(), role);
    }
    assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    assert_eq!(Role::Admin.min(Role::Operator), Role::Operator);
    // (An integer is read as the role's index: accepted, but not part of the
    // protocol, section 11.)
    let not_roles: [Value; 9] = [
        "app".into(),
        "Admin".into(),
        "VIEWER".into(),
        "root".into(),
        "".into(),
        " admin".into(),
        1.5.into(),
        Value::Nil,
        Value::Array(vec!["admin".into()]),
    ];
    for value in not_roles {
        assert!(decode_message::<Role>(&pack(&value)).is_err(), "{value}");
        if let Some(s) = value.as_str() {
            assert!(s.parse::<Role>().is_err(), "{s:?}");
        }
        // A request naming such a role is invalid, with its id.
        let body = delegated(
            21,
            op("status", vec![]),
            map(vec![("user", "alice".into()), ("role", value.clone())]),
        );
        assert_eq!(invalid_id::<ClientMessage>(&body), Some(21), "{value}");
    }
    let viewer = || ("role", Value::from("viewer"));
    for (what, user) in [
        ("no role", map(vec![("user", "alice".into())])),
        ("no user", map(vec![viewer()])),
        ("a nil user", map(vec![("user", Value::Nil), viewer()])),
        (
            "a user that is a number",
            map(vec![("user", 7.into()), viewer()]),
        ),
        ("a bare name", "alice".into()),
        ("an empty map", map(vec![])),
        (
            "a list as the role",
            map(vec![
                ("user", "alice".into()),
                ("role", Value::Array(vec![])),
            ]),
        ),
    ] {
        let body = delegated(22, op("status", vec![]), user);
        assert_eq!(invalid_id::<ClientMessage>(&body), Some(22), "{what}");
    }
}

#[test]
fn audit_tail_asks_for_20_lines_unless_told_otherwise() {
    let tail =
        |fields| decode_message::<ClientMessage>(&request(5.into(), op("audit_tail", fields)));
    let lines = |msg: ClientMessage| match msg {
        ClientMessage::Request {
            op: Operation::AuditTail(ops::AuditTail { lines, .. }),
            ..
        } => lines,
        other => panic!("{other:?}"),
    };
    let before = |msg: ClientMessage| match msg {
        ClientMessage::Request {
            op: Operation::AuditTail(ops::AuditTail { before, .. }),
            ..
        } => before,
        other => panic!("{other:?}"),
    };
    // `before` (a line's number, the cursor of paging) is optional: absent
    // or nil is the newest lines.
    assert_eq!(before(tail(vec![]).unwrap()), None);
    assert_eq!(before(tail(vec![("before", Value::Nil)]).unwrap()), None);
    assert_eq!(before(tail(vec![("before", 57.into())]).unwrap()), Some(57));
    assert_eq!(
        before(tail(vec![("before", u64::MAX.into())]).unwrap()),
        Some(u64::MAX)
    );
    for (what, value) in [
        ("negative", Value::from(-1)),
        ("a string", "57".into()),
        ("a float", 1.5.into()),
    ] {
        let body = request(8.into(), op("audit_tail", vec![("before", value)]));
        assert_eq!(
            invalid_id::<ClientMessage>(&body),
            Some(8),
            "before: {what}"
        );
    }
    assert_eq!(lines(tail(vec![]).unwrap()), 20);
    assert_eq!(lines(tail(vec![("lines", 5.into())]).unwrap()), 5);
    assert_eq!(lines(tail(vec![("lines", 0.into())]).unwrap()), 0);
    assert_eq!(
        lines(tail(vec![("lines", u32::MAX.into())]).unwrap()),
        u32::MAX
    );
    for (what, value) in [
        ("nil", Value::Nil),
        ("negative", (-1).into()),
        ("over u32", (u64::from(u32::MAX) + 1).into()),
        ("a string", "20".into()),
    ] {
        let body = request(6.into(), op("audit_tail", vec![("lines", value)]));
        assert_eq!(invalid_id::<ClientMessage>(&body), Some(6), "{what}");
    }
    // `audit_verify` takes no fields and ignores ones it does not know.
    let body = request(7.into(), op("audit_verify", vec![("from", 1.into())]));
    assert!(matches!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            op: Operation::AuditVerify(ops::AuditVerify {}),
            ..
        }
    ));
}

#[test]
fn audit_messages_have_the_documented_tags_and_fields() {
    for operation in audit_operations() {
        let value = unpack(&encode(&operation).unwrap());
        let name = field(&value, "type").as_str().unwrap().to_owned();
        assert_eq!(name, operation.name());
        match operation {
            Operation::AuditTail(ops::AuditTail { lines, before }) => {
                // `before` is sent only when set, so a first page is
                // encoded as it always was.
                match before {
                    None => assert_eq!(keys(&value), ["type", "lines"]),
                    Some(n) => {
                        assert_eq!(keys(&value), ["type", "lines", "before"]);
                        assert_eq!(field(&value, "before").as_u64(), Some(n));
                    }
                }
                assert_eq!(field(&value, "lines").as_u64(), Some(u64::from(lines)));
            }
            Operation::AuditVerify(ops::AuditVerify {}) => assert_eq!(keys(&value), ["type"]),
            other => panic!("unexpected operation {other:?}"),
        }
    }
    for reply in audit_replies() {
        let value = unpack(&encode(&reply).unwrap());
        match &reply {
            Reply::Audit { lines, next } => {
                assert_eq!(field(&value, "type").as_str(), Some("audit"));
                assert_eq!(keys(&value), ["type", "lines", "next"]);
                let got_next = field(&value, "next");
                assert_eq!(got_next.as_u64(), *next);
                assert_eq!(got_next.is_nil(), next.is_none());
                let got = field(&value, "lines").as_array().unwrap();
                assert_eq!(got.len(), lines.len());
                for (got, line) in got.iter().zip(lines) {
                    // Each line travels as a string, exactly as stored.
                    assert_eq!(got.as_str(), Some(line.as_str()));
                }
            }
            Reply::AuditVerified {
                lines,
                first_bad,
                removed,
            } => {
                assert_eq!(field(&value, "type").as_str(), Some("audit_verified"));
                assert_eq!(keys(&value), ["type", "lines", "first_bad", "removed"]);
                assert_eq!(field(&value, "removed").as_u64(), Some(*removed));
                assert_eq!(field(&value, "lines").as_u64(), Some(*lines));
                let bad = field(&value, "first_bad");
                assert_eq!(bad.as_str(), first_bad.as_deref());
                assert_eq!(bad.is_nil(), first_bad.is_none());
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    // A `first_bad` left out reads as nil, a `removed` as 0: replies of a
    // daemon from before them still decode.
    let short = pack(&map(vec![
        ("type", "audit_verified".into()),
        ("lines", 3.into()),
    ]));
    assert_eq!(
        decode_message::<Reply>(&short).unwrap(),
        Reply::AuditVerified {
            lines: 3,
            first_bad: None,
            removed: 0,
        }
    );
    // An `audit` reply without `next` is a last page.
    let old = pack(&map(vec![
        ("type", "audit".into()),
        ("lines", Value::Array(vec![AUDIT_EVENT.into()])),
    ]));
    assert_eq!(
        decode_message::<Reply>(&old).unwrap(),
        Reply::Audit {
            lines: vec![AUDIT_EVENT.into()],
            next: None,
        }
    );
    // The documented events are JSON objects with the documented fields,
    // in their order: a single request without `count` and `until`, a
    // burst with them.
    for (example, optional) in [(AUDIT_EVENT, 2), (AUDIT_BURST, 0)] {
        let event: serde_json::Value = serde_json::from_str(example).unwrap();
        assert_eq!(
            event.as_object().unwrap().len(),
            AUDIT_EVENT_FIELDS.len() - optional
        );
        let at: Vec<usize> = AUDIT_EVENT_FIELDS
            .iter()
            .filter_map(|f| example.find(&format!("\"{f}\":")))
            .collect();
        assert_eq!(at.len(), AUDIT_EVENT_FIELDS.len() - optional);
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    }
    let burst: serde_json::Value = serde_json::from_str(AUDIT_BURST).unwrap();
    assert_eq!(burst["count"].as_u64(), Some(4711));
    // A checkpoint is no event: it has no `op`, and its `prev` chains it.
    let checkpoint: serde_json::Value = serde_json::from_str(AUDIT_CHECKPOINT).unwrap();
    assert!(checkpoint.get("op").is_none());
    assert_eq!(checkpoint["checkpoint"]["reason"].as_str(), Some("rotated"));
    assert_eq!(checkpoint["prev"].as_str().map(str::len), Some(64));
    let event: serde_json::Value = serde_json::from_str(AUDIT_EVENT).unwrap();
    assert_eq!(event["prev"].as_str(), Some("0".repeat(64).as_str()));
    assert_eq!(event["on_behalf_of"]["role"].as_str(), Some("viewer"));
}

#[test]
fn the_role_table_names_every_operation_with_a_role() {
    let doc = protocol_doc();
    let text = section(&doc, "### 1.4 ");
    let rows: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1], cells[2])
        })
        .collect();
    let mut roles_seen = BTreeSet::new();
    for (operation, role) in &rows {
        let role: Role = role
            .trim_matches('`')
            .parse()
            .unwrap_or_else(|e| panic!("the row of {operation}: {e}"));
        roles_seen.insert(role);
    }
    assert_eq!(roles_seen.len(), ROLES.len(), "every role has a row");
    let named: BTreeSet<&str> = table_names(text).into_iter().collect();
    let operations: BTreeSet<&str> = all_operations().iter().map(|o| o.name()).collect();
    assert_eq!(named, operations, "the rows of 1.4 and the operations");
    // A dry-run and a real restore need different roles.
    let restore: Vec<(&str, &str)> = rows
        .iter()
        .filter(|(o, _)| o.starts_with("`restore_start`"))
        .copied()
        .collect();
    assert_eq!(restore.len(), 2, "{restore:?}");
    assert!(restore
        .iter()
        .any(|(o, r)| o.contains("`dry_run: true`") && *r == "`operator`"));
    assert!(restore
        .iter()
        .any(|(o, r)| o.contains("`dry_run: false`") && *r == "`admin`"));
}

#[test]
fn the_document_shows_on_behalf_of_and_the_audit_replies() {
    let doc = protocol_doc();
    let client = section(&doc, "### 5.1 ");
    let start = client.find("**`request`**").expect("5.1 has the request");
    let end = client.find("**`data`**").expect("5.1 has data");
    let msg = ClientMessage::Request {
        id: 1,
        op: Operation::Status(ops::Status {}),
        on_behalf_of: Some(alice(Role::Operator)),
    };
    let value = unpack(&encode(&msg).unwrap());
    assert_eq!(table_names(&client[start..end]), keys(&value));
    assert_eq!(
        table_names(section(&doc, "### 7.16 OnBehalfOf")),
        keys(field(&value, "on_behalf_of"))
    );
    let server = section(&doc, "### 5.2 ");
    for reply in audit_replies() {
        let value = unpack(&encode(&reply).unwrap());
        let name = field(&value, "type").as_str().unwrap().to_owned();
        let row = server
            .lines()
            .find(|l| l.starts_with(&format!("| `\"{name}\"` |")))
            .unwrap_or_else(|| panic!("5.2 has no row for the reply {name}"));
        for key in keys(&value).into_iter().skip(1) {
            assert!(row.contains(&format!("`{key}`")), "{name} lacks {key}");
        }
    }
    let tail = section(&doc, "### 6.26 `audit_tail`");
    assert!(
        tail.contains("| `lines` | `u32` | `20` |"),
        "6.26: lines, 20"
    );
    section(&doc, "### 6.27 `audit_verify`");
    let trail = section(&doc, "### 6.28 The audit trail");
    for example in [AUDIT_EVENT, AUDIT_BURST, AUDIT_CHECKPOINT] {
        assert!(
            trail.lines().any(|l| l.trim() == example),
            "6.28 shows {example} as one line"
        );
    }
    assert!(
        tail.contains("| `before` | `u64` \\| nil | nil |"),
        "6.26: before"
    );
    assert_eq!(
        table_names(trail),
        AUDIT_EVENT_FIELDS,
        "6.28 lists the event's fields in order"
    );
}
