//! The worked example of `docs/PROTOCOL.md`, byte for byte: the documented
//! frames are exactly what encoding produces (and decode back), they travel
//! over a `Connection` unchanged, and the document itself shows these bytes,
//! every error code, the documented limits, every operation, message and
//! reply, every record's fields in the order they are written, the steps of
//! a restore in order, and which operations are served during maintenance.
//! (The frames of a transfer are checked in `transfer`.)

use berkut_proto::wire::client::UPLOAD_CHUNK;
use berkut_proto::wire::frame::{decode_message, encode};
use berkut_proto::wire::messages::MAX_LABEL_CHARS;
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    ClientMessage, Connection, ErrorBody, ErrorCode, Operation, Phase, Reply, ServerMessage,
    MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::fixtures::{
    alarmed_status, all_client_messages, all_operations, all_replies, all_server_messages,
    busy_status, daily_spec, evidence, example_status, failed_record, maintenance_on, progress,
    record_with_properties, running_restore, weekly_plan, STEP_NAMES,
};
use super::{field, frame, keys, unhex, unpack, DOCUMENTED_CODES, PATIENCE};

#[test]
fn the_documented_limits() {
    assert_eq!(MAX_FRAME_LEN, 4 * 1024 * 1024);
    assert_eq!(MAX_FRAME_LEN, 4_194_304);
    assert_eq!(berkut_proto::wire::MAX_HELLO_FRAME_LEN, 65_536);
    assert_eq!(MAX_LABEL_CHARS, 200);
    assert_eq!(PROTOCOL_VERSION, 1);
    assert_eq!(UPLOAD_CHUNK, 1 << 20);
    assert_eq!(UPLOAD_CHUNK, 1_048_576);
}

const HELLO_FRAME: &str = "
    00000031
    83
    a4 74797065 a5 68656c6c6f
    b0 70726f746f636f6c5f76657273696f6e 01
    a6 636c69656e74 ab 6578616d706c6520312e30";

const STATUS_REQUEST_FRAME: &str = "
    00000022
    83
    a4 74797065 a7 72657175657374
    a2 6964 01
    a2 6f70 81 a4 74797065 a6 737461747573";

const WELCOME_FRAME: &str = "
    00000035
    83
    a4 74797065 a7 77656c636f6d65
    b0 70726f746f636f6c5f76657273696f6e 01
    a6 736572766572 ad 6265726b75746420302e312e30";

const STATUS_REPLY_FRAME: &str = "
    00000103
    83
    a4 74797065 a5 7265706c79
    a2 6964 01
    a5 7265706c79 82
       a4 74797065 a6 737461747573
       a6 737461747573 8e
          a7 76657273696f6e a5 302e312e30
          b0 70726f746f636f6c5f76657273696f6e 01
          aa 737461727465645f6174 b4 323032362d30312d30325430333a30343a30355a
          ae 757074696d655f7365636f6e6473 2a
          ac 6d61785f706172616c6c656c 02
          a7 72756e6e696e67 00
          a6 717565756564 00
          a4 6a6f6273 90
          a7 6261636b757073 03
          b1 6e65776573745f737563636573735f6174 c0
          ba 6e65776573745f737563636573735f6167655f7365636f6e6473 c0
          b1 72706f5f6c696d69745f7365636f6e6473 c0
          ac 72706f5f6272656163686564 c2
          a8 6465765f6d6f6465 c2";

fn example_messages() -> (ClientMessage, ClientMessage, ServerMessage, ServerMessage) {
    (
        ClientMessage::Hello {
            protocol_version: 1,
            client: "example 1.0".into(),
        },
        ClientMessage::Request {
            on_behalf_of: None,
            id: 1,
            op: Operation::Status(ops::Status {}),
        },
        ServerMessage::Welcome {
            protocol_version: 1,
            server: "berkutd 0.1.0".into(),
        },
        ServerMessage::Reply {
            id: 1,
            reply: Reply::Status {
                status: example_status(),
            },
        },
    )
}

#[test]
fn the_worked_example_has_the_documented_bytes() {
    let (hello, status, welcome, reply) = example_messages();
    assert_eq!(frame(&encode(&hello).unwrap()), unhex(HELLO_FRAME));
    assert_eq!(
        frame(&encode(&status).unwrap()),
        unhex(STATUS_REQUEST_FRAME)
    );
    assert_eq!(frame(&encode(&welcome).unwrap()), unhex(WELCOME_FRAME));
    assert_eq!(frame(&encode(&reply).unwrap()), unhex(STATUS_REPLY_FRAME));

    // And the other way: the documented bytes decode to those messages.
    assert_eq!(
        decode_message::<ClientMessage>(&unhex(HELLO_FRAME)[4..]).unwrap(),
        hello
    );
    assert_eq!(
        decode_message::<ServerMessage>(&unhex(STATUS_REPLY_FRAME)[4..]).unwrap(),
        reply
    );
}

/// `docs/PROTOCOL.md`, read at run time.
pub(super) fn protocol_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_document_shows_these_bytes_and_these_codes() {
    let doc = protocol_doc();
    let (hello, status, welcome, reply) = example_messages();
    for (what, body) in [
        ("hello", encode(&hello).unwrap()),
        ("status request", encode(&status).unwrap()),
        ("welcome", encode(&welcome).unwrap()),
        ("status reply", encode(&reply).unwrap()),
    ] {
        let line = hex::encode(frame(&body));
        assert!(
            doc.lines().any(|l| l.trim() == line),
            "docs/PROTOCOL.md lacks the {what} frame as one line:\n{line}"
        );
    }
    for (_, name) in DOCUMENTED_CODES {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/PROTOCOL.md has no table row for the code {name}"
        );
    }
    for limit in [
        "4 194 304",
        "`MAX_HELLO_FRAME_LEN` = 65 536 bytes (64",
        "200 characters",
        "`MAX_DEPTH` = 32",
        "262 144 bytes (256 KiB)",
        "1 048 576 bytes (1 MiB",
        "10 737 418 240 bytes",
        "64 KiB of encoded messages",
    ] {
        assert!(doc.contains(limit), "{limit}");
    }
}

/// The text under the heading that starts with `heading`, up to the next
/// heading.
pub(super) fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no heading {heading:?}"))
        + 1;
    let body = &doc[start..];
    let end = body[1..].find("\n#").map_or(body.len(), |n| n + 2);
    &body[..end]
}

/// The names in the first column of a section's table rows (`| `name` |`).
pub(super) fn table_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| name.trim_matches('"'))
        .collect()
}

#[test]
fn the_samples_hold_every_operation() {
    let sampled: Vec<&str> = all_operations().iter().map(|o| o.name()).collect();
    for name in Operation::NAMES {
        assert!(
            sampled.contains(name),
            "{name} has no sample in the fixtures: the document and the wire tests skip it"
        );
    }
}

#[test]
fn the_document_lists_every_operation_reply_and_record_field() {
    let doc = protocol_doc();
    let headings: Vec<&str> = doc.lines().filter(|l| l.starts_with("### 6.")).collect();
    let replies = section(&doc, "### 5.2 ");
    for operation in all_operations() {
        let name = format!("`{}`", operation.name());
        assert!(
            headings.iter().any(|h| h.contains(&name)),
            "section 6 has no heading for {name}"
        );
        assert!(replies.contains(&name), "5.2 does not say what {name} gets");
    }
    let reply_types = table_names(replies);
    for reply in all_replies() {
        let value = unpack(&encode(&reply).unwrap());
        let name = field(&value, "type").as_str().unwrap().to_owned();
        assert!(reply_types.contains(&name.as_str()), "reply {name}");
    }
    let type_of = |bytes: Vec<u8>| field(&unpack(&bytes), "type").as_str().unwrap().to_owned();
    for (heading, types) in [
        (
            "### 5.1 ",
            all_client_messages()
                .iter()
                .map(|m| type_of(encode(m).unwrap()))
                .collect::<Vec<_>>(),
        ),
        (
            "### 5.2 ",
            all_server_messages()
                .iter()
                .map(|m| type_of(encode(m).unwrap()))
                .collect(),
        ),
    ] {
        let text = section(&doc, heading);
        for name in types {
            let bold = format!("**`{name}`**");
            assert!(text.contains(&bold), "{heading}has no {bold}");
        }
    }

    // A drilled record: the fields left out until a drill ran.
    let verdict = berkut_proto::wire::DrillVerdict {
        result: berkut_proto::wire::DrillResult::Failed,
        at: time::macros::datetime!(2026-01-02 04:00:00 UTC),
        restore_id: "r-20260102T035900Z-0a0b0c0d".parse().unwrap(),
        duration_seconds: 2400,
        failure: Some(berkut_proto::wire::Failure {
            code: ErrorCode::Unavailable,
            reason: "the database server is not reachable".into(),
        }),
        rto_exceeded: true,
    };
    // A busy status with the fields that are left out when empty.
    let alarmed = alarmed_status();
    let busy = unpack(
        &encode(&berkut_proto::wire::StatusInfo {
            missing: alarmed.missing,
            store_alarm: alarmed.store_alarm.clone(),
            task_faults: alarmed.task_faults.clone(),
            verified_backup: Some("20260101T030405Z-0a0b0c0d".parse().unwrap()),
            verified_at: Some(time::macros::datetime!(2026-01-01 03:04:05 UTC)),
            verified_age_seconds: Some(86_400),
            last_drill: Some(verdict.clone()),
            last_drill_backup: Some("20260102T030405Z-0a0b0c0d".parse().unwrap()),
            drill_overdue: true,
            drill_failed: true,
            ..busy_status()
        })
        .unwrap(),
    );
    let with_properties = unpack(
        &encode(&berkut_proto::wire::BackupRecord {
            drill: Some(verdict.clone()),
            expected_restore: Some(berkut_proto::wire::RestoreEstimate {
                seconds: 600,
                backup_id: "20260101T030405Z-0a0b0c0d".parse().unwrap(),
                restore_id: "r-20260101T035900Z-0a0b0c0d".parse().unwrap(),
            }),
            ..record_with_properties()
        })
        .unwrap(),
    );
    let failed = unpack(&encode(&failed_record()).unwrap());
    let restore = unpack(
        &encode(&berkut_proto::wire::RestoreRecord {
            redacted_files: vec!["srv/app/config/.env".into()],
            smoke_checks: vec![berkut_proto::wire::SmokeCheckResult {
                name: "users exist".into(),
                passed: false,
                duration_ms: 12,
                message: "returned no row; exactly one was expected".into(),
            }],
            ..running_restore()
        })
        .unwrap(),
    );
    let evidence = unpack(
        &encode(&berkut_proto::wire::Evidence {
            digest: Some(berkut_proto::wire::DigestVerdict {
                matched: 16,
                problems: vec!["logs/00-verify.log: changed".into()],
            }),
            ..evidence()
        })
        .unwrap(),
    );
    let error = ErrorBody {
        code: ErrorCode::Internal,
        message: "m".into(),
        correlation_id: Some("00000000deadbeef".into()),
    };
    let records = [
        ("### 7.1 BackupRecord", with_properties.clone()),
        ("### 7.2 Failure", field(&failed, "failure").clone()),
        (
            "### 7.3 Progress",
            unpack(&encode(&progress(Phase::Dump)).unwrap()),
        ),
        ("### 7.4 StatusInfo", busy.clone()),
        ("### 7.5 JobInfo", field(&busy, "jobs")[0].clone()),
        ("### 7.6 ErrorBody", unpack(&encode(&error).unwrap())),
        ("### 7.7 PlanSpec", unpack(&encode(&daily_spec()).unwrap())),
        ("### 7.8 PlanInfo", unpack(&encode(&weekly_plan()).unwrap())),
        ("### 7.9 RestoreRecord", restore.clone()),
        ("### 7.10 RestoreStep", field(&restore, "steps")[0].clone()),
        (
            "### 7.11 MaintenanceInfo",
            unpack(&encode(&maintenance_on()).unwrap()),
        ),
        ("### 7.12 Evidence", evidence.clone()),
        (
            "### 7.13 DigestCheck",
            field(&evidence, "digests")[0].clone(),
        ),
        ("### 7.14 CountCheck", field(&evidence, "counts")[0].clone()),
        ("### 7.15 StepLog", field(&evidence, "logs")[0].clone()),
        ("### 7.17 TaskFault", field(&busy, "task_faults")[0].clone()),
        (
            "### 7.18 DatabaseProperties",
            field(&with_properties, "properties").clone(),
        ),
        (
            "### 7.19 FilesSummary",
            field(&with_properties, "files").clone(),
        ),
        (
            "### 7.20 DrillVerdict",
            field(&with_properties, "drill").clone(),
        ),
        (
            "### 7.21 RestoreEstimate",
            field(&with_properties, "expected_restore").clone(),
        ),
        (
            "### 7.22 SmokeCheckResult",
            field(&restore, "smoke_checks")[0].clone(),
        ),
        ("### 7.23 DigestVerdict", field(&evidence, "digest").clone()),
    ];
    for (heading, value) in records {
        assert_eq!(
            table_names(section(&doc, heading)),
            keys(&value),
            "{heading}"
        );
    }
}

#[test]
fn the_document_lists_the_steps_of_a_restore_and_what_maintenance_serves() {
    let doc = protocol_doc();
    let steps = section(&doc, "### 6.16 How a restore runs");
    assert_eq!(table_names(steps), STEP_NAMES, "the table of steps");

    // The paragraph (or list item) that starts "Served during maintenance:"
    // names exactly the operations the protocol serves then (the daemon's
    // `handlers` tests hold its operations to the same paragraph).
    let text = section(&doc, "### 6.20 Maintenance mode for applications");
    let start = text
        .find("Served during maintenance:")
        .expect("6.20 says what is served during maintenance");
    let rest = &text[start..];
    let end = [rest.find("\n\n"), rest.find("\n* ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    let paragraph = &rest[..end];
    let mut named: Vec<&str> = paragraph.split('`').skip(1).step_by(2).collect();
    let mut served: Vec<&str> = super::restore::SERVED_IN_MAINTENANCE.to_vec();
    named.sort_unstable();
    served.sort_unstable();
    served.dedup();
    assert_eq!(named, served);
}

#[tokio::test]
async fn the_worked_example_frames_travel_as_documented() {
    let (a, mut raw) = UnixStream::pair().unwrap();
    let mut conn = Connection::new(a);
    let (hello, status, ..) = example_messages();
    conn.write_message(&hello).await.unwrap();
    conn.write_message(&status).await.unwrap();
    let mut expected = unhex(HELLO_FRAME);
    expected.extend(unhex(STATUS_REQUEST_FRAME));
    let mut got = vec![0; expected.len()];
    timeout(PATIENCE, raw.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, expected);
}
