//! Round trips through the public archive API, and how the writer treats
//! misuse. Damage to archives is tested in `damage.rs`.

use std::io::{self, Read, Write};

use berkut_proto::archive::{
    verify, ArchiveError, ArchiveReader, ArchiveWriter, Header, Keyring, MasterKey, HEADER_LEN,
};
use berkut_proto::manifest::{PartKind, MANIFEST_PART};
use sha2::{Digest, Sha256};

use crate::support::{build, manifest, pattern, read_all, write_parts, Part, CHUNK, HEADER};

fn sizes() -> Vec<Part> {
    let chunk = CHUNK as usize;
    vec![
        ("empty.bin", PartKind::Log, Vec::new()),
        ("exact.bin", PartKind::Dump, pattern(chunk)),
        ("minus.bin", PartKind::Globals, pattern(chunk - 1)),
        ("plus.bin", PartKind::Files, pattern(chunk + 1)),
        ("multi.bin", PartKind::Dump, pattern(5 * chunk + 123)),
        // Larger than the writer's 64 KiB blocks.
        ("big.bin", PartKind::Files, pattern(150_000)),
    ]
}

#[test]
fn parts_of_every_size_round_trip() {
    let key = MasterKey::generate();
    let parts = sizes();
    let archive = build(&key, &parts);
    let (manifest, read) = read_all(&archive, &Keyring::new(key)).unwrap();
    assert_eq!(manifest.parts.len(), parts.len());
    for ((name, kind, content), (entry, (read_name, read_content))) in
        parts.iter().zip(manifest.parts.iter().zip(&read))
    {
        assert_eq!(entry.name, *name);
        assert_eq!(entry.kind, *kind);
        assert_eq!(entry.size, content.len() as u64);
        assert_eq!(entry.sha256, hex::encode(Sha256::digest(content)));
        assert_eq!(read_name, name);
        assert!(read_content == content, "content of {name} differs");
    }
    // The manifest itself is not handed to the callback.
    assert!(read.iter().all(|(name, _)| name != MANIFEST_PART));
}

#[test]
fn the_returned_manifest_is_the_one_in_the_archive() {
    let key = MasterKey::generate();
    let writer = ArchiveWriter::with_chunk_size(Vec::new(), &key, CHUNK).unwrap();
    let (archive, written) = write_parts(writer, &sizes());
    let read = verify(&archive[..], &Keyring::new(key), |_, _| Ok(())).unwrap();
    assert_eq!(read, written);
    assert_eq!(read.database, manifest().database);
}

#[test]
fn small_writes_and_default_chunk_size_round_trip() {
    let key = MasterKey::generate();
    let mut writer = ArchiveWriter::new(Vec::new(), &key).unwrap();
    assert_eq!(writer.header().chunk_size, 1 << 20);
    let content = pattern(1_500_000);
    let mut part = writer.begin_part("dump.pgcustom", PartKind::Dump).unwrap();
    for piece in content.chunks(777) {
        part.write_all(piece).unwrap();
    }
    part.flush().unwrap();
    let entry = part.finish().unwrap();
    assert_eq!(entry.size, content.len() as u64);
    assert_eq!(writer.parts(), std::slice::from_ref(&entry));
    let (archive, _) = writer.finish(manifest()).unwrap();
    let (_, read) = read_all(&archive, &Keyring::new(key)).unwrap();
    assert!(read[0].1 == content);
}

#[test]
fn the_reader_streams_parts_in_order() {
    let key = MasterKey::generate();
    let parts = sizes();
    let archive = build(&key, &parts);
    let mut reader = ArchiveReader::open(&archive[..], &Keyring::new(key.clone())).unwrap();
    assert_eq!(reader.header().key_id, key.key_id());
    let mut names = Vec::new();
    while let Some(mut part) = reader.next_part().unwrap() {
        names.push(part.name().to_owned());
        // Read only a little of some parts; the reader skips the rest.
        if names.len() % 2 == 0 {
            let mut some = [0u8; 3];
            let _ = part.read(&mut some).unwrap();
        }
    }
    let mut expected: Vec<String> = parts.iter().map(|p| p.0.to_owned()).collect();
    expected.push(MANIFEST_PART.to_owned());
    assert_eq!(names, expected);
    // The end stays the end.
    assert!(reader.next_part().unwrap().is_none());
}

#[test]
fn verify_skips_what_the_callback_leaves_and_passes_its_errors_on() {
    let key = MasterKey::generate();
    let ring = Keyring::new(key.clone());
    let archive = build(&key, &sizes());
    verify(&archive[..], &ring, |_, reader| {
        let mut first = [0u8; 1];
        reader.read(&mut first).map(|_| ())
    })
    .unwrap();
    let err = verify(&archive[..], &ring, |_, _| {
        Err(io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(matches!(err, ArchiveError::Io(_)), "{err:?}");
}

#[test]
fn the_writer_streams_instead_of_buffering() {
    /// Counts what reaches the file.
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let key = MasterKey::generate();
    let mut writer = ArchiveWriter::with_chunk_size(Counter(0), &key, CHUNK).unwrap();
    let mut part = writer.begin_part("big", PartKind::Dump).unwrap();
    let megabyte = vec![0u8; 1 << 20];
    for _ in 0..4 {
        part.write_all(&megabyte).unwrap();
    }
    part.finish().unwrap();
    let (counter, _) = writer.finish(manifest()).unwrap();
    let chunks = (4 << 20) / CHUNK as usize;
    assert!(counter.0 > HEADER + chunks * (CHUNK as usize + 16));
}

#[test]
fn writer_misuse_is_refused() {
    let key = MasterKey::generate();
    let mut writer = ArchiveWriter::with_chunk_size(Vec::new(), &key, CHUNK).unwrap();
    for bad in ["", ".", "..", "a/b", "a b", "ü", MANIFEST_PART] {
        assert!(
            matches!(
                writer.begin_part(bad, PartKind::Log),
                Err(ArchiveError::Usage(_))
            ),
            "{bad:?}"
        );
    }
    writer
        .begin_part("once", PartKind::Log)
        .unwrap()
        .finish()
        .unwrap();
    assert!(matches!(
        writer.begin_part("once", PartKind::Log),
        Err(ArchiveError::Usage(_))
    ));
    // A part dropped unfinished poisons the writer.
    drop(writer.begin_part("dropped", PartKind::Log).unwrap());
    assert!(matches!(
        writer.begin_part("later", PartKind::Log),
        Err(ArchiveError::Usage(_))
    ));
    assert!(matches!(
        writer.finish(manifest()),
        Err(ArchiveError::Usage(_))
    ));

    for size in [0, 4095, (16 << 20) + 1] {
        assert!(matches!(
            ArchiveWriter::with_chunk_size(Vec::new(), &key, size),
            Err(ArchiveError::BadChunkSize(s)) if s == size
        ));
    }
}

#[test]
fn every_archive_gets_fresh_key_material() {
    let key = MasterKey::generate();
    let a = build(&key, &[]);
    let b = build(&key, &[]);
    let ha = Header::read_from(&mut &a[..]).unwrap();
    let hb = Header::read_from(&mut &b[..]).unwrap();
    assert_eq!(ha.key_id, hb.key_id);
    assert_ne!(ha.salt, hb.salt);
    assert_ne!(ha.nonce_prefix, hb.nonce_prefix);
    assert_ne!(ha.wrapped_key, hb.wrapped_key);
    assert_ne!(a[HEADER..], b[HEADER..]);
}

#[test]
fn rewrap_moves_an_archive_to_a_new_key_without_touching_the_payload() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let archive = build(&old, &sizes());
    let header = Header::read_from(&mut &archive[..]).unwrap();
    let rewrapped = header.rewrap(&Keyring::new(old.clone()), &new).unwrap();
    let mut moved = archive.clone();
    moved[..HEADER_LEN].copy_from_slice(&rewrapped.to_bytes());
    assert_eq!(moved[HEADER_LEN..], archive[HEADER_LEN..]);

    let (_, before) = read_all(&archive, &Keyring::new(old.clone())).unwrap();
    let (_, after) = read_all(&moved, &Keyring::new(new.clone())).unwrap();
    assert_eq!(before, after);
    assert!(matches!(
        read_all(&moved, &Keyring::new(old.clone())),
        Err(ArchiveError::UnknownKey(id)) if id == new.key_id()
    ));
    // A keyring holding both keys reads both versions.
    let both = Keyring::new(new).with_other(old);
    read_all(&archive, &both).unwrap();
    read_all(&moved, &both).unwrap();
}

#[test]
fn a_payload_that_fills_whole_chunks_ends_with_an_empty_final_chunk() {
    let key = MasterKey::generate();
    let ring = Keyring::new(key.clone());
    // Size a part so that the plaintext is a whole number of chunks. The
    // block header and the manifest's digits of the size move the total a
    // little, so try the sizes around the estimate.
    let sealed = CHUNK as usize + 16;
    let plain_len = |archive: &[u8]| {
        let body = archive.len() - HEADER;
        body - 16 * body.div_ceil(sealed)
    };
    let chunk = CHUNK as usize;
    let base = plain_len(&build(&key, &[("p", PartKind::Dump, Vec::new())]));
    let guess = chunk - base % chunk;
    let archive = (guess.saturating_sub(16)..guess + 16)
        .map(|extra| build(&key, &[("p", PartKind::Dump, pattern(extra))]))
        .find(|archive| (archive.len() - HEADER) % sealed == 16)
        .expect("some size fills whole chunks");
    read_all(&archive, &ring).unwrap();
    // Without its empty final chunk the archive is truncated at a boundary.
    let cut = &archive[..archive.len() - 16];
    assert!(matches!(read_all(cut, &ring), Err(ArchiveError::Truncated)));
}
