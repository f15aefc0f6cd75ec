//! `berkutctl backup pin|unpin`.

use crate::helpers::*;

#[test]
fn pin_and_unpin() {
    let env = env();
    let made = ctl(
        &env.daemon,
        &["backup", "create", "--scope", "schema", "--wait", "--json"],
    )
    .ok()
    .last_json();
    assert_eq!(made["pinned"], false);
    let id = made["id"].as_str().unwrap();
    let pinned = ctl(&env.daemon, &["backup", "pin", id, "--json"])
        .ok()
        .last_json();
    assert_eq!(pinned["pinned"], true);
    assert_eq!(
        ctl(&env.daemon, &["backup", "show", id, "--json"])
            .ok()
            .last_json()["pinned"],
        true
    );
    let human = ctl(&env.daemon, &["backup", "unpin", id]).ok().stdout;
    assert_eq!(human.trim(), format!("unpinned {id}"));
    let missing = ctl(&env.daemon, &["backup", "pin", "20000101T000000Z-00000000"]);
    assert_eq!(missing.code, 4);
}
