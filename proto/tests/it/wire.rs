//! The wire protocol as `docs/PROTOCOL.md` describes it: framing and its
//! limits, what decodes and what does not (and how a failure is classified),
//! the shape of every message on the wire, the exact bytes of the documented
//! examples, and the Rust client against a scripted server. If one of these
//! tests has to change, the document has to change with it.

use std::time::Duration;

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::frame::{decode_message, encode, DecodeError, MAX_DEPTH};
use berkut_proto::wire::messages::MAX_LABEL_CHARS;
use berkut_proto::wire::{
    BackupRecord, BackupStatus, Client, ClientError, ClientMessage, Connection, ErrorBody,
    ErrorCode, Failure, FrameError, JobInfo, JobKind, Operation, Phase, Progress, Reply,
    ServerMessage, StatusInfo, MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use proptest::prelude::*;
use rmpv::Value;
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::timeout;

/// Long enough for any honest operation in these tests; a read that waits
/// for bytes that never come runs into it instead of hanging the suite.
const PATIENCE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Helpers

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// A MessagePack map with string keys, in the order given.
fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn pack(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

fn unpack(bytes: &[u8]) -> Value {
    rmpv::decode::read_value(&mut &bytes[..]).unwrap()
}

/// The value under `key` in a map.
fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value
        .as_map()
        .unwrap_or_else(|| panic!("not a map: {value}"))
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {key:?} in {value}"))
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap())
        .collect()
}

/// A hand-made request frame body.
fn request(id: Value, op: Value) -> Vec<u8> {
    pack(&map(vec![
        ("type", "request".into()),
        ("id", id),
        ("op", op),
    ]))
}

fn op(kind: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut pairs = vec![("type", Value::from(kind))];
    pairs.extend(fields);
    map(pairs)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn backup_id() -> BackupId {
    "20260102T030405Z-0a0b0c0d".parse().unwrap()
}

fn queued_record() -> BackupRecord {
    BackupRecord {
        id: backup_id(),
        label: "nightly".into(),
        scope: Scope::Full,
        include_files: false,
        origin: Origin::Manual,
        status: BackupStatus::Queued,
        created_at: datetime!(2026-01-02 03:04:05 UTC),
        started_at: None,
        finished_at: None,
        size_bytes: None,
        sha256: None,
        key_id: None,
        database: None,
        failure: None,
    }
}

fn succeeded_record() -> BackupRecord {
    BackupRecord {
        status: BackupStatus::Succeeded,
        started_at: Some(datetime!(2026-01-02 03:04:06.25 UTC)),
        finished_at: Some(datetime!(2026-01-02 03:05:00 UTC)),
        size_bytes: Some(123_456_789),
        sha256: Some("ab".repeat(32)),
        key_id: Some("0123456789abcdef".into()),
        database: Some("app".into()),
        ..queued_record()
    }
}

fn failed_record() -> BackupRecord {
    BackupRecord {
        status: BackupStatus::Failed,
        label: "перед миграцией".into(),
        scope: Scope::Schema,
        include_files: true,
        origin: Origin::Scheduled,
        finished_at: Some(datetime!(2026-01-02 03:04:07 +03:00)),
        failure: Some(Failure {
            code: ErrorCode::Unavailable,
            reason: "the database is not reachable (correlation id 00000000deadbeef)".into(),
        }),
        ..queued_record()
    }
}

fn progress(phase: Phase) -> Progress {
    Progress {
        job_id: backup_id(),
        phase,
        tables_done: 3,
        tables_total: 10,
        bytes_done: 1 << 20,
    }
}

/// The status of the worked example in `docs/PROTOCOL.md`.
fn example_status() -> StatusInfo {
    StatusInfo {
        version: "0.1.0".into(),
        protocol_version: 1,
        started_at: datetime!(2026-01-02 03:04:05 UTC),
        uptime_seconds: 42,
        max_parallel: 2,
        running: 0,
        queued: 0,
        jobs: vec![],
        backups: 3,
        dev_mode: false,
    }
}

fn busy_status() -> StatusInfo {
    StatusInfo {
        running: 1,
        queued: 1,
        jobs: vec![
            JobInfo {
                id: backup_id(),
                kind: JobKind::Backup,
                status: BackupStatus::Running,
                queued_at: datetime!(2026-01-02 03:04:05 UTC),
                started_at: Some(datetime!(2026-01-02 03:04:05.000000001 UTC)),
                progress: progress(Phase::Dump),
            },
            JobInfo {
                id: "20260102T030406Z-ffffffff".parse().unwrap(),
                kind: JobKind::Backup,
                status: BackupStatus::Queued,
                queued_at: datetime!(2026-01-02 03:04:06 UTC),
                started_at: None,
                progress: Progress {
                    job_id: "20260102T030406Z-ffffffff".parse().unwrap(),
                    phase: Phase::Queued,
                    tables_done: 0,
                    tables_total: 0,
                    bytes_done: 0,
                },
            },
        ],
        dev_mode: true,
        ..example_status()
    }
}

fn all_operations() -> Vec<Operation> {
    vec![
        Operation::Status,
        Operation::BackupCreate {
            label: String::new(),
            scope: Scope::Full,
            include_files: false,
            wait: false,
        },
        Operation::BackupCreate {
            label: "перед миграцией 🚀".into(),
            scope: Scope::Database,
            include_files: true,
            wait: true,
        },
        Operation::BackupCreate {
            label: "x".repeat(MAX_LABEL_CHARS),
            scope: Scope::Schema,
            include_files: false,
            wait: true,
        },
        Operation::list_first_page(),
        Operation::BackupList {
            offset: 1000,
            limit: Some(10),
        },
        Operation::BackupShow { id: backup_id() },
        Operation::BackupDelete { id: backup_id() },
        Operation::JobAttach { id: backup_id() },
    ]
}

fn all_client_messages() -> Vec<ClientMessage> {
    let mut out = vec![
        ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "berkutctl 0.1.0".into(),
        },
        ClientMessage::Hello {
            protocol_version: u32::MAX,
            client: String::new(),
        },
    ];
    for (n, op) in all_operations().into_iter().enumerate() {
        let id = [0, 1, 127, 128, 255, 65_536, u32::MAX as u64 + 1, u64::MAX][n % 8];
        out.push(ClientMessage::Request { id, op });
    }
    out
}

fn all_replies() -> Vec<Reply> {
    vec![
        Reply::Status {
            status: example_status(),
        },
        Reply::Status {
            status: busy_status(),
        },
        Reply::Backup {
            backup: queued_record(),
        },
        Reply::Backup {
            backup: succeeded_record(),
        },
        Reply::Backup {
            backup: failed_record(),
        },
        Reply::Backups {
            backups: vec![],
            total: 0,
        },
        Reply::Backups {
            total: 7,
            backups: vec![succeeded_record(), failed_record(), queued_record()],
        },
        Reply::Deleted { id: backup_id() },
    ]
}

fn all_server_messages() -> Vec<ServerMessage> {
    let mut out = vec![
        ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "berkutd 0.1.0".into(),
        },
        ServerMessage::Error {
            id: None,
            error: ErrorBody::new(ErrorCode::VersionMismatch, "wrong version"),
        },
        ServerMessage::Error {
            id: Some(9),
            error: ErrorBody {
                code: ErrorCode::Internal,
                message: "internal error".into(),
                correlation_id: Some("00000000deadbeef".into()),
            },
        },
    ];
    for phase in [
        Phase::Queued,
        Phase::Connecting,
        Phase::Globals,
        Phase::Dump,
        Phase::Files,
        Phase::Finishing,
        Phase::Done,
    ] {
        out.push(ServerMessage::Progress {
            id: 4,
            progress: progress(phase),
        });
    }
    for (n, reply) in all_replies().into_iter().enumerate() {
        out.push(ServerMessage::Reply {
            id: n as u64,
            reply,
        });
    }
    out
}

fn round_trip<T>(msg: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode(msg).unwrap();
    assert_eq!(&decode_message::<T>(&bytes).unwrap(), msg);
    // Decoding the same bytes through a generic MessagePack reader and
    // re-encoding them (as a client in another language would) changes
    // nothing either.
    let again = pack(&unpack(&bytes));
    assert_eq!(&decode_message::<T>(&again).unwrap(), msg);
}

fn invalid_id<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> Option<u64> {
    match decode_message::<T>(body) {
        Err(DecodeError::Invalid { id, .. }) => id,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn is_malformed<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> bool {
    matches!(decode_message::<T>(body), Err(DecodeError::Malformed(_)))
}

// ---------------------------------------------------------------------------
// Framing

#[tokio::test]
async fn an_oversized_length_is_refused_before_any_body_arrives() {
    let (mut raw, other) = UnixStream::pair().unwrap();
    let mut conn = Connection::new(other);
    // Only the header: if the reader waited for (or allocated) the body, it
    // would hang here until the timeout.
    raw.write_all(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    let got = timeout(PATIENCE, conn.read_frame())
        .await
        .expect("the reader waited for a body it should have refused");
    match got {
        Err(FrameError::TooLarge { max, .. }) => assert_eq!(max, MAX_FRAME_LEN),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    drop(raw);
}

#[tokio::test]
async fn the_largest_length_a_header_can_hold_is_refused_too() {
    let (mut raw, other) = tokio::io::duplex(64);
    let mut conn = Connection::new(other);
    raw.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let got = timeout(PATIENCE, conn.read_frame()).await.unwrap();
    assert!(matches!(got, Err(FrameError::TooLarge { .. })), "{got:?}");
}

#[tokio::test]
async fn a_frame_of_exactly_the_limit_is_accepted() {
    let (mut raw, other) = UnixStream::pair().unwrap();
    let mut conn = Connection::new(other);
    let writer = tokio::spawn(async move {
        raw.write_all(&(MAX_FRAME_LEN as u32).to_be_bytes())
            .await
            .unwrap();
        let body: Vec<u8> = (0..MAX_FRAME_LEN).map(|i| (i % 251) as u8).collect();
        raw.write_all(&body).await.unwrap();
        raw
    });
    let body = timeout(PATIENCE, conn.read_frame())
        .await
        .unwrap()
        .unwrap()
        .expect("a frame");
    assert_eq!(body.len(), MAX_FRAME_LEN);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    drop(writer.await.unwrap());
    assert!(conn.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn write_frame_sends_the_limit_and_refuses_one_byte_more() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut sender = Connection::new(a);
    let mut receiver = Connection::new(b);

    let reader = tokio::spawn(async move {
        let body = receiver.read_frame().await.unwrap().expect("a frame");
        let after = receiver.read_frame().await.unwrap();
        (body.len(), after)
    });
    sender.write_frame(vec![7; MAX_FRAME_LEN]).await.unwrap();
    match sender.write_frame(vec![7; MAX_FRAME_LEN + 1]).await {
        Err(FrameError::TooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_FRAME_LEN + 1, MAX_FRAME_LEN))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The refused frame left nothing on the stream: the reader sees the
    // good frame and then a clean end.
    drop(sender);
    let (len, after) = timeout(PATIENCE, reader).await.unwrap().unwrap();
    assert_eq!(len, MAX_FRAME_LEN);
    assert!(after.is_none(), "{after:?}");
}

#[tokio::test]
async fn write_message_refuses_a_message_that_encodes_too_large() {
    let (a, _b) = tokio::io::duplex(64);
    let mut conn = Connection::with_limit(a, 64);
    let msg = ClientMessage::Hello {
        protocol_version: 1,
        client: "x".repeat(100),
    };
    assert!(matches!(
        conn.write_message(&msg).await,
        Err(FrameError::TooLarge { max: 64, .. })
    ));
}

#[tokio::test]
async fn a_smaller_limit_applies_to_reading_as_well() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut conn = Connection::with_limit(other, 16);
    raw.write_all(&frame(&[0xc0; 16])).await.unwrap();
    raw.write_all(&17u32.to_be_bytes()).await.unwrap();
    assert_eq!(conn.read_frame().await.unwrap().unwrap().len(), 16);
    let got = timeout(PATIENCE, conn.read_frame()).await.unwrap();
    assert!(
        matches!(got, Err(FrameError::TooLarge { max: 16, .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn frames_are_found_however_the_bytes_are_split() {
    let hello = ClientMessage::Hello {
        protocol_version: 1,
        client: "split".into(),
    };
    let status = ClientMessage::Request {
        id: 2,
        op: Operation::Status,
    };
    let empty = frame(&[]);
    let mut stream = frame(&encode(&hello).unwrap());
    stream.extend(&empty);
    stream.extend(frame(&encode(&status).unwrap()));

    // All at once.
    let (mut raw, other) = tokio::io::duplex(4096);
    let mut conn = Connection::new(other);
    raw.write_all(&stream).await.unwrap();
    drop(raw);
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(hello.clone())
    );
    assert_eq!(conn.read_frame().await.unwrap().unwrap().len(), 0);
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(status.clone())
    );
    assert!(conn.read_frame().await.unwrap().is_none());

    // One byte at a time.
    let (mut raw, other) = tokio::io::duplex(1);
    let mut conn = Connection::new(other);
    let writer = tokio::spawn(async move {
        for b in stream {
            raw.write_all(&[b]).await.unwrap();
        }
    });
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(hello)
    );
    assert_eq!(conn.read_frame().await.unwrap().unwrap().len(), 0);
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(status)
    );
    writer.await.unwrap();
    assert!(conn.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn an_end_inside_a_frame_is_an_error_not_a_clean_close() {
    for partial in [vec![0u8, 0], frame(&[0xc0, 0xc0, 0xc0])[..6].to_vec()] {
        let (mut raw, other) = tokio::io::duplex(64);
        let mut conn = Connection::new(other);
        raw.write_all(&partial).await.unwrap();
        drop(raw);
        let got = timeout(PATIENCE, conn.read_frame()).await.unwrap();
        assert!(
            matches!(got, Err(FrameError::Io(_))),
            "{partial:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn read_message_separates_broken_frames_from_wrong_messages() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut conn = Connection::new(other);
    raw.write_all(&frame(&[0xc1])).await.unwrap();
    raw.write_all(&frame(&request(3.into(), op("frobnicate", vec![]))))
        .await
        .unwrap();
    assert!(matches!(
        conn.read_message::<ClientMessage>().await,
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        conn.read_message::<ClientMessage>().await,
        Err(FrameError::Unexpected(_))
    ));
}

// ---------------------------------------------------------------------------
// Decoding: Malformed versus Invalid

#[test]
fn bodies_that_are_not_one_messagepack_value_are_malformed() {
    let good = request(1.into(), op("status", vec![]));
    let mut trailing = good.clone();
    trailing.push(0xc0);
    let mut two = good.clone();
    two.extend(&good);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("never used marker 0xc1", vec![0xc1]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("cut in a key", good[..5].to_vec()),
        ("trailing nil", trailing),
        ("two messages in one frame", two),
        ("str32 announcing 4 GiB", vec![0xdb, 0xff, 0xff, 0xff, 0xff]),
        (
            "bin32 announcing 4 GiB",
            vec![0xc6, 0xff, 0xff, 0xff, 0xff, 0],
        ),
        (
            "array32 announcing 4 G elements",
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        ),
        ("map16 with a missing value", vec![0xde, 0, 1, 0xa1, b'a']),
        ("JSON", br#"{"type":"hello"}"#.to_vec()),
    ];
    for (what, body) in cases {
        assert!(is_malformed::<ClientMessage>(&body), "{what}");
        assert!(is_malformed::<ServerMessage>(&body), "{what}");
    }
    assert!(decode_message::<ClientMessage>(&good).is_ok());
}

#[test]
fn nesting_is_limited_to_max_depth() {
    assert_eq!(MAX_DEPTH, 32);
    // Bare arrays around a nil: MAX_DEPTH - 1 levels are still MessagePack
    // (though no message), MAX_DEPTH levels are not accepted at all.
    let nested = |levels: usize| {
        let mut b = vec![0x91; levels];
        b.push(0xc0);
        b
    };
    assert!(!is_malformed::<ClientMessage>(&nested(MAX_DEPTH - 1)));
    assert!(is_malformed::<ClientMessage>(&nested(MAX_DEPTH)));
    assert!(is_malformed::<ClientMessage>(&nested(100_000)));

    // The same limit counts the message's own map: an ignored field may
    // nest MAX_DEPTH - 2 levels inside a hello.
    let hello_with = |levels: usize| {
        let mut b = pack(&map(vec![
            ("type", "hello".into()),
            ("protocol_version", 1.into()),
            ("client", "c".into()),
        ]));
        b[0] += 1; // one more entry in the fixmap
        b.extend(pack(&"x".into()));
        b.extend(nested(levels));
        b
    };
    assert!(decode_message::<ClientMessage>(&hello_with(MAX_DEPTH - 2)).is_ok());
    assert!(is_malformed::<ClientMessage>(&hello_with(MAX_DEPTH - 1)));
}

#[test]
fn valid_messagepack_that_is_no_message_is_invalid_with_the_id_when_there_is_one() {
    let with_id: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown operation",
            request(5.into(), op("frobnicate", vec![])),
        ),
        (
            "label of the wrong type",
            request(6.into(), op("backup_create", vec![("label", 42.into())])),
        ),
        (
            "nil for a field that has a default",
            request(6.into(), op("backup_create", vec![("label", Value::Nil)])),
        ),
        (
            "unknown scope",
            request(7.into(), op("backup_create", vec![("scope", "all".into())])),
        ),
        (
            "bool as an integer",
            request(7.into(), op("backup_create", vec![("wait", 1.into())])),
        ),
        ("missing id", request(8.into(), op("backup_show", vec![]))),
        (
            "a map with an id and no type",
            pack(&map(vec![("id", 3.into())])),
        ),
        (
            "hostile backup id",
            request(8.into(), op("backup_delete", vec![("id", "../x".into())])),
        ),
        (
            "missing op",
            pack(&map(vec![("type", "request".into()), ("id", 9.into())])),
        ),
        ("op is not a map", request(9.into(), "status".into())),
        (
            "unknown message type",
            pack(&map(vec![("type", "goodbye".into()), ("id", 10.into())])),
        ),
    ];
    for (what, body) in with_id {
        let id = invalid_id::<ClientMessage>(&body);
        assert!(id.is_some(), "{what}: no id recovered");
    }
    assert_eq!(
        invalid_id::<ClientMessage>(&request(5.into(), op("frobnicate", vec![]))),
        Some(5)
    );

    let without_id: Vec<(&str, Vec<u8>)> = vec![
        ("a bare integer", pack(&42.into())),
        ("nil", vec![0xc0]),
        ("an empty map", vec![0x80]),
        (
            "a request without id",
            pack(&map(vec![("type", "request".into())])),
        ),
        ("id as a string", request("3".into(), op("status", vec![]))),
        ("negative id", request((-1).into(), op("status", vec![]))),
        (
            "fractional id",
            request(Value::F64(1.0), op("status", vec![])),
        ),
        (
            "hello without client",
            pack(&map(vec![
                ("type", "hello".into()),
                ("protocol_version", 1.into()),
            ])),
        ),
        (
            "protocol_version beyond u32",
            pack(&map(vec![
                ("type", "hello".into()),
                ("protocol_version", (1u64 << 32).into()),
                ("client", "c".into()),
            ])),
        ),
    ];
    for (what, body) in without_id {
        assert_eq!(invalid_id::<ClientMessage>(&body), None, "{what}");
    }

    // Four million nils are one valid MessagePack value, and no message.
    let mut nils = vec![0xdd];
    nils.extend_from_slice(&4_000_000u32.to_be_bytes());
    nils.resize(5 + 4_000_000, 0xc0);
    assert_eq!(invalid_id::<ClientMessage>(&nils), None);
}

#[test]
fn integers_may_use_any_messagepack_width_and_fields_any_order() {
    // id 5 as int64 (0xd3), as uint64 (0xcf) and as a positive fixint.
    let status_op = pack(&op("status", vec![]));
    for id_bytes in [
        vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 5],
        vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 5],
        vec![0xcd, 0, 5],
        vec![0x05],
    ] {
        let mut body = vec![0x83];
        body.extend(pack(&"op".into()));
        body.extend(&status_op);
        body.extend(pack(&"id".into()));
        body.extend(&id_bytes);
        body.extend(pack(&"type".into()));
        body.extend(pack(&"request".into()));
        assert_eq!(
            decode_message::<ClientMessage>(&body).unwrap(),
            ClientMessage::Request {
                id: 5,
                op: Operation::Status
            },
            "{id_bytes:02x?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Messages on the wire

#[test]
fn every_message_round_trips() {
    for msg in all_client_messages() {
        round_trip(&msg);
    }
    for op in all_operations() {
        round_trip(&op);
    }
    for msg in all_server_messages() {
        round_trip(&msg);
    }
    for reply in all_replies() {
        round_trip(&reply);
    }
}

#[test]
fn messages_are_maps_tagged_by_type_with_the_documented_names() {
    let type_of = |bytes: Vec<u8>| {
        let value = unpack(&bytes);
        field(&value, "type").as_str().unwrap().to_owned()
    };
    let client: Vec<String> = all_client_messages()
        .iter()
        .map(|m| type_of(encode(m).unwrap()))
        .collect();
    assert!(client.iter().all(|t| t == "hello" || t == "request"));
    let ops: Vec<String> = all_operations()
        .iter()
        .map(|o| {
            let t = type_of(encode(o).unwrap());
            assert_eq!(t, o.name());
            t
        })
        .collect();
    for name in [
        "status",
        "backup_create",
        "backup_list",
        "backup_show",
        "backup_delete",
        "job_attach",
    ] {
        assert!(ops.iter().any(|t| t == name), "{name}");
    }
    let server: Vec<String> = all_server_messages()
        .iter()
        .map(|m| type_of(encode(m).unwrap()))
        .collect();
    for name in ["welcome", "progress", "reply", "error"] {
        assert!(server.iter().any(|t| t == name), "{name}");
    }
    let replies: Vec<String> = all_replies()
        .iter()
        .map(|r| type_of(encode(r).unwrap()))
        .collect();
    for name in ["status", "backup", "backups", "deleted"] {
        assert!(replies.iter().any(|t| t == name), "{name}");
    }
}

#[test]
fn records_have_the_documented_fields_with_nil_for_absent_values() {
    let rec = unpack(&encode(&queued_record()).unwrap());
    assert_eq!(
        keys(&rec),
        [
            "id",
            "label",
            "scope",
            "include_files",
            "origin",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "size_bytes",
            "sha256",
            "key_id",
            "database",
            "failure",
        ]
    );
    for absent in [
        "started_at",
        "finished_at",
        "size_bytes",
        "sha256",
        "key_id",
        "database",
        "failure",
    ] {
        assert!(field(&rec, absent).is_nil(), "{absent}");
    }
    assert_eq!(
        field(&rec, "created_at").as_str(),
        Some("2026-01-02T03:04:05Z")
    );

    let done = unpack(&encode(&succeeded_record()).unwrap());
    assert_eq!(
        field(&done, "started_at").as_str(),
        Some("2026-01-02T03:04:06.25Z")
    );
    assert_eq!(field(&done, "size_bytes").as_u64(), Some(123_456_789));
    assert_eq!(field(&done, "status").as_str(), Some("succeeded"));

    let failed = unpack(&encode(&failed_record()).unwrap());
    assert_eq!(
        field(&failed, "finished_at").as_str(),
        Some("2026-01-02T03:04:07+03:00")
    );
    let failure = field(&failed, "failure");
    assert_eq!(keys(failure), ["code", "reason"]);
    assert_eq!(field(failure, "code").as_str(), Some("unavailable"));
    assert_eq!(field(&failed, "origin").as_str(), Some("scheduled"));
    assert_eq!(field(&failed, "scope").as_str(), Some("schema"));

    let progress = unpack(&encode(&progress(Phase::Dump)).unwrap());
    assert_eq!(
        keys(&progress),
        [
            "job_id",
            "phase",
            "tables_done",
            "tables_total",
            "bytes_done"
        ]
    );

    let status = unpack(&encode(&busy_status()).unwrap());
    assert_eq!(
        keys(&status),
        [
            "version",
            "protocol_version",
            "started_at",
            "uptime_seconds",
            "max_parallel",
            "running",
            "queued",
            "jobs",
            "backups",
            "dev_mode",
        ]
    );
    let jobs = field(&status, "jobs").as_array().unwrap();
    assert_eq!(
        keys(&jobs[0]),
        [
            "id",
            "kind",
            "status",
            "queued_at",
            "started_at",
            "progress"
        ]
    );
    assert_eq!(field(&jobs[0], "kind").as_str(), Some("backup"));
    assert_eq!(
        field(&jobs[0], "started_at").as_str(),
        Some("2026-01-02T03:04:05.000000001Z")
    );
    assert!(field(&jobs[1], "started_at").is_nil());
}

#[test]
fn a_record_whose_optional_fields_are_left_out_still_decodes() {
    let minimal = map(vec![
        ("id", "20260102T030405Z-0a0b0c0d".into()),
        ("label", "nightly".into()),
        ("scope", "full".into()),
        ("include_files", false.into()),
        ("origin", "manual".into()),
        ("status", "queued".into()),
        ("created_at", "2026-01-02T03:04:05Z".into()),
    ]);
    let rec: BackupRecord = decode_message(&pack(&minimal)).unwrap();
    assert_eq!(rec, queued_record());
    // Other offsets and precisions are read as RFC 3339 too.
    let mut later = minimal.clone();
    if let Value::Map(pairs) = &mut later {
        pairs[6].1 = "2026-01-02T06:04:05.123+03:00".into();
    }
    let rec: BackupRecord = decode_message(&pack(&later)).unwrap();
    assert_eq!(rec.created_at, datetime!(2026-01-02 03:04:05.123 UTC));
    // A time that is not RFC 3339 is refused.
    if let Value::Map(pairs) = &mut later {
        pairs[6].1 = "2026-01-02 03:04:05".into();
    }
    assert!(decode_message::<BackupRecord>(&pack(&later)).is_err());
}

#[test]
fn error_bodies_leave_out_what_they_do_not_have() {
    let plain = unpack(
        &encode(&ServerMessage::Error {
            id: None,
            error: ErrorBody::new(ErrorCode::TooLarge, "frame too large"),
        })
        .unwrap(),
    );
    assert_eq!(keys(&plain), ["type", "error"]);
    assert_eq!(keys(field(&plain, "error")), ["code", "message"]);

    let full = unpack(
        &encode(&ServerMessage::Error {
            id: Some(7),
            error: ErrorBody {
                code: ErrorCode::Internal,
                message: "internal error".into(),
                correlation_id: Some("00000000deadbeef".into()),
            },
        })
        .unwrap(),
    );
    assert_eq!(keys(&full), ["type", "id", "error"]);
    assert_eq!(
        keys(field(&full, "error")),
        ["code", "message", "correlation_id"]
    );
    // An explicit nil id is read as no id.
    let nil_id = pack(&map(vec![
        ("type", "error".into()),
        ("id", Value::Nil),
        (
            "error",
            map(vec![("code", "invalid".into()), ("message", "m".into())]),
        ),
    ]));
    assert!(matches!(
        decode_message::<ServerMessage>(&nil_id).unwrap(),
        ServerMessage::Error { id: None, .. }
    ));
}

#[test]
fn omitted_request_fields_take_their_defaults() {
    let body = request(1.into(), op("backup_create", vec![]));
    assert_eq!(
        decode_message::<ClientMessage>(&body).unwrap(),
        ClientMessage::Request {
            id: 1,
            op: Operation::BackupCreate {
                label: String::new(),
                scope: Scope::Full,
                include_files: false,
                wait: false,
            }
        }
    );
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    let future = || -> (&'static str, Value) {
        (
            "added_in_v9",
            map(vec![("nested", Value::Array(vec![1.into(), "x".into()]))]),
        )
    };
    let hello = pack(&map(vec![
        ("type", "hello".into()),
        future(),
        ("protocol_version", 1.into()),
        ("client", "c".into()),
    ]));
    assert!(decode_message::<ClientMessage>(&hello).is_ok());
    let req = pack(&map(vec![
        ("type", "request".into()),
        ("id", 2.into()),
        future(),
        (
            "op",
            op(
                "backup_show",
                vec![("id", "20260102T030405Z-0a0b0c0d".into()), future()],
            ),
        ),
    ]));
    assert_eq!(
        decode_message::<ClientMessage>(&req).unwrap(),
        ClientMessage::Request {
            id: 2,
            op: Operation::BackupShow { id: backup_id() }
        }
    );
    let welcome = pack(&map(vec![
        ("type", "welcome".into()),
        ("protocol_version", 1.into()),
        ("server", "berkutd 9".into()),
        future(),
    ]));
    assert!(decode_message::<ServerMessage>(&welcome).is_ok());

    // A reply whose record carries a field this version does not know.
    let mut record = unpack(&encode(&succeeded_record()).unwrap());
    if let Value::Map(pairs) = &mut record {
        pairs.push(("verified_at".into(), "2026-01-03T00:00:00Z".into()));
    }
    let reply = pack(&map(vec![
        ("type", "reply".into()),
        ("id", 3.into()),
        (
            "reply",
            map(vec![("type", "backup".into()), ("backup", record)]),
        ),
    ]));
    assert_eq!(
        decode_message::<ServerMessage>(&reply).unwrap(),
        ServerMessage::Reply {
            id: 3,
            reply: Reply::Backup {
                backup: succeeded_record()
            }
        }
    );
}

#[test]
fn enumerations_use_the_documented_strings() {
    let s = |v: Vec<u8>| unpack(&v).as_str().unwrap().to_owned();
    let scopes = [
        (Scope::Full, "full"),
        (Scope::Database, "database"),
        (Scope::Schema, "schema"),
    ];
    for (scope, name) in scopes {
        assert_eq!(s(encode(&scope).unwrap()), name);
        assert_eq!(scope.as_str(), name);
    }
    for (origin, name) in [
        (Origin::Manual, "manual"),
        (Origin::Scheduled, "scheduled"),
        (Origin::Imported, "imported"),
    ] {
        assert_eq!(s(encode(&origin).unwrap()), name);
    }
    for (status, name) in [
        (BackupStatus::Queued, "queued"),
        (BackupStatus::Running, "running"),
        (BackupStatus::Succeeded, "succeeded"),
        (BackupStatus::Failed, "failed"),
    ] {
        assert_eq!(s(encode(&status).unwrap()), name);
    }
    for phase in [
        Phase::Queued,
        Phase::Connecting,
        Phase::Globals,
        Phase::Dump,
        Phase::Files,
        Phase::Finishing,
        Phase::Done,
    ] {
        assert_eq!(s(encode(&phase).unwrap()), phase.as_str());
    }
    assert_eq!(s(encode(&JobKind::Backup).unwrap()), "backup");
}

/// The table of `docs/PROTOCOL.md`, in its order.
const DOCUMENTED_CODES: [(ErrorCode, &str); 10] = [
    (ErrorCode::Invalid, "invalid"),
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::Conflict, "conflict"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::Maintenance, "maintenance"),
    (ErrorCode::TooLarge, "too_large"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::VersionMismatch, "version_mismatch"),
    (ErrorCode::Internal, "internal"),
    (ErrorCode::Unknown, "unknown"),
];

#[test]
fn error_codes_are_the_documented_snake_case_strings() {
    for (code, name) in DOCUMENTED_CODES {
        let bytes = encode(&code).unwrap();
        assert_eq!(bytes, pack(&name.into()), "{name}");
        assert_eq!(code.as_str(), name);
        assert_eq!(code.to_string(), name);
        assert_eq!(decode_message::<ErrorCode>(&bytes).unwrap(), code);
    }
}

#[test]
fn an_unknown_error_code_reads_as_unknown() {
    for newer in ["rate_limited", "", "NOT_FOUND", "Invalid"] {
        assert_eq!(
            decode_message::<ErrorCode>(&pack(&newer.into())).unwrap(),
            ErrorCode::Unknown,
            "{newer:?}"
        );
    }
    let from_a_newer_daemon = pack(&map(vec![
        ("type", "error".into()),
        ("id", 4.into()),
        (
            "error",
            map(vec![
                ("code", "rate_limited".into()),
                ("message", "slow down".into()),
                ("retry_after_seconds", 5.into()),
            ]),
        ),
    ]));
    assert_eq!(
        decode_message::<ServerMessage>(&from_a_newer_daemon).unwrap(),
        ServerMessage::Error {
            id: Some(4),
            error: ErrorBody::new(ErrorCode::Unknown, "slow down"),
        }
    );
    let failure = pack(&map(vec![
        ("code", "quota_exceeded".into()),
        ("reason", "r".into()),
    ]));
    assert_eq!(
        decode_message::<Failure>(&failure).unwrap().code,
        ErrorCode::Unknown
    );
}

#[test]
fn backup_ids_are_validated_wherever_they_are_decoded() {
    let hostile = [
        "",
        ".",
        "..",
        "../../etc/passwd",
        "/etc/passwd",
        "20260102T030405Z-0a0b0c0d/..",
        "20260102T030405Z-0a0b0c0d.bscc",
        "20260102T030405Z-0a0b0c0\0",
        "20260102T030405Z-0A0B0C0D",
        "20260102T030405Z-0a0b0c0",
        "20260102T030405Z-0a0b0c0d0",
        "20260102T030405Z_0a0b0c0d",
        "20260102t030405z-0a0b0c0d",
        "2026010xT030405Z-0a0b0c0d",
        " 20260102T030405Z-0a0b0c0d",
        "20260102T030405Z-0a0b0c0d\n",
        "２0260102T030405Z-0a0b0c0d",
    ];
    for bad in hostile {
        assert!(bad.parse::<BackupId>().is_err(), "{bad:?}");
        assert!(
            decode_message::<BackupId>(&pack(&bad.into())).is_err(),
            "{bad:?}"
        );
        for kind in ["backup_show", "backup_delete", "job_attach"] {
            let body = request(11.into(), op(kind, vec![("id", bad.into())]));
            assert_eq!(
                invalid_id::<ClientMessage>(&body),
                Some(11),
                "{kind} {bad:?}"
            );
        }
        let reply = pack(&map(vec![
            ("type", "reply".into()),
            ("id", 1.into()),
            (
                "reply",
                map(vec![("type", "deleted".into()), ("id", bad.into())]),
            ),
        ]));
        assert!(decode_message::<ServerMessage>(&reply).is_err(), "{bad:?}");
    }
    // Not a string at all.
    let body = request(12.into(), op("backup_show", vec![("id", 20260102.into())]));
    assert_eq!(invalid_id::<ClientMessage>(&body), Some(12));
    let good = "20260102T030405Z-0a0b0c0d";
    assert_eq!(
        decode_message::<BackupId>(&pack(&good.into()))
            .unwrap()
            .as_str(),
        good
    );
    assert_eq!(encode(&backup_id()).unwrap(), pack(&good.into()));
}

#[test]
fn the_documented_limits() {
    assert_eq!(MAX_FRAME_LEN, 4 * 1024 * 1024);
    assert_eq!(MAX_FRAME_LEN, 4_194_304);
    assert_eq!(MAX_LABEL_CHARS, 200);
    assert_eq!(PROTOCOL_VERSION, 1);
}

// ---------------------------------------------------------------------------
// The worked example of docs/PROTOCOL.md, byte for byte

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
    000000b3
    83
    a4 74797065 a5 7265706c79
    a2 6964 01
    a5 7265706c79 82
       a4 74797065 a6 737461747573
       a6 737461747573 8a
          a7 76657273696f6e a5 302e312e30
          b0 70726f746f636f6c5f76657273696f6e 01
          aa 737461727465645f6174 b4 323032362d30312d30325430333a30343a30355a
          ae 757074696d655f7365636f6e6473 2a
          ac 6d61785f706172616c6c656c 02
          a7 72756e6e696e67 00
          a6 717565756564 00
          a4 6a6f6273 90
          a7 6261636b757073 03
          a8 6465765f6d6f6465 c2";

fn example_messages() -> (ClientMessage, ClientMessage, ServerMessage, ServerMessage) {
    (
        ClientMessage::Hello {
            protocol_version: 1,
            client: "example 1.0".into(),
        },
        ClientMessage::Request {
            id: 1,
            op: Operation::Status,
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
fn protocol_doc() -> String {
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
    for limit in ["4 194 304", "200 characters", "`MAX_DEPTH` = 32"] {
        assert!(doc.contains(limit), "{limit}");
    }
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

// ---------------------------------------------------------------------------
// The Rust client against a scripted server

/// Binds a socket in a fresh directory and runs `script` on the first
/// connection.
async fn scripted_server<F, Fut>(script: F) -> (tempfile::TempDir, std::path::PathBuf)
where
    F: FnOnce(Connection<UnixStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berkutd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(Connection::new(stream)).await;
    });
    (dir, path)
}

#[tokio::test]
async fn the_client_says_hello_then_follows_progress_to_the_reply() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        match conn.read_message::<ClientMessage>().await.unwrap() {
            Some(ClientMessage::Hello {
                protocol_version,
                client,
            }) => {
                assert_eq!(protocol_version, PROTOCOL_VERSION);
                assert_eq!(client, "wire-test");
            }
            other => panic!("expected hello, got {other:?}"),
        }
        conn.write_message(&ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "scripted 1".into(),
        })
        .await
        .unwrap();
        let Some(ClientMessage::Request { id, op }) = conn.read_message().await.unwrap() else {
            panic!("expected a request");
        };
        assert!(matches!(op, Operation::BackupCreate { wait: true, .. }));
        for phase in [Phase::Queued, Phase::Dump] {
            conn.write_message(&ServerMessage::Progress {
                id,
                progress: progress(phase),
            })
            .await
            .unwrap();
        }
        conn.write_message(&ServerMessage::Reply {
            id,
            reply: Reply::Backup {
                backup: succeeded_record(),
            },
        })
        .await
        .unwrap();
        let Some(ClientMessage::Request { id: second, .. }) = conn.read_message().await.unwrap()
        else {
            panic!("expected a second request");
        };
        assert_ne!(second, id, "request ids are not reused");
        conn.write_message(&ServerMessage::Error {
            id: Some(second),
            error: ErrorBody::new(ErrorCode::NotFound, "there is no backup"),
        })
        .await
        .unwrap();
    })
    .await;

    let mut client = timeout(PATIENCE, Client::connect(&path, "wire-test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.server_version(), "scripted 1");
    let mut phases = Vec::new();
    let reply = timeout(
        PATIENCE,
        client.call_with_progress(
            Operation::BackupCreate {
                label: "nightly".into(),
                scope: Scope::Full,
                include_files: false,
                wait: true,
            },
            |p| phases.push(p.phase),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(phases, [Phase::Queued, Phase::Dump]);
    assert_eq!(
        reply,
        Reply::Backup {
            backup: succeeded_record()
        }
    );
    let err = timeout(
        PATIENCE,
        client.call(Operation::BackupShow { id: backup_id() }),
    )
    .await
    .unwrap();
    assert!(
        matches!(&err, Err(ClientError::Server(body)) if body.code == ErrorCode::NotFound),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_client_reports_a_refused_handshake() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        let _hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        conn.write_message(&ServerMessage::Error {
            id: None,
            error: ErrorBody::new(ErrorCode::VersionMismatch, "speak 2"),
        })
        .await
        .unwrap();
    })
    .await;
    match timeout(PATIENCE, Client::connect(&path, "old"))
        .await
        .unwrap()
    {
        Err(ClientError::Server(body)) => assert_eq!(body.code, ErrorCode::VersionMismatch),
        Err(other) => panic!("expected a server error, got {other:?}"),
        Ok(_) => panic!("expected a server error, got a client"),
    }
}

#[tokio::test]
async fn the_client_reports_a_connection_closed_before_the_reply() {
    let (_dir, path) = scripted_server(|mut conn| async move {
        let _hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        conn.write_message(&ServerMessage::Welcome {
            protocol_version: 1,
            server: "s".into(),
        })
        .await
        .unwrap();
        let _req: Option<ClientMessage> = conn.read_message().await.unwrap();
    })
    .await;
    let mut client = Client::connect(&path, "c").await.unwrap();
    let got = timeout(PATIENCE, client.call(Operation::Status))
        .await
        .unwrap();
    assert!(matches!(got, Err(ClientError::Closed)), "{got:?}");
}

// ---------------------------------------------------------------------------
// Properties

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Full),
        Just(Scope::Database),
        Just(Scope::Schema)
    ]
}

fn any_backup_id() -> impl Strategy<Value = BackupId> {
    "[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}".prop_map(|s| s.parse().unwrap())
}

fn any_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::Status),
        Just(Operation::list_first_page()),
        (".{0,250}", scope(), any::<bool>(), any::<bool>()).prop_map(
            |(label, scope, include_files, wait)| Operation::BackupCreate {
                label,
                scope,
                include_files,
                wait,
            }
        ),
        any_backup_id().prop_map(|id| Operation::BackupShow { id }),
        any_backup_id().prop_map(|id| Operation::BackupDelete { id }),
        any_backup_id().prop_map(|id| Operation::JobAttach { id }),
    ]
}

fn shape_of_a_backup_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_message::<ClientMessage>(&body);
        let _ = decode_message::<ServerMessage>(&body);
    }

    #[test]
    fn decoding_damaged_messages_never_panics(
        n in 0usize..64,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let messages = all_server_messages();
        let mut body = encode(&messages[n % messages.len()]).unwrap();
        let at = at.index(body.len());
        body[at] = byte;
        let _ = decode_message::<ServerMessage>(&body);
        let _ = decode_message::<ServerMessage>(&body[..cut.index(body.len())]);
        let requests = all_client_messages();
        let mut body = encode(&requests[n % requests.len()]).unwrap();
        let at = at.min(body.len() - 1);
        body[at] = byte;
        let _ = decode_message::<ClientMessage>(&body);
    }

    #[test]
    fn operations_round_trip(id in any::<u64>(), op in any_operation()) {
        let msg = ClientMessage::Request { id, op: op.clone() };
        let bytes = encode(&msg).unwrap();
        prop_assert_eq!(decode_message::<ClientMessage>(&bytes).unwrap(), msg);
        prop_assert_eq!(decode_message::<Operation>(&encode(&op).unwrap()).unwrap(), op);
    }

    #[test]
    fn a_backup_id_decodes_exactly_when_it_has_the_shape(s in "[0-9a-fTZ./-]{0,30}|[0-9]{8}T[0-9]{6}Z-[0-9a-fA-F]{7,9}|\\PC{0,30}") {
        let decoded = decode_message::<BackupId>(&pack(&Value::from(s.as_str())));
        prop_assert_eq!(decoded.is_ok(), shape_of_a_backup_id(&s));
    }

    #[test]
    fn error_bodies_round_trip(code in 0usize..10, message in "\\PC{0,80}", correlation in proptest::option::of("[0-9a-f]{16}")) {
        let error = ErrorBody { code: DOCUMENTED_CODES[code].0, message, correlation_id: correlation };
        let msg = ServerMessage::Error { id: Some(1), error };
        prop_assert_eq!(decode_message::<ServerMessage>(&encode(&msg).unwrap()).unwrap(), msg);
    }
}
