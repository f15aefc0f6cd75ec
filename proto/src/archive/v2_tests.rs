//! Tests of format version 2: compressed parts round-trip at both reading
//! depths, and payloads that only a buggy or hostile key holder could seal
//! (unknown codec, a codec byte flipped, a part that decompresses to more or
//! less than it records, a stored size that lies, a frame cut short) are
//! refused with their own reason.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::codec::Compressor;
use super::header::{DataKey, Header};
use super::key::{Keyring, MasterKey};
use super::payload::{END_TAG, PART_TAG};
use super::stream::Sealer;
use super::{verify, verify_with, ArchiveError, ArchiveWriter, Codec, Compression, Depth};
use crate::manifest::{
    DatabaseInfo, Manifest, Origin, PartEntry, PartKind, Scope, MANIFEST_PART, MANIFEST_VERSION,
};

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
            server_version: "15".into(),
            pg_dump_version: "pg_dump 15".into(),
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

/// Compressible content that is not trivial.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) % 61) as u8 ^ (i % 3) as u8)
        .collect()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let mut c = Compressor::new(3, 0).unwrap();
    let mut out = Vec::new();
    let mut emit = |b: &[u8]| {
        out.extend_from_slice(b);
        Ok(())
    };
    c.write(data, &mut emit).unwrap();
    c.finish(&mut emit).unwrap();
    out
}

/// A v2 part record: codec byte, stored bytes in blocks, and a trailer
/// with the given stored size, content size and digest.
struct RawPart<'a> {
    name: &'a str,
    codec_id: u8,
    stored: Vec<u8>,
    stored_size: u64,
    size: u64,
    sha256: [u8; 32],
}

impl<'a> RawPart<'a> {
    /// An honest part holding `content` stored with `codec`.
    fn honest(name: &'a str, codec: Codec, content: &[u8]) -> RawPart<'a> {
        let stored = match codec {
            Codec::None => content.to_vec(),
            Codec::Zstd => zstd(content),
        };
        RawPart {
            name,
            codec_id: codec.id(),
            stored_size: stored.len() as u64,
            stored,
            size: content.len() as u64,
            sha256: Sha256::digest(content).into(),
        }
    }

    fn entry(&self, codec: Codec) -> PartEntry {
        PartEntry {
            name: self.name.into(),
            kind: PartKind::Dump,
            size: self.size,
            sha256: hex::encode(self.sha256),
            codec: Some(codec),
            compressed_size: Some(self.stored_size),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![PART_TAG];
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.push(self.codec_id);
        for block in self.stored.chunks(1000) {
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(block);
        }
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&self.stored_size.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.sha256);
        out
    }
}

/// Seals a v2 payload holding `part` and a manifest listing `entry`.
fn archive_of(part: &RawPart<'_>, entry: PartEntry) -> (Vec<u8>, Keyring) {
    let json = serde_json::to_vec(&manifest(vec![entry])).unwrap();
    let mut payload = part.bytes();
    payload.extend(RawPart::honest(MANIFEST_PART, Codec::None, &json).bytes());
    payload.push(END_TAG);
    let key = MasterKey::generate();
    let data_key = DataKey::generate().unwrap();
    let header = Header::seal(&key, 2, 4096, [1u8; 32], [2u8; 7], &data_key).unwrap();
    let mut sealer = Sealer::new(header.to_bytes().to_vec(), &data_key, [2u8; 7], 4096);
    sealer.write_all(&payload).unwrap();
    (sealer.finish().unwrap(), Keyring::new(key))
}

fn at_depth(archive: &[u8], ring: &Keyring, depth: Depth) -> Result<Manifest, ArchiveError> {
    verify_with(archive, ring, depth, |_, _| Ok(()))
}

/// Reads every part to its end, as an extraction does.
fn extract(archive: &[u8], ring: &Keyring) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut parts = Vec::new();
    verify_with(archive, ring, Depth::Authenticate, |name, part| {
        let mut body = Vec::new();
        part.read_to_end(&mut body)?;
        parts.push((name.to_owned(), body));
        Ok(())
    })?;
    Ok(parts)
}

#[test]
fn compressed_parts_round_trip_and_the_manifest_records_both_sizes() {
    let key = MasterKey::generate();
    let big = content(300_000);
    for threads in [0, 2] {
        let mut w = ArchiveWriter::with_chunk_size(Vec::new(), &key, 4096)
            .unwrap()
            .with_compression(Compression::zstd(3, threads))
            .unwrap();
        assert_eq!(w.header().version, 2);
        for (name, body) in [("dump.pgcustom", &big[..]), ("empty.log", &b""[..])] {
            let mut part = w.begin_part(name, PartKind::Dump).unwrap();
            // Odd write sizes cross every internal buffer boundary.
            for piece in body.chunks(12_345) {
                part.write_all(piece).unwrap();
            }
            part.finish().unwrap();
        }
        let (bytes, written) = w.finish(manifest(Vec::new())).unwrap();
        assert!(bytes.len() < big.len() / 5, "{} bytes", bytes.len());
        let dump = &written.parts[0];
        assert_eq!(dump.codec, Some(Codec::Zstd));
        assert_eq!(dump.size, big.len() as u64);
        assert_eq!(dump.sha256, hex::encode(Sha256::digest(&big)));
        assert!(dump.compressed_size.unwrap() < dump.size / 5);

        let ring = Keyring::new(key.clone());
        for depth in [Depth::Authenticate, Depth::Deep] {
            assert_eq!(at_depth(&bytes, &ring, depth).unwrap(), written);
        }
        let parts = extract(&bytes, &ring).unwrap();
        assert_eq!(parts[0], ("dump.pgcustom".to_owned(), big.clone()));
        assert_eq!(parts[1], ("empty.log".to_owned(), Vec::new()));
    }
}

#[test]
fn version_1_cannot_be_asked_to_compress() {
    let key = MasterKey::generate();
    let v1 =
        ArchiveWriter::with_material(Vec::new(), &key, 1, 4096, [0; 32], [0; 7], [1; 32]).unwrap();
    assert!(matches!(
        v1.with_compression(Compression::zstd(3, 0)),
        Err(ArchiveError::Usage(_))
    ));
    let v2 = ArchiveWriter::new(Vec::new(), &key).unwrap();
    assert!(matches!(
        v2.with_compression(Compression::zstd(22, 0)),
        Err(ArchiveError::Usage(_))
    ));
}

#[test]
fn an_honest_hand_built_v2_archive_verifies_at_both_depths() {
    let body = content(20_000);
    for codec in [Codec::None, Codec::Zstd] {
        let part = RawPart::honest("dump.pgcustom", codec, &body);
        let (archive, ring) = archive_of(&part, part.entry(codec));
        for depth in [Depth::Authenticate, Depth::Deep] {
            at_depth(&archive, &ring, depth).unwrap();
        }
        assert_eq!(extract(&archive, &ring).unwrap()[0].1, body);
    }
}

#[test]
fn an_unknown_codec_id_is_refused_at_any_depth() {
    let body = content(5000);
    let mut part = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    part.codec_id = 7;
    let (archive, ring) = archive_of(&part, part.entry(Codec::Zstd));
    for depth in [Depth::Authenticate, Depth::Deep] {
        let err = at_depth(&archive, &ring, depth).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::UnknownCodec { part, id: 7 } if part == "dump.pgcustom"),
            "{err:?}"
        );
        assert!(err.to_string().contains("codec id 7"), "{err}");
    }
}

#[test]
fn a_flipped_codec_byte_is_refused() {
    let body = content(5000);
    // zstd bytes said to be stored as they are: the sizes cannot agree.
    let mut part = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    part.codec_id = Codec::None.id();
    let (archive, ring) = archive_of(&part, part.entry(Codec::Zstd));
    for depth in [Depth::Authenticate, Depth::Deep] {
        let err = at_depth(&archive, &ring, depth).unwrap_err();
        assert!(matches!(err, ArchiveError::Malformed(_)), "{err:?}");
    }
    // Plain bytes said to be zstd: they do not decompress.
    let mut part = RawPart::honest("dump.pgcustom", Codec::None, &body);
    part.codec_id = Codec::Zstd.id();
    let (archive, ring) = archive_of(&part, part.entry(Codec::Zstd));
    let err = at_depth(&archive, &ring, Depth::Deep).unwrap_err();
    assert!(matches!(err, ArchiveError::Decompress { .. }), "{err:?}");
    assert!(matches!(
        extract(&archive, &ring).unwrap_err(),
        ArchiveError::Decompress { .. }
    ));
    // The manifest saying another codec than the part: a mismatch even
    // without decompressing.
    let part = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    let (archive, ring) = archive_of(&part, part.entry(Codec::None));
    let err = at_depth(&archive, &ring, Depth::Authenticate).unwrap_err();
    assert!(matches!(err, ArchiveError::ManifestMismatch(_)), "{err:?}");
}

#[test]
fn a_part_decompressing_to_more_or_less_than_recorded_is_refused() {
    let body = content(50_000);
    // A bomb: the trailer (and the manifest) record far less than the frame
    // holds. Deep checks and extraction refuse it; the reader never holds
    // more than one buffer of it.
    let mut bomb = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    bomb.size = 1000;
    bomb.sha256 = Sha256::digest(&body[..1000]).into();
    let (archive, ring) = archive_of(&bomb, bomb.entry(Codec::Zstd));
    let err = at_depth(&archive, &ring, Depth::Deep).unwrap_err();
    assert!(
        err.to_string()
            .contains("decompresses to more than the 1000 bytes recorded"),
        "{err}"
    );
    assert!(matches!(
        extract(&archive, &ring).unwrap_err(),
        ArchiveError::Decompress { .. }
    ));
    // Less than recorded.
    let mut short = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    short.size = 60_000;
    let (archive, ring) = archive_of(&short, short.entry(Codec::Zstd));
    let err = at_depth(&archive, &ring, Depth::Deep).unwrap_err();
    assert!(
        err.to_string()
            .contains("decompresses to 50000 bytes, fewer than the 60000 recorded"),
        "{err}"
    );
}

#[test]
fn a_frame_cut_short_or_a_lying_stored_size_is_refused() {
    let body = content(50_000);
    let mut cut = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    cut.stored.truncate(cut.stored.len() - 5);
    cut.stored_size = cut.stored.len() as u64;
    let (archive, ring) = archive_of(&cut, cut.entry(Codec::Zstd));
    let err = at_depth(&archive, &ring, Depth::Deep).unwrap_err();
    assert!(matches!(err, ArchiveError::Decompress { .. }), "{err:?}");

    let mut lying = RawPart::honest("dump.pgcustom", Codec::Zstd, &body);
    lying.stored_size += 1;
    let (archive, ring) = archive_of(&lying, lying.entry(Codec::Zstd));
    let err = at_depth(&archive, &ring, Depth::Authenticate).unwrap_err();
    assert!(matches!(err, ArchiveError::Malformed(_)), "{err:?}");
}

#[test]
fn a_v1_archive_still_verifies_at_both_depths() {
    let key = MasterKey::generate();
    let mut w =
        ArchiveWriter::with_material(Vec::new(), &key, 1, 4096, [5; 32], [6; 7], [7; 32]).unwrap();
    let mut part = w.begin_part("dump.pgcustom", PartKind::Dump).unwrap();
    part.write_all(&content(9000)).unwrap();
    part.finish().unwrap();
    let (bytes, written) = w.finish(manifest(Vec::new())).unwrap();
    assert_eq!(bytes[9], 1);
    assert_eq!(written.parts[0].codec, None);
    let ring = Keyring::new(key);
    for depth in [Depth::Authenticate, Depth::Deep] {
        assert_eq!(at_depth(&bytes, &ring, depth).unwrap(), written);
    }
    assert!(verify(&bytes[..], &ring, |_, _| Ok(())).is_ok());
}

#[test]
fn zstd_failing_mid_stream_fails_the_part_and_the_archive_cannot_be_finished() {
    let key = MasterKey::generate();
    let mut w = ArchiveWriter::with_chunk_size(Vec::new(), &key, 4096)
        .unwrap()
        .with_compression(Compression::zstd(1, 0))
        .unwrap();
    let mut part = w.begin_part("dump.pgcustom", PartKind::Dump).unwrap();
    // zstd was promised 1000 bytes; the 200 000 written are refused by
    // zstd itself, part way through.
    part.pledge_for_test(1000);
    let err = part.write_all(&content(200_000)).unwrap_err();
    let err = ArchiveError::from_io(err);
    assert!(
        matches!(&err, ArchiveError::Compress { part, .. } if part == "dump.pgcustom"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("compressing part \"dump.pgcustom\" failed: "),
        "{err}"
    );
    drop(part);
    // The archive cannot be completed into something that looks whole.
    assert!(matches!(
        w.finish(manifest(Vec::new())),
        Err(ArchiveError::Usage(_))
    ));
}
