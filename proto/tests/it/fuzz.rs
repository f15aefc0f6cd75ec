//! Property tests: no change to an archive verifies, and no input, however
//! hostile, makes the reader panic. The case counts are small so that the
//! suite stays fast; the properties are cheap to run for longer by raising
//! `PROPTEST_CASES`.

use std::io::Read;
use std::sync::OnceLock;

use berkut_proto::archive::{ArchiveReader, Keyring, MasterKey};
use berkut_proto::manifest::PartKind;
use proptest::prelude::*;

use crate::support::{build, pattern, read_all, CHUNK, HEADER};

/// One archive shared by all cases, built once.
fn sample() -> &'static (Vec<u8>, Keyring) {
    static SAMPLE: OnceLock<(Vec<u8>, Keyring)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let key = MasterKey::generate();
        let archive = build(
            &key,
            &[
                (
                    "dump.pgcustom",
                    PartKind::Dump,
                    pattern(2 * CHUNK as usize + 300),
                ),
                ("empty", PartKind::Log, Vec::new()),
                (
                    "globals.sql",
                    PartKind::Globals,
                    b"CREATE ROLE app;\n".to_vec(),
                ),
            ],
        );
        (archive, Keyring::new(key))
    })
}

/// Reads everything the reader hands out, part by part, ignoring errors.
fn read_by_parts(input: &[u8], ring: &Keyring) {
    if let Ok(mut reader) = ArchiveReader::open(input, ring) {
        while let Ok(Some(mut part)) = reader.next_part() {
            let mut sink = Vec::new();
            if part.read_to_end(&mut sink).is_err() {
                break;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_flipped_byte_verifies(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (archive, ring) = sample();
        let mut damaged = archive.clone();
        let at = at.index(damaged.len());
        damaged[at] ^= mask;
        prop_assert!(read_all(&damaged, ring).is_err());
        read_by_parts(&damaged, ring);
    }

    #[test]
    fn no_truncation_verifies(len in any::<prop::sample::Index>()) {
        let (archive, ring) = sample();
        let cut = &archive[..len.index(archive.len())];
        prop_assert!(read_all(cut, ring).is_err());
        read_by_parts(cut, ring);
    }

    #[test]
    fn no_appended_bytes_verify(extra in prop::collection::vec(any::<u8>(), 1..5000)) {
        let (archive, ring) = sample();
        let mut longer = archive.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(read_all(&longer, ring).is_err());
    }

    #[test]
    fn several_changes_never_verify(
        changes in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (archive, ring) = sample();
        let mut damaged = archive.clone();
        for (at, mask) in changes {
            let at = at.index(damaged.len());
            damaged[at] ^= mask;
        }
        if truncate {
            damaged.truncate(cut.index(damaged.len()));
        }
        prop_assert!(read_all(&damaged, ring).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let (_, ring) = sample();
        prop_assert!(read_all(&bytes, ring).is_err());
        read_by_parts(&bytes, ring);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..(3 * CHUNK as usize)),
    ) {
        let (archive, ring) = sample();
        let mut input = archive[..HEADER].to_vec();
        input.extend_from_slice(&body);
        prop_assert!(read_all(&input, ring).is_err());
        read_by_parts(&input, ring);
    }

    #[test]
    fn arbitrary_headers_never_panic(
        keep in 0usize..=HEADER,
        random in prop::collection::vec(any::<u8>(), HEADER),
    ) {
        // Keep the first `keep` bytes of a real header so that parsing gets
        // past the fields before them.
        let (archive, ring) = sample();
        let mut input = archive.clone();
        input[keep..HEADER].copy_from_slice(&random[keep..]);
        let changed = input[..HEADER] != archive[..HEADER];
        prop_assert_eq!(read_all(&input, ring).is_ok(), !changed);
    }
}
