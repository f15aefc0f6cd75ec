//! Builds a throwaway archive of dump-like text and times reading it back, so
//! that the archive code's throughput can be measured without a database:
//! `cargo run --release -p berkut-proto --example archive_speed -- DIR MIB`
//! writes `DIR/bench.bscc` (zstd level 1, like a backup) and `DIR/bench.key`,
//! then prints the seconds and GB/s of authentication and of a deep check.
//! A third argument `auth` or `deep` times one check of the existing
//! archive; `primitives` times SHA-256, Poly1305 and ChaCha20-Poly1305 alone
//! (compare `openssl speed -evp sha256`). docs/PERFORMANCE.md has figures.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Instant;

use berkut_proto::archive::{
    verify_with, ArchiveWriter, Compression, Depth, HashingReadAhead, Keyring, MasterKey,
};
use berkut_proto::manifest::{DatabaseInfo, Manifest, Origin, PartKind, Scope, MANIFEST_VERSION};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: archive_speed DIR MIB")?);
    let mib: u64 = args.next().ok_or("usage: archive_speed DIR MIB")?.parse()?;
    // A third argument names one depth to time on the existing archive.
    let only = args.next();
    if only.as_deref() == Some("primitives") {
        return primitives();
    }
    if let Some(only) = only {
        let text = std::fs::read_to_string(dir.join("bench.key"))?;
        let keyring = Keyring::new(MasterKey::parse(&text)?);
        let depth = if only == "deep" {
            Depth::Deep
        } else {
            Depth::Authenticate
        };
        return time_verify(&dir.join("bench.bscc"), &keyring, depth);
    }
    let key = MasterKey::generate();
    let key_path = dir.join("bench.key");
    let mut kf = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)?;
    kf.write_all(key.to_base64().as_bytes())?;
    let path = dir.join("bench.bscc");

    let started = Instant::now();
    let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    let mut writer = ArchiveWriter::new(file, &key)?.with_compression(Compression::zstd(1, 2))?;
    let mut part = writer.begin_part("dump.pgcustom", PartKind::Dump)?;
    // Rows of text with a pseudo-random md5-like column: compresses roughly
    // like the benchmark database's dump (about 4:1 at level 1).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut line = String::new();
    let mut written = 0u64;
    let mut i = 0u64;
    while written < mib << 20 {
        line.clear();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        use std::fmt::Write as _;
        writeln!(
            line,
            "{i}\t2026-12-02 16:{:02}:{:02}+00\tuser{}@example.com\t{:016x}{:016x}\t{{\"tier\": {}}}",
            i % 60,
            (i / 60) % 60,
            state % 100_000,
            state,
            state.rotate_left(17),
            state % 5
        )?;
        part.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    part.finish()?;
    let (mut file, _) = writer.finish(manifest())?;
    file.flush()?;
    drop(file);
    let size = std::fs::metadata(&path)?.len();
    println!(
        "wrote {} ({} bytes of archive for {} MiB of content) in {:.2} s",
        path.display(),
        size,
        mib,
        started.elapsed().as_secs_f64()
    );

    let keyring = Keyring::new(key);
    for depth in [Depth::Authenticate, Depth::Deep] {
        for _ in 0..2 {
            time_verify(&path, &keyring, depth)?;
        }
    }
    Ok(())
}

fn time_verify(
    path: &std::path::Path,
    keyring: &Keyring,
    depth: Depth,
) -> Result<(), Box<dyn std::error::Error>> {
    let size = std::fs::metadata(path)?.len();
    let started = Instant::now();
    let mut reader = HashingReadAhead::new(File::open(path)?);
    verify_with(&mut reader, keyring, depth, |_, _| Ok(()))?;
    reader.finish()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{depth:?}: {secs:.3} s, {:.2} GB/s of archive",
        size as f64 / secs / 1e9
    );
    Ok(())
}

fn manifest() -> Manifest {
    let now = time::OffsetDateTime::now_utc();
    Manifest {
        manifest_version: MANIFEST_VERSION,
        backup_id: "20261202T000000Z-0a0b0c0d".into(),
        label: "bench".into(),
        scope: Scope::Database,
        include_files: false,
        origin: Origin::Manual,
        created_at: now,
        finished_at: now,
        database: DatabaseInfo {
            name: "bench".into(),
            server_version: "15".into(),
            pg_dump_version: "pg_dump (PostgreSQL) 15".into(),
        },
        parts: Vec::new(),
        timings: Vec::new(),
        tool: "archive_speed".into(),
        tables: None,
        properties: None,
        objects: None,
        files: Vec::new(),
    }
}

/// Times the primitives alone over 64 MiB held in memory, for comparison
/// with `openssl speed -evp sha256` and `-evp chacha20-poly1305`.
fn primitives() -> Result<(), Box<dyn std::error::Error>> {
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    use poly1305::universal_hash::UniversalHash;
    use sha2::{Digest, Sha256};
    let mut data = vec![0x5Au8; 64 << 20];
    let gb = data.len() as f64 / 1e9;
    for _ in 0..3 {
        let t = Instant::now();
        let d = Sha256::digest(&data);
        println!(
            "sha256: {:.2} GB/s ({:02x})",
            gb / t.elapsed().as_secs_f64(),
            d[0]
        );
        let t = Instant::now();
        let mut mac = poly1305::Poly1305::new(&poly1305::Key::from([7u8; 32]));
        mac.update_padded(&data);
        let tag = mac.finalize();
        println!(
            "poly1305: {:.2} GB/s ({:02x})",
            gb / t.elapsed().as_secs_f64(),
            tag[0]
        );
        let t = Instant::now();
        let aead = ChaCha20Poly1305::new(&[1u8; 32].into());
        for chunk in data.chunks_mut(1 << 20) {
            aead.encrypt_inout_detached(&[0u8; 12].into(), &[], chunk.into())
                .map_err(|_| "seal")?;
        }
        println!(
            "chacha20poly1305 seal: {:.2} GB/s",
            gb / t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
