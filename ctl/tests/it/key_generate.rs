//! `berkutctl key generate`.

use std::os::unix::fs::PermissionsExt;

use berkut_proto::archive::MasterKey;

use crate::helpers::*;

#[test]
fn generated_keys_are_usable_and_distinct() {
    let dir = berkut_testkit::temp_dir("keys-");
    let sock = dir.path().join("none.sock");
    let a = ctl_alone(&["key", "generate"], &sock).ok();
    let b = ctl_alone(&["key", "generate"], &sock).ok();
    let ka = MasterKey::parse(a.stdout.trim()).expect("a valid key");
    let kb = MasterKey::parse(b.stdout.trim()).expect("a valid key");
    assert_ne!(ka.key_id(), kb.key_id());

    let json = ctl_alone(&["key", "generate", "--json"], &sock)
        .ok()
        .last_json();
    let key = MasterKey::parse(json["key"].as_str().unwrap()).unwrap();
    assert_eq!(json["key_id"], key.key_id().to_string());
}

#[test]
fn a_key_file_is_private_and_never_overwritten() {
    let dir = berkut_testkit::temp_dir("keys-");
    let sock = dir.path().join("none.sock");
    let file = dir.path().join("master.key");
    let path = file.to_str().unwrap();
    let run = ctl_alone(&["key", "generate", "-o", path], &sock).ok();
    assert!(
        run.stdout.is_empty(),
        "the key must not be printed: {}",
        run.stdout
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&file).unwrap();
    MasterKey::parse(&first).unwrap();
    let again = ctl_alone(&["key", "generate", "-o", path], &sock);
    assert_ne!(again.code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
}
