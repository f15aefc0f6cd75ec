//! Each kind of damage to an archive must be refused with its own error, so
//! that an operator learns whether the key is wrong, the file was cut short,
//! or its bytes were changed.

use berkut_proto::archive::{ArchiveError, Keyring, MasterKey};
use berkut_proto::manifest::PartKind;

use crate::support::{build, pattern, read_all, CHUNK, HEADER, SEALED_CHUNK};

struct Sample {
    key: MasterKey,
    ring: Keyring,
    archive: Vec<u8>,
    /// Where the manifest part starts in the plaintext.
    manifest_at: usize,
}

fn sample() -> Sample {
    let key = MasterKey::generate();
    let dump = pattern(3 * CHUNK as usize + 500);
    let globals = b"CREATE ROLE app;\n".to_vec();
    // Each part is framed by a tag, a name length, the name, one block
    // header (the parts are smaller than a block), the block, and a 4-byte
    // zero, 8-byte size and 32-byte digest.
    let framed = |name: &str, len: usize| 3 + name.len() + 4 + len + 44;
    let manifest_at = framed("dump.pgcustom", dump.len()) + framed("globals.sql", globals.len());
    let archive = build(
        &key,
        &[
            ("dump.pgcustom", PartKind::Dump, dump),
            ("globals.sql", PartKind::Globals, globals),
        ],
    );
    Sample {
        ring: Keyring::new(key.clone()),
        key,
        archive,
        manifest_at,
    }
}

impl Sample {
    fn chunks(&self) -> usize {
        (self.archive.len() - HEADER).div_ceil(SEALED_CHUNK)
    }

    fn read(&self, archive: &[u8]) -> ArchiveError {
        match read_all(archive, &self.ring) {
            Ok(_) => panic!("a damaged archive verified"),
            Err(err) => err,
        }
    }

    fn flipped(&self, at: usize) -> ArchiveError {
        let mut damaged = self.archive.clone();
        damaged[at] ^= 0x01;
        self.read(&damaged)
    }
}

fn chunk_start(index: usize) -> usize {
    HEADER + index * SEALED_CHUNK
}

#[test]
fn the_sample_is_intact_and_spans_several_chunks() {
    let s = sample();
    read_all(&s.archive, &s.ring).unwrap();
    assert!(s.chunks() >= 4);
}

#[test]
fn header_damage_is_reported_by_field() {
    let s = sample();
    for at in 0..8 {
        assert!(
            matches!(s.flipped(at), ArchiveError::NotAnArchive),
            "magic byte {at}"
        );
    }
    assert!(matches!(s.flipped(9), ArchiveError::UnsupportedVersion(3)));
    let mut newer = s.archive.clone();
    newer[9] = 3;
    assert!(matches!(
        s.read(&newer),
        ArchiveError::UnsupportedVersion(3)
    ));
    newer[9] = 0;
    assert!(matches!(
        s.read(&newer),
        ArchiveError::UnsupportedVersion(0)
    ));
    assert!(matches!(s.flipped(11), ArchiveError::UnsupportedFlags(1)));
    assert!(matches!(
        s.flipped(10),
        ArchiveError::UnsupportedFlags(0x0100)
    ));
    // A chunk size in range is caught by authentication, one outside it
    // before any key is needed.
    assert!(matches!(s.flipped(13), ArchiveError::HeaderAuth));
    let mut huge = s.archive.clone();
    huge[12] = 0x10;
    assert!(matches!(
        s.read(&huge),
        ArchiveError::BadChunkSize(0x1000_1000)
    ));
    for at in 16..24 {
        assert!(
            matches!(s.flipped(at), ArchiveError::UnknownKey(_)),
            "key id byte {at}"
        );
    }
    // Salt, nonce prefix, the reserved byte and the wrapped key.
    for at in 24..112 {
        assert!(
            matches!(s.flipped(at), ArchiveError::HeaderAuth),
            "header byte {at}"
        );
    }
}

#[test]
fn a_wrong_key_is_an_unknown_key() {
    let s = sample();
    let stranger = Keyring::new(MasterKey::generate());
    match read_all(&s.archive, &stranger) {
        Err(ArchiveError::UnknownKey(id)) => {
            assert_eq!(id, s.key.key_id());
            let message = ArchiveError::UnknownKey(id).to_string();
            assert!(message.contains(&id.to_string()), "{message}");
        }
        other => panic!("expected UnknownKey, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_header_doctored_to_name_another_key_fails_authentication() {
    let s = sample();
    let other = MasterKey::generate();
    let ring = Keyring::new(other.clone()).with_other(s.key.clone());
    let mut doctored = s.archive.clone();
    doctored[16..24].copy_from_slice(&other.key_id().0);
    assert!(matches!(
        read_all(&doctored, &ring),
        Err(ArchiveError::HeaderAuth)
    ));
}

#[test]
fn changed_chunks_fail_authentication_at_their_index() {
    let s = sample();
    let last = s.chunks() - 1;
    let at_index = |err: ArchiveError| match err {
        ArchiveError::ChunkAuth { index } => index,
        other => panic!("expected ChunkAuth, got {other:?}"),
    };
    assert_eq!(at_index(s.flipped(chunk_start(0))), 0);
    assert_eq!(at_index(s.flipped(chunk_start(1) + 100)), 1);
    // The tag of a middle chunk.
    assert_eq!(at_index(s.flipped(chunk_start(2) - 1)), 1);
    assert_eq!(at_index(s.flipped(chunk_start(last) + 3)), last as u64);
    assert_eq!(at_index(s.flipped(s.archive.len() - 1)), last as u64);

    // A byte of the manifest: its name, 3 bytes into the part.
    let plain = s.manifest_at + 3;
    let chunk = plain / CHUNK as usize;
    let at = chunk_start(chunk) + plain % CHUNK as usize;
    assert_eq!(at_index(s.flipped(at)), chunk as u64);
}

#[test]
fn moved_or_foreign_chunks_fail_authentication() {
    let s = sample();
    let chunk = |archive: &[u8], i: usize| archive[chunk_start(i)..chunk_start(i + 1)].to_vec();
    let rebuild = |order: &[Vec<u8>], tail: &[u8]| {
        let mut out = s.archive[..HEADER].to_vec();
        for c in order {
            out.extend_from_slice(c);
        }
        out.extend_from_slice(tail);
        out
    };
    let (c0, c1, c2) = (
        chunk(&s.archive, 0),
        chunk(&s.archive, 1),
        chunk(&s.archive, 2),
    );
    let rest = &s.archive[chunk_start(3)..];
    let cases = [
        (
            "swapped",
            rebuild(&[c0.clone(), c2.clone(), c1.clone()], rest),
            1,
        ),
        (
            "duplicated",
            rebuild(&[c0.clone(), c1.clone(), c1.clone(), c2.clone()], rest),
            2,
        ),
        ("dropped", rebuild(&[c0.clone(), c2.clone()], rest), 1),
    ];
    for (what, archive, index) in cases {
        assert!(
            matches!(s.read(&archive), ArchiveError::ChunkAuth { index: i } if i == index),
            "{what}"
        );
    }
    // A chunk from another archive under the same master key: its data key
    // differs, so it does not authenticate.
    let other = sample_with_key(&s.key);
    let mixed = rebuild(&[c0, chunk(&other, 1), c2], rest);
    assert!(matches!(
        s.read(&mixed),
        ArchiveError::ChunkAuth { index: 1 }
    ));
}

fn sample_with_key(key: &MasterKey) -> Vec<u8> {
    build(
        key,
        &[(
            "dump.pgcustom",
            PartKind::Dump,
            pattern(3 * CHUNK as usize + 500),
        )],
    )
}

#[test]
fn truncation_is_reported_where_it_can_be_told_apart() {
    let s = sample();
    let last = s.chunks() - 1;
    // Cut inside the header, or at a chunk boundary, or leaving less than a
    // tag: truncated.
    for len in [
        0,
        5,
        8,
        50,
        HEADER - 1,
        HEADER,
        chunk_start(1),
        chunk_start(last),
        chunk_start(1) + 15,
    ] {
        assert!(
            matches!(s.read(&s.archive[..len]), ArchiveError::Truncated),
            "cut at {len}"
        );
    }
    // Cut inside a chunk: that chunk now fails to authenticate.
    for (len, index) in [(chunk_start(1) + 100, 1), (s.archive.len() - 1, last)] {
        assert!(
            matches!(s.read(&s.archive[..len]), ArchiveError::ChunkAuth { index: i } if i == index as u64),
            "cut at {len}"
        );
    }
}

#[test]
fn appended_bytes_are_trailing_data() {
    let s = sample();
    let last_chunk = s.archive[chunk_start(s.chunks() - 1)..].to_vec();
    let appendages = [
        vec![0u8],
        vec![0xFF; 17],
        vec![7u8; 2 * SEALED_CHUNK],
        last_chunk,
        s.archive.clone(),
    ];
    for extra in appendages {
        let mut longer = s.archive.clone();
        longer.extend_from_slice(&extra);
        assert!(
            matches!(s.read(&longer), ArchiveError::TrailingData),
            "{} bytes appended",
            extra.len()
        );
    }
}

#[test]
fn error_messages_carry_no_key_material() {
    let s = sample();
    let secret = s.key.to_base64();
    let errors = [
        s.flipped(0),
        s.flipped(9),
        s.flipped(20),
        s.flipped(30),
        s.flipped(chunk_start(1)),
        s.read(&s.archive[..HEADER]),
    ];
    for err in errors {
        let message = err.to_string();
        assert!(!message.contains(secret.as_str()), "{message}");
        assert!(!message.is_empty());
    }
}
