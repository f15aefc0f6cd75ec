//! What a client is told about a message that is not one: whatever value
//! stands in whatever field of whatever operation, a refusal speaks the
//! protocol's words (never serde's or Rust's), repeats at most a short quote
//! of the client's text, and every text field's limit holds at decode.

use berkut_proto::wire::frame::{decode_request, DecodeError};
use berkut_proto::wire::input::{quote, MAX_REQUEST_STRING_BYTES, QUOTE_MAX_CHARS, TEXT_LIMITS};
use proptest::prelude::*;
use rmpv::Value;

use super::{map, pack};

/// Words of the implementation that must never reach a client.
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
    "PlanSpec",
    "OnBehalfOf",
    "expected one of",
    "invalid type",
    "invalid value",
    "u32",
    "u64",
    "unit value",
    "sequence",
    ".rs",
    "/src/",
];

fn refusal(body: &[u8]) -> Option<String> {
    match decode_request(body) {
        Err(DecodeError::Invalid { message, .. }) => Some(message),
        _ => None,
    }
}

fn check(message: &str) {
    for word in INTERNAL {
        assert!(!message.contains(word), "{word:?} in {message}");
    }
    assert!(message.chars().count() <= 3 * QUOTE_MAX_CHARS, "{message}");
    assert!(!message.chars().any(char::is_control), "{message:?}");
}

const OPERATIONS: &[&str] = &[
    "status",
    "backup_create",
    "backup_list",
    "backup_show",
    "plan_set",
    "restore_start",
    "restore_status",
    "audit_tail",
    "backup_import",
    "no_such_op",
];

const FIELDS: &[&str] = &[
    "type",
    "label",
    "scope",
    "wait",
    "offset",
    "limit",
    "id",
    "plan",
    "backup_id",
    "dry_run",
    "restore_id",
    "lines",
    "size",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        "\\PC{0,30}".prop_map(Value::from),
        "[\\x00-\\x1f\"\\\\]{0,10}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Binary),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 1..4)).prop_map(|(t, d)| Value::Ext(t, d)),
        prop::sample::select(vec![
            "full",
            "daily",
            "admin",
            "status",
            "20260102T030405Z-00abcdef"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..4)
                .prop_map(|kv| map(kv)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_value_in_any_field_is_refused_in_protocol_words(
        op in prop::sample::select(OPERATIONS.to_vec()),
        fields in prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value()), 0..4),
        behalf in proptest::option::of(value()),
    ) {
        let mut op_fields = vec![("type", Value::from(op))];
        op_fields.extend(fields);
        let mut top = vec![("type", Value::from("request")), ("id", 1.into()), ("op", map(op_fields))];
        if let Some(b) = behalf {
            top.push(("on_behalf_of", b));
        }
        if let Some(message) = refusal(&pack(&map(top))) {
            check(&message);
        }
    }
}

#[test]
fn every_text_field_is_bounded_at_decode() {
    let request = |op: Value, behalf: Option<Value>| {
        let mut top = vec![
            ("type", Value::from("request")),
            ("id", 7.into()),
            ("op", op),
        ];
        if let Some(b) = behalf {
            top.push(("on_behalf_of", b));
        }
        pack(&map(top))
    };
    let body = |field: &str, text: &str| -> Vec<u8> {
        match field {
            "client" => pack(&map(vec![
                ("type", "hello".into()),
                ("protocol_version", 1.into()),
                ("client", text.into()),
            ])),
            "on_behalf_of.user" => request(
                map(vec![("type", "status".into())]),
                Some(map(vec![("user", text.into()), ("role", "viewer".into())])),
            ),
            "op.remote" => request(
                map(vec![
                    ("type", "remote_list".into()),
                    ("remote", text.into()),
                ]),
                None,
            ),
            "op.label" => request(
                map(vec![
                    ("type", "backup_create".into()),
                    ("label", text.into()),
                ]),
                None,
            ),
            plan_field => {
                let name = plan_field.trim_start_matches("op.plan.");
                request(
                    map(vec![
                        ("type", "plan_set".into()),
                        (
                            "plan",
                            map(vec![("preset", "cron".into()), (name, text.into())]),
                        ),
                    ]),
                    None,
                )
            }
        }
    };
    for limit in TEXT_LIMITS {
        let ok = "é".repeat(limit.max_chars.max(1));
        assert!(
            decode_request(&body(limit.field, &ok)).is_ok(),
            "{}",
            limit.field
        );
        let long = "é".repeat(limit.max_chars + 1);
        let message = refusal(&body(limit.field, &long)).expect("refused");
        assert!(
            message.starts_with(&format!("{}: at most", limit.field)),
            "{message}"
        );
        let message = refusal(&body(limit.field, "a\u{1b}[2J")).expect("refused");
        assert!(message.contains("U+001B"), "{message}");
        check(&message);
        // Past the scan's limit the string is not even read.
        let huge = "x".repeat(MAX_REQUEST_STRING_BYTES + 1);
        let message = refusal(&body(limit.field, &huge)).expect("refused");
        assert!(
            message.starts_with(&format!("{}: a string of", limit.field)),
            "{message}"
        );
    }
}

#[test]
fn a_quote_shows_little_and_nothing_that_acts() {
    let q = quote(&format!("{}\n\u{1b}", "a".repeat(500)));
    assert_eq!(
        q,
        format!("\"{}…\" (502 characters)", "a".repeat(QUOTE_MAX_CHARS))
    );
    assert_eq!(quote("tab\there"), "\"tab\\there\"");
}
