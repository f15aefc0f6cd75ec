//! The walk over real directories: what goes in, what is left out and
//! why, and the faults of the issue (missing and unreadable roots, a root
//! linking to `/`, special files, odd names, files changing while read,
//! size limits).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

fn plan(roots: Vec<FileRoot>) -> FilesPlan {
    FilesPlan {
        roots,
        words: Words::default(),
        max_file: 1 << 20,
        max_total: 8 << 20,
    }
}

fn glob_root(path: &Path, exclude: &[&str]) -> FileRoot {
    let text = format!(
        "path = {:?}\nexclude = {:?}\n",
        path.display().to_string(),
        exclude
    );
    let entry: crate::config::FileRootEntry = toml::from_str(&text).unwrap();
    crate::config::resolve_file_root(entry).unwrap()
}

/// The tar's entries (path → content, or the link target) and the manifest
/// entries by path.
type Tar = BTreeMap<Vec<u8>, Vec<u8>>;

fn run(plan: &FilesPlan) -> (Tar, BTreeMap<String, FileEntry>) {
    run_with(plan, &mut |_| {})
}

fn run_with(plan: &FilesPlan, hook: &mut dyn FnMut(&Path)) -> (Tar, BTreeMap<String, FileEntry>) {
    let mut out = Vec::new();
    let entries = match write_tar(plan, &mut out, &|| false, hook) {
        Ok(entries) => entries,
        Err(e) => panic!("{e:?}"),
    };
    let mut tar = Tar::new();
    for entry in tar::Archive::new(&out[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path_bytes().into_owned();
        let mut content = Vec::new();
        if let Some(link) = entry.link_name_bytes() {
            content = link.into_owned();
        } else {
            entry.read_to_end(&mut content).unwrap();
        }
        tar.insert(path, content);
    }
    let entries = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
    (tar, entries)
}

fn base(dir: &Path) -> String {
    dir.strip_prefix("/").unwrap().display().to_string()
}

#[test]
fn a_tree_is_archived_redacted_and_excluded_as_its_rules_say() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    fs::create_dir_all(root.join("secrets")).unwrap();
    fs::create_dir_all(root.join("certs")).unwrap();
    fs::write(root.join("readme.txt"), "plain\n").unwrap();
    fs::write(root.join(".env"), "HOST=db\nDB_PASSWORD=hunter2\n").unwrap();
    fs::write(root.join("secrets/a.txt"), "x").unwrap();
    fs::write(root.join("certs/site.pem"), "cert").unwrap();
    fs::write(root.join("id_rsa"), "whatever").unwrap();
    symlink("readme.txt", root.join("inside")).unwrap();
    symlink("/etc/passwd", root.join("outside")).unwrap();
    symlink("../../../../../../etc", root.join("climb")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let newline = OsStr::from_bytes(b"new\nline.txt");
    fs::write(root.join(newline), "n").unwrap();
    let invalid = OsStr::from_bytes(b"bad-\xff.txt");
    fs::write(root.join(invalid), "i").unwrap();

    let plan = plan(vec![glob_root(&root, &["secrets/**", "*.pem"])]);
    let (tar, entries) = run(&plan);
    let b = base(&root);
    let got = |name: &str| tar.get(format!("{b}/{name}").as_bytes()).cloned();
    let entry = |name: &str| {
        entries
            .get(&format!("{b}/{name}"))
            .unwrap_or_else(|| panic!("{name} in {entries:#?}"))
    };

    assert_eq!(got("readme.txt").unwrap(), b"plain\n");
    assert_eq!(entry("readme.txt").outcome, FileOutcome::Archived);
    assert_eq!(
        got(".env").unwrap(),
        b"HOST=db\nDB_PASSWORD=BERKUT-REDACTED\n"
    );
    assert_eq!(entry(".env").outcome, FileOutcome::Redacted);
    assert_eq!(entry(".env").keys, ["DB_PASSWORD"]);
    for (name, why) in [
        ("secrets/a.txt", "exclude glob \"secrets/**\""),
        ("certs/site.pem", "exclude glob \"*.pem\""),
        ("id_rsa", "key file"),
        ("outside", "out of the root"),
        ("climb", "out of the root"),
        ("fifo", "a FIFO, skipped"),
        ("sock", "a socket, skipped"),
    ] {
        let e = entry(name);
        assert_eq!(e.outcome, FileOutcome::Excluded, "{name}");
        assert!(e.reason.as_deref().unwrap().contains(why), "{name}: {e:?}");
        assert!(got(name).is_none(), "{name} is in the tar");
    }
    assert!(got("secrets/a.txt").is_none());
    assert_eq!(got("inside").unwrap(), b"readme.txt", "kept as a link");
    assert!(entry("inside").reason.as_deref().unwrap().contains("link"));
    // Odd names go in as they are and are shown escaped, one line each.
    assert_eq!(
        tar.get(format!("{b}/new\nline.txt").as_bytes()).unwrap(),
        b"n"
    );
    assert_eq!(entry("new\\nline.txt").outcome, FileOutcome::Archived);
    let mut raw = format!("{b}/").into_bytes();
    raw.extend_from_slice(b"bad-\xff.txt");
    assert_eq!(tar.get(&raw).unwrap(), b"i");
    assert_eq!(entry("bad-\\xff.txt").outcome, FileOutcome::Archived);
}

#[test]
fn bad_roots_are_left_out_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let to_slash = dir.path().join("to-slash");
    symlink("/", &to_slash).unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let good = dir.path().join("good");
    fs::create_dir(&good).unwrap();
    fs::write(good.join("a"), "a").unwrap();
    let plan = plan(
        [&missing, &to_slash, &file, &good]
            .into_iter()
            .map(|p| FileRoot::plain(p.clone()))
            .collect(),
    );
    let (tar, entries) = run(&plan);
    for (root, why) in [
        (&missing, "the root is missing"),
        (&to_slash, "a symbolic link to /"),
        (&file, "not a directory"),
    ] {
        let e = &entries[&base(root)];
        assert_eq!(e.outcome, FileOutcome::Excluded);
        assert!(e.reason.as_deref().unwrap().contains(why), "{e:?}");
    }
    // Nothing of / went in; the good root did.
    assert!(
        tar.keys().all(|k| k.starts_with(base(&good).as_bytes())),
        "{:?}",
        tar.keys()
    );
    assert_eq!(tar[format!("{}/a", base(&good)).as_bytes()], b"a");
}

/// Root reads everything; a thread whose file-system uid is `nobody` does
/// not (the kernel drops the DAC capabilities with it, for that thread).
#[test]
fn an_unreadable_root_or_directory_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let closed = dir.path().join("closed");
    fs::create_dir(&closed).unwrap();
    let open = dir.path().join("open");
    fs::create_dir_all(open.join("shut")).unwrap();
    fs::write(open.join("shut/x"), "x").unwrap();
    fs::write(open.join("unreadable.txt"), "x").unwrap();
    fs::set_permissions(
        open.join("unreadable.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(open.join("shut"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    let plan = plan(vec![
        FileRoot::plain(closed.clone()),
        FileRoot::plain(open.clone()),
    ]);
    let (tar, entries) = std::thread::spawn(move || {
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
        run(&plan)
    })
    .join()
    .unwrap();
    let reason = |p: String| entries[&p].reason.clone().unwrap();
    assert_eq!(
        reason(base(&closed)),
        "the root could not be read: permission denied"
    );
    assert_eq!(
        reason(format!("{}/shut", base(&open))),
        "the directory could not be read: permission denied"
    );
    assert_eq!(
        reason(format!("{}/unreadable.txt", base(&open))),
        "could not be read: permission denied"
    );
    assert!(!tar.contains_key(format!("{}/shut/x", base(&open)).as_bytes()));
}

#[test]
fn a_file_changing_while_read_is_read_again_or_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("once.txt"), "v1").unwrap();
    fs::write(root.join("always.txt"), "v1").unwrap();
    let plan = plan(vec![FileRoot::plain(root.clone())]);
    let mut changed_once = false;
    let mut n = 0u32;
    let (tar, entries) = run_with(&plan, &mut |path| {
        // Each write lands between the read and the check after it.
        if path.ends_with("once.txt") && !changed_once {
            changed_once = true;
            fs::write(path, "v2, longer").unwrap();
        } else if path.ends_with("always.txt") {
            n += 1;
            fs::write(path, format!("v{n}{}", "!".repeat(n as usize))).unwrap();
        }
    });
    let b = base(&root);
    assert_eq!(tar[format!("{b}/once.txt").as_bytes()], b"v2, longer");
    assert_eq!(
        entries[&format!("{b}/once.txt")].outcome,
        FileOutcome::Archived
    );
    let always = &entries[&format!("{b}/always.txt")];
    assert_eq!(always.outcome, FileOutcome::Excluded);
    assert_eq!(
        always.reason.as_deref(),
        Some("kept changing while it was read")
    );
    assert!(!tar.contains_key(format!("{b}/always.txt").as_bytes()));
}

#[test]
fn size_limits_leave_a_file_out_and_refuse_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    fs::create_dir(&root).unwrap();
    // Sparse: "10 GB" without the disk.
    let big = fs::File::create(root.join("huge.bin")).unwrap();
    big.set_len(10 << 30).unwrap();
    fs::write(root.join("small.txt"), "ok").unwrap();
    let mut p = plan(vec![FileRoot::plain(root.clone())]);
    let (tar, entries) = run(&p);
    let huge = &entries[&format!("{}/huge.bin", base(&root))];
    assert_eq!(huge.outcome, FileOutcome::Excluded);
    assert_eq!(
        huge.reason.as_deref(),
        Some("10737418240 bytes, larger than file_max_bytes (1048576)")
    );
    assert_eq!(tar.len(), 2, "the root and small.txt: {:?}", tar.keys());

    fs::write(root.join("other.txt"), "0123456789").unwrap();
    p.max_total = 5;
    match write_tar(&p, io::sink(), &|| false, &mut |_| {}) {
        Err(Stop::TooLarge(m)) => assert!(m.contains("files_max_total_bytes (5 bytes)"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn names_are_shown_one_line_each_and_the_same_way() {
    assert_eq!(shown(Path::new("a/b c.txt")), "a/b c.txt");
    assert_eq!(
        shown(Path::new(OsStr::from_bytes(b"a\nb\\c\xfe"))),
        "a\\nb\\\\c\\xfe"
    );
}
