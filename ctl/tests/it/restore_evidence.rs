//! `berkutctl restore evidence RID --export FILE`: the evidence directory
//! as one archive an auditor opens with standard tools (`tar -x`, then
//! `sha256sum -c DIGEST`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::helpers::*;

/// A passed dry-run of a fresh backup: its restore id.
fn drilled(env: &Env) -> String {
    crate::helpers::drilled(env).1
}

/// `berkutctl restore evidence RID --export FILE`, with `extra` arguments.
fn export(env: &Env, rid: &str, file: &Path, extra: &[&str]) -> Run {
    let file = file.to_str().unwrap();
    let mut args = vec!["restore", "evidence", rid, "--export", file];
    args.extend_from_slice(extra);
    ctl(&env.daemon, &args)
}

/// Runs a standard tool in `dir`; its status and what it printed.
fn tool(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Extracts `archive` into a new directory with GNU tar (which picks the
/// decompressor by itself) and runs `sha256sum -c DIGEST` in the restore's
/// directory.
fn extract_and_check(archive: &Path, rid: &str) -> (tempfile::TempDir, bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = tool(dir.path(), "tar", &["-xf", archive.to_str().unwrap()]);
    assert!(ok, "tar -xf {}: {out}", archive.display());
    let (ok, out) = tool(&dir.path().join(rid), "sha256sum", &["-c", "DIGEST"]);
    (dir, ok, out)
}

#[test]
fn an_export_opens_with_tar_and_checks_with_sha256sum() {
    let env = env();
    let rid = drilled(&env);
    let out = tempfile::tempdir().unwrap();
    for name in ["evidence.tar", "evidence.tar.gz", "evidence.tar.zst"] {
        let file = out.path().join(name);
        let run = export(&env, &rid, &file, &[]).ok();
        assert!(run.stdout.contains(" files match"), "{}", run.stdout);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{name}"
        );
        let (extracted, ok, said) = extract_and_check(&file, &rid);
        assert!(ok, "sha256sum -c DIGEST of {name}: {said}");
        // Every file of the evidence is there and checked: the summary and
        // the step logs, byte for byte as the daemon keeps them.
        assert!(said.contains("summary.json: OK"), "{said}");
        assert!(said.contains("logs/00-verify.log: OK"), "{said}");
        let kept = env.daemon.state_dir.join("restores").join(&rid);
        assert_eq!(
            std::fs::read(extracted.path().join(&rid).join("summary.json")).unwrap(),
            std::fs::read(kept.join("summary.json")).unwrap()
        );
        assert_eq!(
            std::fs::read(extracted.path().join(&rid).join("DIGEST")).unwrap(),
            std::fs::read(kept.join("DIGEST")).unwrap()
        );
    }
    // Nothing is left beside the files but the files.
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["evidence.tar", "evidence.tar.gz", "evidence.tar.zst"]
    );

    // For scripts: what was written, and the DIGEST's verdict.
    let file = out.path().join("again.tgz");
    let json = export(&env, &rid, &file, &["--verify", "--json"])
        .ok()
        .last_json();
    assert_eq!(json["restore_id"], rid.as_str());
    assert_eq!(
        json["size_bytes"].as_u64(),
        Some(
            flate2_len(&file) // the plain tar's size, as the daemon sent it
        )
    );
    assert!(json["digest"]["problems"].as_array().unwrap().is_empty());
    assert!(json["files"].as_u64().unwrap() >= 4, "{json}");
}

/// The size of a gzipped file once decompressed, by gzip itself.
fn flate2_len(file: &Path) -> u64 {
    let out = Command::new("gzip")
        .args(["-dc", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.len() as u64
}

#[test]
fn an_existing_file_is_kept_unless_forced() {
    let env = env();
    let rid = drilled(&env);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("evidence.tar");
    std::fs::write(&file, "the auditor's own file\n").unwrap();
    let refused = export(&env, &rid, &file, &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("exists; give --force"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "the auditor's own file\n"
    );
    export(&env, &rid, &file, &["--force"]).ok();
    let (_dir, ok, said) = extract_and_check(&file, &rid);
    assert!(ok, "{said}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
}

#[test]
fn an_unknown_restore_is_not_found_and_writes_nothing() {
    let env = env();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("evidence.tar");
    let run = export(&env, "r-20000101T000000Z-00000000", &file, &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("there is no restore r-20000101T000000Z-00000000"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

/// Tampered evidence is exported as it is (the auditor must see it), with
/// a warning; `sha256sum -c` on the export catches it, and `--verify`
/// fails the command.
#[test]
fn tampered_evidence_is_exported_and_flagged() {
    let env = env();
    let rid = drilled(&env);
    let log = env
        .daemon
        .state_dir
        .join("restores")
        .join(&rid)
        .join("logs/00-verify.log");
    std::fs::write(&log, "nothing to see\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("evidence.tar.gz");
    let run = export(&env, &rid, &file, &[]).ok();
    assert!(run.stdout.contains("DOES NOT MATCH"), "{}", run.stdout);
    assert!(
        run.stderr.contains("logs/00-verify.log: changed"),
        "{}",
        run.stderr
    );
    let (extracted, ok, said) = extract_and_check(&file, &rid);
    assert!(!ok, "sha256sum -c passed on tampered evidence: {said}");
    assert!(said.contains("logs/00-verify.log: FAILED"), "{said}");
    assert_eq!(
        std::fs::read_to_string(extracted.path().join(&rid).join("logs/00-verify.log")).unwrap(),
        "nothing to see\n"
    );

    let strict = export(&env, &rid, &out.path().join("strict.tar"), &["--verify"]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(
        strict.stderr.contains("does not match its DIGEST"),
        "{}",
        strict.stderr
    );
    // The export is still written: it is the evidence, as it is.
    assert!(out.path().join("strict.tar").exists());
}
