//! What the offline archive tools report: `archive inspect`, `verify`,
//! `extract` and `rewrap`.

use std::path::Path;

use berkut_proto::archive::Header;
use berkut_proto::manifest::Manifest;
use serde_json::json;

use super::json_line;
use super::text::bytes;

pub fn inspected(json: bool, header: &Header, size: u64) {
    if json {
        json_line(&json!({
            "format_version": header.version,
            "key_id": header.key_id.to_string(),
            "chunk_size": header.chunk_size,
            "size_bytes": size,
        }));
    } else {
        println!("format:     .bscc version {}", header.version);
        println!("key_id:     {}", header.key_id);
        println!("chunk size: {}", bytes(u64::from(header.chunk_size)));
        println!("size:       {}", bytes(size));
    }
}

pub fn verified(json: bool, manifest: &Manifest, sha256: &str, deep: bool) {
    let depth = if deep { "deep" } else { "authenticate" };
    if json {
        json_line(
            &json!({ "verified": true, "depth": depth, "sha256": sha256, "manifest": manifest }),
        );
        return;
    }
    if deep {
        println!(
            "verified:   every chunk authenticated, every part decompressed and matching \
             its size and sha256 in the manifest"
        );
    } else {
        println!(
            "verified:   every chunk authenticated, the structure and every part's \
             stored size match the manifest (--deep also recomputes each part's sha256)"
        );
    }
    println!(
        "backup:     {} ({}, {})",
        manifest.backup_id,
        manifest.scope.as_str(),
        manifest.database.name
    );
    println!("sha256:     {sha256}");
    for p in &manifest.parts {
        let stored = match (p.codec, p.compressed_size) {
            (Some(codec), Some(n)) => format!("{codec}, {} stored", bytes(n)),
            _ => "stored as is".to_owned(),
        };
        println!(
            "  {:<16} {:>12}  {}  ({stored})",
            p.name,
            bytes(p.size),
            p.sha256
        );
    }
}

pub fn extracted(json: bool, manifest: &Manifest, out: &Path) {
    if json {
        json_line(&json!({ "directory": out, "parts": manifest.parts }));
    } else {
        println!(
            "extracted {} parts and manifest.json into {}",
            manifest.parts.len(),
            out.display()
        );
        if manifest.parts.iter().any(|p| p.name == "dump.pgcustom") {
            println!(
                "restore with: pg_restore -d DATABASE {}",
                out.join("dump.pgcustom").display()
            );
        }
    }
}

pub fn rewrapped(json: bool, target: &Path, old: &Header, rewrapped: &Header) {
    if json {
        json_line(
            &json!({ "file": target, "old_key_id": old.key_id.to_string(), "key_id": rewrapped.key_id.to_string() }),
        );
    } else {
        println!(
            "{} is now wrapped under key {} (was {})",
            target.display(),
            rewrapped.key_id,
            old.key_id
        );
    }
}
