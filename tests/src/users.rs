//! The `berkut-t-*` operating-system users that tests run clients as, where
//! identity matters (access control goes by uid). They are created once per
//! machine, by whichever test process comes first, under an exclusive file
//! lock that every test process takes (nextest runs each test in a process
//! of its own, so creating them unlocked raced: `useradd`s running at once
//! handed out crossed uid and gid numbers). Every process then checks them:
//! each user exists, has a private group of its own name as its primary
//! group, a uid and gid no other test user has, and no test user's group
//! as a supplementary one. Anything else fails the test loudly, with the
//! commands that remove the broken users, rather than letting a test run
//! as somebody other than it thinks.

use std::fs::File;
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{geteuid, Gid, Group, Uid, User};

/// The test users, by role name.
pub const TEST_USERS: [&str; 5] = [
    "berkut-t-viewer",
    "berkut-t-operator",
    "berkut-t-admin",
    "berkut-t-app",
    "berkut-t-none",
];

/// One test user as the system knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The lock every test process takes around creating and checking users.
/// It lives in `/tmp` (not `$TMPDIR`): the users are machine-wide.
const LOCK_PATH: &str = "/tmp/berkut-testkit-users.lock";

/// The test users, created if needed, in the order of [`TEST_USERS`].
/// `None` when the tests do not run as root (creating users and running
/// processes as them needs root); callers skip then.
///
/// Panics, with what is wrong and how to repair it, when the users cannot
/// be created or are not as expected.
pub fn test_users() -> Option<Vec<TestUser>> {
    if !geteuid().is_root() {
        eprintln!("skipped: running clients as other users needs root");
        return None;
    }
    static USERS: OnceLock<Vec<TestUser>> = OnceLock::new();
    Some(
        USERS
            .get_or_init(|| {
                ensure_users(&TEST_USERS).unwrap_or_else(|why| {
                    panic!(
                        "the test users are not as the tests need them: {why}\n\
                         Remove them and run the tests again (they are re-created):\n  \
                         for u in {}; do userdel \"$u\"; groupdel \"$u\"; done",
                        TEST_USERS.join(" ")
                    )
                })
            })
            .clone(),
    )
}

/// The test users' uids, in the order of [`TEST_USERS`] (viewer,
/// operator, admin, app, none); `None` without root, as [`test_users`].
pub fn test_uids() -> Option<Vec<u32>> {
    test_users().map(|users| users.iter().map(|u| u.uid).collect())
}

/// Makes `cmd` run as `uid`, with that user's group, from `/` (a test's
/// working directory may be closed to it).
pub fn run_as(cmd: &mut std::process::Command, uid: u32) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .unwrap()
        .map_or(uid, |u| u.gid.as_raw());
    cmd.current_dir("/").uid(uid).gid(gid)
}

/// Creates the users `names` that do not exist yet, then checks them all,
/// under the machine-wide lock.
pub fn ensure_users(names: &[&str]) -> Result<Vec<TestUser>, String> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(|e| format!("cannot open {LOCK_PATH}: {e}"))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {LOCK_PATH}: {e}"))?;
    for name in names {
        create(name)?;
    }
    check(names)
}

/// Creates one user with a private group of its name, unless it exists.
/// Called under the lock only.
fn create(name: &str) -> Result<(), String> {
    if User::from_name(name).ok().flatten().is_some() {
        return Ok(());
    }
    let mut cmd = Command::new("useradd");
    cmd.args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
    ]);
    // A group left by an interrupted earlier run is taken as the user's.
    if Group::from_name(name).ok().flatten().is_some() {
        cmd.args(["--gid", name]);
    } else {
        cmd.arg("--user-group");
    }
    let out = cmd
        .arg(name)
        .output()
        .map_err(|e| format!("cannot run useradd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "useradd {name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Checks the users as the system sees them now.
fn check(names: &[&str]) -> Result<Vec<TestUser>, String> {
    let mut users: Vec<TestUser> = Vec::new();
    for &name in names {
        let user = User::from_name(name)
            .map_err(|e| format!("cannot look up {name}: {e}"))?
            .ok_or_else(|| format!("{name} does not exist"))?;
        let group = Group::from_gid(user.gid)
            .map_err(|e| format!("cannot look up gid {}: {e}", user.gid))?
            .ok_or_else(|| format!("{name}'s primary gid {} has no group", user.gid))?;
        if group.name != name {
            return Err(format!(
                "{name}'s primary group is {} (gid {}), not its own",
                group.name, user.gid
            ));
        }
        let by_uid = User::from_uid(user.uid)
            .map_err(|e| format!("cannot look up uid {}: {e}", user.uid))?
            .map(|u| u.name);
        if by_uid.as_deref() != Some(name) {
            return Err(format!(
                "uid {} belongs to {by_uid:?}, not only to {name}",
                user.uid
            ));
        }
        if user.uid == Uid::from_raw(0) || user.gid == Gid::from_raw(0) {
            return Err(format!("{name} has uid or gid 0"));
        }
        if let Some(twin) = users
            .iter()
            .find(|u| u.uid == user.uid.as_raw() || u.gid == user.gid.as_raw())
        {
            return Err(format!("{name} and {} share a uid or gid", twin.name));
        }
        users.push(TestUser {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        });
    }
    // No test user is in another test user's group: a grant to a group
    // must reach exactly the user the test means.
    for &owner in names {
        let group = Group::from_name(owner)
            .map_err(|e| format!("cannot look up group {owner}: {e}"))?
            .ok_or_else(|| format!("group {owner} does not exist"))?;
        if let Some(stranger) = group.mem.iter().find(|m| m.as_str() != owner) {
            return Err(format!("{stranger} is a member of group {owner}"));
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users of its own, created from several threads at once (each takes
    /// the lock through its own open file, as separate processes do): every
    /// one comes out whole, with its private group, and no numbers crossed.
    /// The users are removed afterwards.
    #[test]
    fn users_created_at_once_come_out_whole() {
        if !geteuid().is_root() {
            eprintln!("skipped: creating users needs root");
            return;
        }
        let names: Vec<String> = (0..4)
            .map(|n| format!("berkut-t-race{}-{n}", std::process::id() % 10_000))
            .collect();
        let remove = |names: &[String]| {
            for n in names {
                let _ = Command::new("userdel").arg(n).output();
                let _ = Command::new("groupdel").arg(n).output();
            }
        };
        remove(&names);
        let outcomes: Vec<_> = (0..4)
            .map(|_| {
                let names = names.clone();
                std::thread::spawn(move || {
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    ensure_users(&refs)
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        remove(&names);
        let first = outcomes[0].clone().expect("the users were created");
        assert!(
            outcomes.iter().all(|o| o.as_ref() == Ok(&first)),
            "{outcomes:?}"
        );
        for user in &first {
            assert_ne!(user.uid, 0);
        }
    }

    #[test]
    fn the_shared_test_users_verify() {
        let Some(users) = test_users() else { return };
        assert_eq!(users.len(), TEST_USERS.len());
        for user in &users {
            let group = Group::from_gid(Gid::from_raw(user.gid)).unwrap().unwrap();
            assert_eq!(group.name, user.name);
        }
    }
}
