//! `berkutctl backup download` and `backup import`, and `store rewrap`.

use crate::helpers::*;

#[test]
fn download_then_import_elsewhere() {
    let env = env();
    let record = ctl(&env.daemon, &["backup", "create", "--wait", "--json"])
        .ok()
        .last_json();
    let id = record["id"].as_str().unwrap();
    let work = berkut_testkit::temp_dir("transfer-");
    let file = work.path().join("copy.bscc");
    let done = ctl(
        &env.daemon,
        &[
            "backup",
            "download",
            id,
            "-o",
            file.to_str().unwrap(),
            "--json",
        ],
    )
    .ok()
    .last_json();
    assert_eq!(done["sha256"], record["sha256"]);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(env.daemon.archive_path(id)).unwrap()
    );
    // Downloading again replaces the file only once the new copy is whole.
    ctl(
        &env.daemon,
        &["backup", "download", id, "-o", file.to_str().unwrap()],
    )
    .ok();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(env.daemon.archive_path(id)).unwrap()
    );
    assert!(!std::fs::read_dir(work.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));

    let key = berkut_proto::archive::MasterKey::parse(&env.daemon.key.to_base64()).unwrap();
    let other = env_with(|b| b.key(key));
    let imported = ctl(
        &other.daemon,
        &["backup", "import", file.to_str().unwrap(), "--json"],
    )
    .ok()
    .last_json();
    assert_eq!(imported["id"], record["id"]);
    assert_eq!(imported["origin"], "imported");
    let dup = ctl(&other.daemon, &["backup", "import", file.to_str().unwrap()]);
    assert_eq!(dup.code, 5, "{}", dup.stderr);

    let rewrap = ctl(&other.daemon, &["store", "rewrap", "--json"])
        .ok()
        .last_json();
    assert_eq!(rewrap["unchanged"], 1);
}
