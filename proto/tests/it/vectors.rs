//! Test vectors: archives built from fixed key material, committed under
//! `proto/tests/vectors/` with a listing of their inputs (`vectors.json`), so
//! that a change to the format cannot go unnoticed and a second
//! implementation can check itself byte for byte.
//!
//! Run with `BERKUT_WRITE_VECTORS=1` to rewrite the files after a deliberate
//! format change (which also needs a new format version).

use std::fs;
use std::path::PathBuf;

use berkut_proto::archive::{ArchiveWriter, Compression, Header, Keyring, MasterKey, HEADER_LEN};
use berkut_proto::manifest::{Manifest, PartKind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{pattern, read_all, Part};

struct Vector {
    file: &'static str,
    version: u16,
    compression: Compression,
    chunk_size: u32,
    salt: [u8; 32],
    nonce_prefix: [u8; 7],
    data_key: [u8; 32],
    parts: Vec<Part>,
    /// How to make each part's content, for the listing.
    contents: Vec<Value>,
}

/// `N` consecutive byte values from `start`.
fn run<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// The master key of every vector: the bytes 0x00 to 0x1f.
fn master_key() -> MasterKey {
    MasterKey::from_bytes(run(0x00))
}

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            file: "v1-small.bscc",
            version: 1,
            compression: Compression::NONE,
            chunk_size: 4096,
            salt: run(0x20),
            nonce_prefix: run(0x40),
            data_key: run(0x60),
            parts: vec![("dump.pgcustom", PartKind::Dump, b"hello, berkut\n".to_vec())],
            contents: vec![json!({ "utf8": "hello, berkut\n" })],
        },
        Vector {
            file: "v1-multichunk.bscc",
            version: 1,
            compression: Compression::NONE,
            chunk_size: 4096,
            salt: run(0x80),
            nonce_prefix: run(0xa0),
            data_key: run(0xc0),
            parts: vec![
                ("dump.pgcustom", PartKind::Dump, pattern(12_000)),
                (
                    "globals.sql",
                    PartKind::Globals,
                    b"CREATE ROLE app;\n".to_vec(),
                ),
                ("backup.log", PartKind::Log, Vec::new()),
            ],
            contents: vec![
                json!({ "length": 12_000, "rule": "byte i is i mod 251" }),
                json!({ "utf8": "CREATE ROLE app;\n" }),
                json!({ "utf8": "" }),
            ],
        },
        Vector {
            file: "v2-zstd.bscc",
            version: 2,
            compression: Compression::zstd(3, 0),
            chunk_size: 4096,
            salt: run(0x10),
            nonce_prefix: run(0x30),
            data_key: run(0x50),
            parts: vec![
                ("dump.pgcustom", PartKind::Dump, pattern(12_000)),
                (
                    "globals.sql",
                    PartKind::Globals,
                    b"CREATE ROLE app;\n".to_vec(),
                ),
                ("backup.log", PartKind::Log, Vec::new()),
            ],
            contents: vec![
                json!({ "length": 12_000, "rule": "byte i is i mod 251" }),
                json!({ "utf8": "CREATE ROLE app;\n" }),
                json!({ "utf8": "" }),
            ],
        },
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn regenerate() -> bool {
    std::env::var_os("BERKUT_WRITE_VECTORS").is_some()
}

fn build_vector(v: &Vector) -> (Vec<u8>, Manifest) {
    let writer = ArchiveWriter::with_material(
        Vec::new(),
        &master_key(),
        v.version,
        v.chunk_size,
        v.salt,
        v.nonce_prefix,
        v.data_key,
    )
    .unwrap()
    .with_compression(v.compression)
    .unwrap();
    crate::support::write_parts(writer, &v.parts)
}

fn describe(v: &Vector, bytes: &[u8], manifest: &Manifest) -> Value {
    let parts: Vec<Value> = manifest
        .parts
        .iter()
        .zip(&v.contents)
        .map(|(entry, content)| {
            json!({
                "name": entry.name,
                "kind": entry.kind,
                "size": entry.size,
                "sha256": entry.sha256,
                "codec": entry.codec,
                "compressed_size": entry.compressed_size,
                "content": content,
            })
        })
        .collect();
    let key = master_key();
    // The manifest part holds exactly what the writer serialised.
    let manifest_json = serde_json::to_vec_pretty(manifest).unwrap();
    json!({
        "file": v.file,
        "format_version": v.version,
        "file_len": bytes.len(),
        "file_sha256": hex::encode(Sha256::digest(bytes)),
        "master_key_hex": hex::encode(run::<32>(0x00)),
        "master_key_base64": key.to_base64().as_str(),
        "key_id": key.key_id(),
        "chunk_size": v.chunk_size,
        "salt_hex": hex::encode(v.salt),
        "nonce_prefix_hex": hex::encode(v.nonce_prefix),
        "data_key_hex": hex::encode(v.data_key),
        "header_hex": hex::encode(&bytes[..HEADER_LEN]),
        "parts": parts,
        "manifest": manifest,
        "manifest_part": {
            "name": "manifest.json",
            "size": manifest_json.len(),
            "sha256": hex::encode(Sha256::digest(&manifest_json)),
        },
    })
}

#[test]
fn vectors_are_reproduced_byte_for_byte() {
    let mut listed = Vec::new();
    for v in vectors() {
        let (bytes, manifest) = build_vector(&v);
        let path = dir().join(v.file);
        if regenerate() {
            fs::create_dir_all(dir()).unwrap();
            fs::write(&path, &bytes).unwrap();
        } else {
            let committed = fs::read(&path).unwrap();
            assert!(
                committed == bytes,
                "{} no longer matches the writer",
                v.file
            );
        }
        listed.push(describe(&v, &bytes, &manifest));
    }
    let listing = json!({
        "about": "Inputs and expected outputs of the .bscc test vectors (format versions 1 and 2); see docs/FORMAT.md.",
        "vectors": listed,
    });
    let text = serde_json::to_string_pretty(&listing).unwrap() + "\n";
    let path = dir().join("vectors.json");
    if regenerate() {
        fs::write(&path, &text).unwrap();
    } else {
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
}

fn hex_field(entry: &Value, field: &str) -> Vec<u8> {
    hex::decode(entry[field].as_str().unwrap()).unwrap()
}

#[test]
fn committed_vectors_decrypt_with_the_listed_inputs() {
    let listing: Value =
        serde_json::from_str(&fs::read_to_string(dir().join("vectors.json")).unwrap()).unwrap();
    let entries = listing["vectors"].as_array().unwrap();
    assert_eq!(entries.len(), vectors().len());
    for entry in entries {
        let bytes = fs::read(dir().join(entry["file"].as_str().unwrap())).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), entry["file_sha256"]);
        let key = MasterKey::parse(entry["master_key_hex"].as_str().unwrap()).unwrap();
        let header = Header::read_from(&mut &bytes[..]).unwrap();
        assert_eq!(header.key_id.to_string(), entry["key_id"]);
        assert_eq!(header.salt.to_vec(), hex_field(entry, "salt_hex"));
        assert_eq!(
            header.nonce_prefix.to_vec(),
            hex_field(entry, "nonce_prefix_hex")
        );
        let data_key = header.unwrap_data_key(&Keyring::new(key.clone())).unwrap();
        assert_eq!(format!("{data_key:?}"), "DataKey(..)");

        let (manifest, parts) = read_all(&bytes, &Keyring::new(key)).unwrap();
        let listed = entry["parts"].as_array().unwrap();
        assert_eq!(parts.len(), listed.len());
        for ((name, content), want) in parts.iter().zip(listed) {
            assert_eq!(name, want["name"].as_str().unwrap());
            assert_eq!(content.len() as u64, want["size"].as_u64().unwrap());
            assert_eq!(hex::encode(Sha256::digest(content)), want["sha256"]);
        }
        assert_eq!(serde_json::to_value(&manifest).unwrap(), entry["manifest"]);
    }
}

/// The independent Python reader (`scripts/lib/bscc_parts.py`, written from
/// `docs/FORMAT.md` with `cryptography` and `zstandard`) decrypts,
/// decompresses and checks every committed vector, and finds the parts the
/// listing names. Its Python comes from the tests' venv
/// (`berkut_testkit::venv`, made by `scripts/ensure-deps.sh`).
#[test]
fn the_python_reader_reads_every_vector() {
    let python = berkut_testkit::venv_bin("python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/bscc_parts.py");
    let listing: Value =
        serde_json::from_str(&fs::read_to_string(dir().join("vectors.json")).unwrap()).unwrap();
    for entry in listing["vectors"].as_array().unwrap() {
        let file = dir().join(entry["file"].as_str().unwrap());
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(&file)
            .env("BSCC_KEY", entry["master_key_base64"].as_str().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let read: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(read["format_version"], entry["format_version"]);
        let found = read["parts"].as_array().unwrap();
        let listed = entry["parts"].as_array().unwrap();
        // The reader also lists the manifest part itself.
        assert_eq!(found.len(), listed.len() + 1);
        for (f, l) in found.iter().zip(listed) {
            assert_eq!(f["name"], l["name"]);
            assert_eq!(f["size"], l["size"]);
            assert_eq!(f["sha256"], l["sha256"]);
            assert_eq!(f["codec"], l["codec"].as_str().unwrap_or("none"));
        }
        assert_eq!(read["manifest"], entry["manifest"]);
    }
}

/// `docs/FORMAT.md` prints the small vector's header and first chunk so that
/// an implementer can compare bytes without running anything; this keeps the
/// printed bytes true.
#[test]
fn the_format_document_shows_the_real_bytes() {
    let v = &vectors()[0];
    let (bytes, _) = build_vector(v);
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/FORMAT.md");
    let doc = fs::read_to_string(doc).unwrap();
    for line in hex_lines(&bytes[..HEADER_LEN + 48]) {
        assert!(
            doc.contains(&line),
            "docs/FORMAT.md lacks the line {line:?}"
        );
    }
    assert!(doc.contains(&master_key().key_id().to_string()));
    assert!(bytes.len() > HEADER_LEN + 48);
}

/// Formats bytes 16 to a line as `offset: hex bytes`, the layout used in
/// `docs/FORMAT.md`.
fn hex_lines(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, line)| {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}: {}", i * 16, hex.join(" "))
        })
        .collect()
}
