//! What looks like a secret: a key whose name holds one of the secret
//! words, a URL with a password in it, a file that is a secret as a whole
//! (a private key, a credentials file), and, for text no parser could
//! read, a line that assigns a value to a secret-looking key. The last is
//! a line scanner, used only to decide whether an unparsed file may be
//! archived and to check what the parsers left, never to redact.

use std::ops::Range;
use std::path::Path;

use super::MARKER;

/// Key words that make a key a secret, in the normalised form
/// (`normalize_key`): `DATABASE_PASSWORD`, `apiKey` and `private-key` all
/// match.
const WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
];

/// The secret words in force: the built-in ones and `redact_keys`.
#[derive(Clone, Debug, Default)]
pub struct Words {
    extra: Vec<String>,
}

impl Words {
    /// `extra` is already normalised (the configuration does it).
    pub fn new(extra: Vec<String>) -> Words {
        Words { extra }
    }

    /// Whether a key names a secret.
    pub fn is_secret(&self, key: &str) -> bool {
        let key = normalize_key(key);
        WORDS.iter().any(|w| key.contains(w)) || self.extra.iter().any(|w| key.contains(w))
    }
}

/// A key reduced to its lower-case letters and digits, so that spelling
/// conventions do not hide a word.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The byte ranges of the passwords of every `scheme://user:PASSWORD@host`
/// in `text`; a password already replaced by the marker is not one.
pub fn url_passwords(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let sep = from + at;
        from = sep + 3;
        // A scheme: a letter, then letters, digits, `+`, `-` or `.`.
        let scheme_start = bytes[..sep]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .map_or(0, |i| i + 1);
        if scheme_start == sep || !bytes[scheme_start].is_ascii_alphabetic() {
            continue;
        }
        // The authority ends at the path, query, fragment, or anything that
        // cannot be in a URL.
        let rest = &bytes[from..];
        let end = rest
            .iter()
            .position(|b| {
                matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'`' | b'<' | b'>')
                    || b.is_ascii_whitespace()
            })
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        let Some(at_sign) = authority.iter().rposition(|&b| b == b'@') else {
            continue;
        };
        let userinfo = &authority[..at_sign];
        let Some(colon) = userinfo.iter().position(|&b| b == b':') else {
            continue;
        };
        let password = from + colon + 1..from + at_sign;
        if password.is_empty() || &text[password.clone()] == MARKER {
            continue;
        }
        found.push(password);
    }
    found
}

/// Why a file is a secret as a whole and never archived, if it is one:
/// by its name (SSH keys, PKCS#12, `.pgpass`, cloud credentials) or by
/// what it holds (a PEM or PuTTY private key).
pub fn whole_secret(path: &Path, content: &[u8]) -> Option<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    const NAMES: &[&str] = &[
        ".pgpass",
        ".netrc",
        ".git-credentials",
        ".vault-token",
        "credentials",
        "application_default_credentials.json",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ecdsa_sk",
        "id_ed25519_sk",
    ];
    const EXTENSIONS: &[&str] = &[
        ".p12",
        ".pfx",
        ".key",
        ".jks",
        ".keystore",
        ".keytab",
        ".kdbx",
        ".ppk",
    ];
    if NAMES.contains(&name.as_str()) {
        return Some(format!("a credentials or key file by its name ({name})"));
    }
    if let Some(ext) = EXTENSIONS.iter().find(|e| name.ends_with(*e)) {
        return Some(format!("a key or key store by its name (*{ext})"));
    }
    if content.starts_with(b"PuTTY-User-Key-File-") {
        return Some("holds a PuTTY private key".into());
    }
    let mut from = 0;
    while let Some(at) = find(&content[from..], b"-----BEGIN ") {
        let start = from + at + 11;
        let line_end = content[start..]
            .iter()
            .take(80)
            .position(|&b| b == b'\n')
            .map_or((start + 80).min(content.len()), |n| start + n);
        let label = &content[start..line_end];
        if find(label, b"PRIVATE KEY").is_some() {
            return Some("holds a private key (PEM)".into());
        }
        from = start;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first line (1-based) of `content` that looks like it holds a secret:
/// a secret-looking key given a value (`password = x`, `"token": "x"`,
/// `export API_KEY=x`, also in a comment), or a URL with a password. Used
/// for files no parser reads, and on what the parsers produced.
pub fn first_secret_line(content: &[u8], words: &Words) -> Option<usize> {
    for (n, line) in content.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        if !url_passwords(&line).is_empty() || assigns_secret(&line, words) {
            return Some(n + 1);
        }
    }
    None
}

/// Whether one line gives a secret-looking key a value.
fn assigns_secret(line: &str, words: &Words) -> bool {
    let mut rest = line.trim_start();
    // Comment leaders, list dashes and `export` do not hide an assignment.
    loop {
        let before = rest;
        for lead in ["#", ";", "//", "- ", "export "] {
            if let Some(r) = rest.strip_prefix(lead) {
                rest = r.trim_start();
            }
        }
        if rest == before {
            break;
        }
    }
    let Some(sep) = rest.find(['=', ':']) else {
        return false;
    };
    let key = rest[..sep].trim().trim_matches(['"', '\'']);
    if key.is_empty()
        || key.len() > 200
        || !key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
        || !words.is_secret(key)
    {
        return false;
    }
    let value = &rest[sep + 1..];
    let value = value.find(" #").map_or(value, |n| &value[..n]);
    if value.trim_start().starts_with(['{', '[']) && value.contains(MARKER) {
        // An inline structure the parser already redacted.
        return false;
    }
    let value = value
        .trim()
        .trim_end_matches([',', ';'])
        .trim_matches(['"', '\''])
        .trim();
    !(value.is_empty()
        || value == MARKER
        || matches!(value, "null" | "~" | "{" | "[" | "|" | ">" | "''" | "\"\"")
        || value.starts_with('$')
        || value.starts_with('&')
        || value.starts_with('*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_whatever_their_spelling() {
        let w = Words::new(vec!["pin".into()]);
        for key in [
            "DATABASE_PASSWORD",
            "dbPasswd",
            "client-secret",
            "GITHUB_TOKEN",
            "api_key",
            "apiKey",
            "private_key",
            "credentials",
            "sim_pin",
        ] {
            assert!(w.is_secret(key), "{key}");
        }
        for key in ["user", "host", "port", "keyboard", "name"] {
            assert!(!w.is_secret(key), "{key}");
        }
    }

    #[test]
    fn url_passwords_are_found_and_nothing_else() {
        let text = "a postgres://app:s3cr%40t@db:5432/x b https://host/p?q=1 c redis://:pw@r";
        let found: Vec<&str> = url_passwords(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["s3cr%40t", "pw"]);
        assert!(url_passwords("http://user@host/ and mailto:x@y").is_empty());
        assert!(url_passwords(&format!("pg://u:{MARKER}@h")).is_empty());
    }

    #[test]
    fn whole_secrets_are_known_by_name_or_content() {
        let pem = b"x\n-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert!(whole_secret(Path::new("/r/tls/server.crt"), pem).is_some());
        assert!(whole_secret(Path::new("/r/.aws/credentials"), b"").is_some());
        assert!(whole_secret(Path::new("/r/.pgpass"), b"").is_some());
        assert!(whole_secret(Path::new("/r/id_ed25519"), b"").is_some());
        assert!(whole_secret(Path::new("/r/store.p12"), b"").is_some());
        let cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(whole_secret(Path::new("/r/ca.crt"), cert).is_none());
        assert!(whole_secret(Path::new("/r/id_ed25519.pub"), b"ssh-ed25519 AAAA").is_none());
    }

    #[test]
    fn secret_lines_are_assignments_to_secret_keys() {
        let w = Words::default();
        for line in [
            "DB_PASSWORD=hunter2",
            "  # api_key: abc",
            "export TOKEN='x'",
            "\"client_secret\": \"abc\",",
            "url = postgres://u:p@h/db",
        ] {
            assert_eq!(first_secret_line(line.as_bytes(), &w), Some(1), "{line}");
        }
        for line in [
            "Set the password in the admin page.",
            "password:",
            "password = \"\"",
            &format!("password: \"{MARKER}\""),
            "token: ${TOKEN}",
            "user = app",
        ] {
            assert_eq!(first_secret_line(line.as_bytes(), &w), None, "{line}");
        }
    }
}
