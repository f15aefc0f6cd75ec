//! What redaction costs: a tree of configuration files (`.env`, YAML,
//! TOML, JSON, INI, plain text, some with secrets) archived by the files
//! part's walker with redaction on, against the same walker with
//! `redact = false` (read, check for whole-secret files, write as is) and
//! against what `--include-files` did before redaction existed
//! (`tar::Builder::append_dir_all`). Run by `scripts/bench-files.sh`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use berkut_daemon::backup::files::{write_tar, FilesPlan};
use berkut_daemon::backup::redact::Words;
use berkut_daemon::config::FileRoot;

fn fixture(root: &Path, files: usize) -> u64 {
    let mut bytes = 0u64;
    for n in 0..files {
        let dir = root.join(format!("svc{:03}", n / 50));
        std::fs::create_dir_all(&dir).unwrap();
        let (name, text) = match n % 6 {
            0 => (
                format!("{n}.env"),
                format!("HOST=db{n}\nPORT=5432\nDB_PASSWORD=pw{n}\nURL=postgres://u:p{n}@h/d\n")
                    .repeat(20),
            ),
            1 => (
                format!("{n}.yaml"),
                format!(
                    "server:\n  port: {n}\n  name: svc\ndatabase:\n  password: s{n}\n  pool: 5\n"
                )
                .repeat(1)
                    + &format!("items:\n{}", "  - name: a\n    value: b\n".repeat(40)),
            ),
            2 => (
                format!("{n}.toml"),
                format!("[server]\nport = {n}\n[auth]\napi_key = \"k{n}\"\n")
                    + &"[[item]]\nname = \"a\"\nvalue = 1\n".repeat(40),
            ),
            3 => (
                format!("{n}.json"),
                format!(
                    "{{\"name\": \"svc\", \"token\": \"t{n}\", \"items\": [{}]}}\n",
                    vec!["{\"a\": 1, \"b\": \"two\"}"; 60].join(", ")
                ),
            ),
            4 => (
                format!("{n}.ini"),
                format!("[db]\nhost = h\npassword = p{n}\n")
                    + &"[section]\nkey = value\nother = 2\n".repeat(40),
            ),
            _ => (
                format!("{n}.txt"),
                "Ordinary notes, nothing secret.\n".repeat(60),
            ),
        };
        bytes += text.len() as u64;
        std::fs::write(dir.join(name), text).unwrap();
    }
    bytes
}

struct Counting(u64);
impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn best_of(runs: usize, mut f: impl FnMut() -> u64) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let started = Instant::now();
        out = f();
        best = best.min(started.elapsed().as_secs_f64());
    }
    (best, out)
}

fn main() {
    let files: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(6000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let input = fixture(&root, files);
    let plan = |redact: bool| FilesPlan {
        roots: vec![FileRoot {
            redact,
            ..FileRoot::plain(root.clone())
        }],
        words: Words::default(),
        max_file: 64 << 20,
        max_total: 1 << 40,
    };
    let walk = |redact: bool| {
        let mut out = Counting(0);
        write_tar(&plan(redact), &mut out, &|| false, &mut |_| {}).unwrap();
        out.0
    };
    let runs = 5;
    let (old, old_bytes) = best_of(runs, || {
        let mut out = Counting(0);
        {
            let mut tar = tar::Builder::new(&mut out);
            tar.append_dir_all("config", &root).unwrap();
            tar.finish().unwrap();
        }
        out.0
    });
    let (as_is, as_is_bytes) = best_of(runs, || walk(false));
    let (redacted, redacted_bytes) = best_of(runs, || walk(true));
    println!("files: {files}, input bytes: {input}, best of {runs} runs each");
    println!("append_dir_all (before redaction): {old:.3} s, {old_bytes} tar bytes");
    println!("walker, redact = false:            {as_is:.3} s, {as_is_bytes} tar bytes");
    println!("walker, redact = true:             {redacted:.3} s, {redacted_bytes} tar bytes");
    println!("ratio redact=true / append_dir_all: {:.2}", redacted / old);
    println!(
        "ratio redact=true / redact=false:   {:.2}",
        redacted / as_is
    );
    println!(
        "redaction throughput: {:.1} MiB/s",
        input as f64 / redacted / (1 << 20) as f64
    );
}
