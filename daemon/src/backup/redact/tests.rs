//! Redaction, format by format: the secret values are gone, the rest of
//! the file is byte for byte what it was, the keys are named, and hostile
//! input is refused within bounds.

use std::path::Path;

use super::*;

const SECRETS: &[&str] = &["hunter2", "s3cr3t-tok", "pa55w0rd", "AKIAXYZ", "sekr1t"];

fn run(name: &str, text: &str) -> Outcome {
    check(Path::new(name), text.as_bytes(), true, &Words::default())
}

/// The redacted text, checked to hold no fixture secret and to equal
/// `expected`.
fn redacted(name: &str, text: &str, expected: &str, keys: &[&str]) {
    match run(name, text) {
        Outcome::Redacted { content, keys: got } => {
            let content = String::from_utf8(content).unwrap();
            for s in SECRETS {
                assert!(!content.contains(s), "{name}: {s} left in\n{content}");
            }
            assert_eq!(content, expected, "{name}");
            assert_eq!(got, keys, "{name}");
        }
        other => panic!("{name}: {other:?}"),
    }
}

fn excluded(name: &str, text: &str, why: &str) {
    match run(name, text) {
        Outcome::Excluded(reason) => {
            assert!(reason.contains(why), "{name}: {reason}");
            for s in SECRETS {
                assert!(!reason.contains(s), "{name}: the reason quotes {s}");
            }
        }
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn env_files_keep_everything_but_secret_values() {
    let text = "# app settings\nexport DB_HOST=db.internal\nDB_PASSWORD=hunter2 # old\n\
                API_TOKEN=\"s3cr3t-tok\"\nDATABASE_URL=postgres://app:pa55w0rd@db/app\n\
                # OLD_SECRET=sekr1t\n\nMULTI=\"a\nb\"\n";
    let expected = "# app settings\nexport DB_HOST=db.internal\nDB_PASSWORD=BERKUT-REDACTED # old\n\
                    API_TOKEN=\"BERKUT-REDACTED\"\nDATABASE_URL=postgres://app:BERKUT-REDACTED@db/app\n\
                    # OLD_SECRET=BERKUT-REDACTED\n\nMULTI=\"a\nb\"\n";
    redacted(
        "/r/.env",
        text,
        expected,
        &[
            "DB_PASSWORD",
            "API_TOKEN",
            "DATABASE_URL (URL password)",
            "OLD_SECRET",
        ],
    );
    assert_eq!(run("/r/.env", "A=1\nB=two\n"), Outcome::AsIs);
}

#[test]
fn ini_and_systemd_units() {
    let text = "[Service]\nEnvironment=MODE=prod \"API_KEY=AKIAXYZ\" DB_PASSWORD=hunter2\n\
                ExecStart=/usr/bin/app\n[db]\npassword = \"sekr1t\"\nhost: db\n";
    let expected = "[Service]\nEnvironment=MODE=prod \"API_KEY=BERKUT-REDACTED\" \
                    DB_PASSWORD=BERKUT-REDACTED\nExecStart=/usr/bin/app\n[db]\n\
                    password = \"BERKUT-REDACTED\"\nhost: db\n";
    redacted(
        "/r/app.service",
        text,
        expected,
        &[
            "Service.Environment.API_KEY",
            "Service.Environment.DB_PASSWORD",
            "db.password",
        ],
    );
}

#[test]
fn toml_keeps_its_formatting() {
    let text = "# config\n[database]\nhost = \"db\"   # primary\npassword = 'hunter2'\n\
                url = \"postgres://u:pa55w0rd@db/x\"\n\n[credentials]\nkey = { id = \"AKIAXYZ\", \
                n = 3 }\n[[svc]]\napi_key = \"s3cr3t-tok\"\n";
    let expected = "# config\n[database]\nhost = \"db\"   # primary\npassword = \"BERKUT-REDACTED\"\n\
                    url = \"postgres://u:BERKUT-REDACTED@db/x\"\n\n[credentials]\nkey = { id = \
                    \"BERKUT-REDACTED\", n = \"BERKUT-REDACTED\" }\n[[svc]]\napi_key = \"BERKUT-REDACTED\"\n";
    redacted(
        "/r/app.toml",
        text,
        expected,
        &[
            "database.password",
            "database.url (URL password)",
            "credentials",
            "svc.api_key",
        ],
    );
}

#[test]
fn yaml_values_block_scalars_and_aliases() {
    let text = "# app\ndb:\n  host: db\n  password: hunter2\n  url: \"redis://:pa55w0rd@r:6379\"\n\
                tls:\n  private_key: |\n    sekr1t\n    more\n  cert: /etc/cert.pem\n\
                shared: &tok s3cr3t-tok\napi:\n  token: *tok\n  names: [a, b]\nаккаунт: ок\n";
    let expected = "# app\ndb:\n  host: db\n  password: \"BERKUT-REDACTED\"\n  \
                    url: \"redis://:BERKUT-REDACTED@r:6379\"\ntls:\n  private_key: |\n    BERKUT-REDACTED\n  \
                    cert: /etc/cert.pem\nshared: &tok \"BERKUT-REDACTED\"\napi:\n  token: *tok\n  \
                    names: [a, b]\nаккаунт: ок\n";
    redacted(
        "/r/app.yaml",
        text,
        expected,
        &[
            "db.password",
            "db.url (URL password)",
            "tls.private_key",
            "api.token (through an alias)",
        ],
    );
}

#[test]
fn json_values_and_nested_secrets() {
    let text = "{\n  \"name\": \"app\",\n  \"password\": \"hunter2\",\n  \"credentials\": \
                {\"id\": \"AKIAXYZ\", \"n\": [1, 2]},\n  \"url\": \"mysql://u:pa55w0rd@h/d\",\n  \
                \"ключ\": \"значение\"\n}\n";
    let expected = "{\n  \"name\": \"app\",\n  \"password\": \"BERKUT-REDACTED\",\n  \"credentials\": \
                    {\"id\": \"BERKUT-REDACTED\", \"n\": [\"BERKUT-REDACTED\", \"BERKUT-REDACTED\"]},\n  \
                    \"url\": \"mysql://u:BERKUT-REDACTED@h/d\",\n  \"ключ\": \"значение\"\n}\n";
    redacted(
        "/r/app.json",
        text,
        expected,
        &["password", "credentials", "url (URL password)"],
    );
}

#[test]
fn whole_secret_files_are_excluded_whatever_the_switch() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    excluded("/r/tls/server.pem", pem, "private key");
    assert!(matches!(
        check(
            Path::new("/r/x.txt"),
            pem.as_bytes(),
            false,
            &Words::default()
        ),
        Outcome::Excluded(_)
    ));
    excluded("/r/.pgpass", "db:5432:app:app:hunter2\n", ".pgpass");
    excluded(
        "/r/.aws/credentials",
        "[default]\naws_secret_access_key = sekr1t\n",
        "credentials",
    );
    // With redaction off an ordinary secret stays (the operator's choice).
    assert_eq!(
        check(
            Path::new("/r/.env"),
            b"PASSWORD=x\n",
            false,
            &Words::default()
        ),
        Outcome::AsIs
    );
}

#[test]
fn unparsed_files_go_in_only_without_secret_lines() {
    assert_eq!(
        run("/r/readme.txt", "Set the password in the UI.\n"),
        Outcome::AsIs
    );
    assert_eq!(run("/r/broken.yaml", "a: [1, 2\nb: c\n"), Outcome::AsIs);
    excluded(
        "/r/notes.txt",
        "db_password = hunter2\n",
        "line 1 looks like",
    );
    excluded(
        "/r/broken.json",
        "{\"a\": 1,\n\"password\": \"hunter2\"\n",
        "not valid JSON",
    );
    excluded(
        "/r/bad.toml",
        "x = \n[t]\ntoken = \"s3cr3t-tok\"\n",
        "not valid TOML",
    );
    excluded("/r/run.sh", "psql postgres://u:pa55w0rd@h/db\n", "line 1");
    // Non-UTF-8 bytes do not hide a secret.
    let mut bytes = b"\xff\xfe\n".to_vec();
    bytes.extend_from_slice(b"PASSWORD=hunter2\n");
    assert!(matches!(
        check(Path::new("/r/.env"), &bytes, true, &Words::default()),
        Outcome::Excluded(r) if r.contains("not UTF-8")
    ));
}

#[test]
fn secrets_in_comments_of_structured_files_exclude_them() {
    excluded("/r/app.yaml", "a: 1\n# password: hunter2\n", "comment");
    excluded(
        "/r/app.toml",
        "a = 1\n# token = \"s3cr3t-tok\"\n",
        "comment",
    );
}

#[test]
fn configured_words_are_secrets_too() {
    let words = Words::new(vec![normalize_key("license")]);
    match check(Path::new("/r/.env"), b"LICENSE_ID=sekr1t\n", true, &words) {
        Outcome::Redacted { content, keys } => {
            assert_eq!(content, b"LICENSE_ID=BERKUT-REDACTED\n");
            assert_eq!(keys, ["LICENSE_ID"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_yaml_bomb_is_refused_quickly() {
    let mut text = String::from(
        "a: &a [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    let mut prev = 'a';
    for name in "bcdefghij".chars() {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        prev = name;
    }
    let started = std::time::Instant::now();
    excluded("/r/bomb.yaml", &text, "YAML bomb");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    excluded("/r/deep.json", &deep, "nested deeper");
    let deep = format!("a: {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
    excluded("/r/deep.yaml", &deep, "nested deeper");
}

#[test]
fn already_redacted_files_stay_as_they_are() {
    for (name, text) in [
        ("/r/.env", "PASSWORD=BERKUT-REDACTED\n"),
        ("/r/a.yaml", "password: \"BERKUT-REDACTED\"\n"),
        ("/r/a.json", "{\"password\": \"BERKUT-REDACTED\"}\n"),
        ("/r/a.toml", "password = \"BERKUT-REDACTED\"\n"),
    ] {
        assert_eq!(run(name, text), Outcome::AsIs, "{name}");
    }
}
