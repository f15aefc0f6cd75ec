//! Tests of the reader against payloads that only a buggy or hostile writer
//! holding the key could produce: they are sealed correctly, so every chunk
//! authenticates, and the reader must still refuse their structure.

use proptest::prelude::*;

use super::*;
use crate::archive::header::DataKey;
use crate::archive::key::MasterKey;
use crate::archive::stream::Sealer;
use crate::archive::ArchiveWriter;
use crate::manifest::{DatabaseInfo, Origin, PartEntry, PartKind, Scope};

/// Seals `plaintext` as the payload of an archive with chunk size 4096.
fn seal(plaintext: &[u8]) -> (Vec<u8>, Keyring) {
    let key = MasterKey::generate();
    let data_key = DataKey::generate().unwrap();
    let header = Header::seal(&key, 1, 4096, [1u8; 32], [2u8; 7], &data_key).unwrap();
    let mut sealer = Sealer::new(header.to_bytes().to_vec(), &data_key, [2u8; 7], 4096);
    sealer.write_all(plaintext).unwrap();
    (sealer.finish().unwrap(), Keyring::new(key))
}

/// The bytes of one part, with an optional wrong trailer.
fn part(name: &str, content: &[u8], size: Option<u64>, digest: Option<[u8; 32]>) -> Vec<u8> {
    let mut out = vec![PART_TAG];
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    for block in content.chunks(1000) {
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&size.unwrap_or(content.len() as u64).to_be_bytes());
    out.extend_from_slice(&digest.unwrap_or_else(|| Sha256::digest(content).into()));
    out
}

fn manifest(parts: Vec<PartEntry>) -> Manifest {
    let at = time::OffsetDateTime::UNIX_EPOCH;
    Manifest {
        manifest_version: MANIFEST_VERSION,
        backup_id: "19700101T000000Z-00000000".into(),
        label: String::new(),
        scope: Scope::Full,
        include_files: false,
        origin: Origin::Manual,
        created_at: at,
        finished_at: at,
        database: DatabaseInfo {
            name: "db".into(),
            server_version: "17".into(),
            pg_dump_version: "pg_dump 17".into(),
        },
        parts,
        timings: Vec::new(),
        tool: "test".into(),
        tables: None,
        properties: None,
        objects: None,
        files: Vec::new(),
    }
}

fn entry(name: &str, content: &[u8]) -> PartEntry {
    PartEntry {
        name: name.into(),
        kind: PartKind::Dump,
        size: content.len() as u64,
        sha256: hex::encode(Sha256::digest(content)),
        codec: None,
        compressed_size: None,
    }
}

fn manifest_part(m: &Manifest) -> Vec<u8> {
    part(MANIFEST_PART, &serde_json::to_vec(m).unwrap(), None, None)
}

fn verify_payload(payload: &[u8]) -> Result<Manifest, ArchiveError> {
    let (archive, ring) = seal(payload);
    verify(&archive[..], &ring, |_, _| Ok(()))
}

#[test]
fn a_hand_built_payload_verifies() {
    let mut payload = part("a.bin", b"hello", None, None);
    payload.extend(manifest_part(&manifest(vec![entry("a.bin", b"hello")])));
    payload.push(END_TAG);
    let m = verify_payload(&payload).unwrap();
    assert_eq!(m.parts.len(), 1);
}

#[test]
fn structural_faults_are_malformed() {
    let good_manifest = manifest_part(&manifest(vec![]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty payload", vec![]),
        ("no end marker", good_manifest.clone()),
        ("no manifest", vec![END_TAG]),
        ("unknown tag", vec![0x02]),
        (
            "data after end",
            [good_manifest.clone(), vec![END_TAG, 0]].concat(),
        ),
        (
            "part after manifest",
            [
                good_manifest.clone(),
                part("x", b"", None, None),
                vec![END_TAG],
            ]
            .concat(),
        ),
        (
            "zero-length name",
            [vec![PART_TAG, 0, 0], vec![END_TAG]].concat(),
        ),
        (
            "bad name",
            [part("a/b", b"", None, None), vec![END_TAG]].concat(),
        ),
        (
            "dot-dot name",
            [part("..", b"", None, None), vec![END_TAG]].concat(),
        ),
        (
            "repeated name",
            [part("x", b"", None, None), part("x", b"", None, None)].concat(),
        ),
        ("huge block", vec![PART_TAG, 0, 1, b'x', 0x01, 0, 0, 1]),
        (
            "payload ends in part",
            vec![PART_TAG, 0, 1, b'x', 0, 0, 0, 9, 1, 2],
        ),
    ];
    for (what, payload) in cases {
        match verify_payload(&payload) {
            Err(ArchiveError::Malformed(_)) => {}
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn wrong_trailers_are_digest_mismatches() {
    for payload in [
        part("a", b"abc", Some(4), None),
        part("a", b"abc", None, Some([0u8; 32])),
    ] {
        let payload = [payload, vec![END_TAG]].concat();
        match verify_payload(&payload) {
            Err(ArchiveError::DigestMismatch { part }) => assert_eq!(part, "a"),
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
    }
}

#[test]
fn manifest_faults_are_reported_as_such() {
    let a = part("a", b"abc", None, None);
    let mut other_digest = entry("a", b"abc");
    other_digest.sha256 = hex::encode([0u8; 32]);
    let mismatches = [
        manifest(vec![]),
        manifest(vec![entry("b", b"abc")]),
        manifest(vec![entry("a", b"abcd")]),
        manifest(vec![other_digest]),
        manifest(vec![entry("a", b"abc"), entry("b", b"")]),
    ];
    for m in mismatches {
        let payload = [a.clone(), manifest_part(&m), vec![END_TAG]].concat();
        assert!(
            matches!(
                verify_payload(&payload),
                Err(ArchiveError::ManifestMismatch(_))
            ),
            "{m:?}"
        );
    }
    let mut newer = manifest(vec![entry("a", b"abc")]);
    newer.manifest_version = 2;
    for json in [b"{not json".to_vec(), serde_json::to_vec(&newer).unwrap()] {
        let payload = [
            a.clone(),
            part(MANIFEST_PART, &json, None, None),
            vec![END_TAG],
        ]
        .concat();
        assert!(matches!(
            verify_payload(&payload),
            Err(ArchiveError::ManifestInvalid(_))
        ));
    }
}

#[test]
fn the_reader_stops_for_good_after_an_error() {
    let payload = [part("a", b"abc", Some(9), None), vec![END_TAG]].concat();
    let (archive, ring) = seal(&payload);
    let mut reader = ArchiveReader::open(&archive[..], &ring).unwrap();
    let mut part = reader.next_part().unwrap().unwrap();
    let err = io::copy(&mut part, &mut io::sink()).unwrap_err();
    assert!(matches!(
        ArchiveError::from_io(err),
        ArchiveError::DigestMismatch { .. }
    ));
    assert!(matches!(reader.next_part(), Err(ArchiveError::Usage(_))));
}

#[test]
fn unread_parts_are_drained_and_checked() {
    let payload = [
        part("a", &[7u8; 5000], None, Some([0u8; 32])),
        manifest_part(&manifest(vec![])),
        vec![END_TAG],
    ]
    .concat();
    let (archive, ring) = seal(&payload);
    let mut reader = ArchiveReader::open(&archive[..], &ring).unwrap();
    let mut part = reader.next_part().unwrap().unwrap();
    assert_eq!(part.name(), "a");
    let mut first = [0u8; 10];
    part.read_exact(&mut first).unwrap();
    match reader.next_part() {
        Err(ArchiveError::DigestMismatch { part }) => assert_eq!(part, "a"),
        other => panic!(
            "expected DigestMismatch, got {:?}",
            other.map(|p| p.is_some())
        ),
    }
}

#[test]
fn a_writer_built_archive_reads_part_by_part() {
    let key = MasterKey::generate();
    let mut writer = ArchiveWriter::with_chunk_size(Vec::new(), &key, 4096).unwrap();
    let mut p = writer.begin_part("x", PartKind::Dump).unwrap();
    io::Write::write_all(&mut p, &[3u8; 10_000]).unwrap();
    p.finish().unwrap();
    let (archive, _) = writer.finish(manifest(vec![])).unwrap();
    let mut reader = ArchiveReader::open(&archive[..], &Keyring::new(key)).unwrap();
    let mut seen = Vec::new();
    while let Some(mut part) = reader.next_part().unwrap() {
        let mut content = Vec::new();
        part.read_to_end(&mut content).unwrap();
        // A read after the end stays at the end.
        assert_eq!(part.read(&mut [0u8; 4]).unwrap(), 0);
        seen.push((part.name().to_owned(), content.len()));
    }
    assert_eq!(seen[0], ("x".to_owned(), 10_000));
    assert_eq!(seen[1].0, MANIFEST_PART);
    assert!(reader.next_part().unwrap().is_none());
}

/// Payloads that start like real ones, so the fuzzing reaches past the
/// first byte.
fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    let good = [
        part("a", b"abc", None, None),
        manifest_part(&manifest(vec![entry("a", b"abc")])),
        vec![END_TAG],
    ]
    .concat();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (0..good.len(), any::<u8>(), 0..good.len()).prop_map(move |(at, x, cut)| {
            let mut p = good.clone();
            p[at] ^= x;
            p.truncate(cut.max(at + 1));
            p
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_garbage_never_panics(payload in payload_strategy()) {
        let (archive, ring) = seal(&payload);
        let _ = verify(&archive[..], &ring, |_, r| io::copy(r, &mut io::sink()).map(|_| ()));
    }
}
