//! A real S3 server for tests: `moto_server` (PyPI `moto[server]`, installed
//! by `scripts/ensure-deps.sh` into the tests' venv, `crate::venv`), started on 127.0.0.1 with a
//! port the kernel picks (`-p 0`; the port is read from its log, so two
//! tests never race for one), killed when dropped. Each test starts its
//! own. The bucket is inspected and tampered with through boto3 from the
//! same venv, so the tests look at it with another S3 client than the
//! daemon's.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The credentials every test remote uses (moto accepts any).
pub const ACCESS_KEY_ID: &str = "berkut-test-key";
pub const SECRET_ACCESS_KEY: &str = "berkut-test-secret-never-logged";

fn moto_bin() -> PathBuf {
    crate::venv_bin("moto_server")
}

pub struct S3Server {
    child: Option<Child>,
    port: u16,
    /// Whether the server checks credentials (`S3Server::with_auth`).
    auth: bool,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server that takes any credentials.
    pub fn start() -> S3Server {
        Self::start_on(0, false)
    }

    /// Starts a server that checks credentials against its own (empty)
    /// IAM: every key is unknown, so every request is refused.
    pub fn with_auth() -> S3Server {
        Self::start_on(0, true)
    }

    fn start_on(port: u16, auth: bool) -> S3Server {
        let dir = crate::temp_dir("moto-");
        let mut server = S3Server {
            child: None,
            port,
            auth,
            dir,
        };
        server.spawn().expect("moto_server starts");
        server
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(moto_bin());
        cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if self.auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let mut child = cmd.spawn().context("start moto_server")?;
        let stderr = child.stderr.take().context("moto_server's stderr")?;
        // The server prints "Running on http://127.0.0.1:PORT" once it
        // listens; its stderr is then drained by a thread so it never blocks.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                        let port: String =
                            rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                        let _ = tx.send(port.parse::<u16>().ok());
                        sent = true;
                    }
                }
            }
            if !sent {
                let _ = tx.send(None);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => {
                self.port = port;
                self.child = Some(child);
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("moto_server did not start listening");
            }
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its buckets are gone with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it still accepts connections but
    /// answers nothing, as a server that hangs.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("the server runs");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal moto_server");
    }

    /// Starts the server again on the same port (empty). Retries for a
    /// while: the port may linger in the kernel a moment after the kill.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("moto_server restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Runs a boto3 script with `s3` bound to a client of this server;
    /// returns its stdout.
    pub fn boto(&self, script: &str) -> String {
        let program = format!(
            "import boto3, sys\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='{ACCESS_KEY_ID}', aws_secret_access_key='x')\n{script}\n",
            self.endpoint()
        );
        let out = Command::new(crate::venv_bin("python"))
            .arg("-c")
            .arg(&program)
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "boto3 script failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            script
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    }

    /// The keys in a bucket, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let out = self.boto(&format!(
            "for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', []): print(o['Key'])"
        ));
        let mut keys: Vec<String> = out.lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> usize {
        self.boto(&format!(
            "print(len(s3.list_multipart_uploads(Bucket='{bucket}').get('Uploads', [])))"
        ))
        .trim()
        .parse()
        .expect("a count")
    }

    /// The keys of the multipart uploads begun and neither completed nor
    /// aborted, sorted.
    pub fn open_upload_keys(&self, bucket: &str) -> Vec<String> {
        let out = self.boto(&format!(
            "for u in s3.list_multipart_uploads(Bucket='{bucket}').get('Uploads', []): print(u['Key'])"
        ));
        let mut keys: Vec<String> = out.lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }

    /// Begins a multipart upload of `key` and stores one part, then leaves
    /// it unfinished, as a client that died would.
    pub fn leave_upload(&self, bucket: &str, key: &str) {
        self.boto(&format!(
            "u = s3.create_multipart_upload(Bucket='{bucket}', Key='{key}')['UploadId']\n\
             s3.upload_part(Bucket='{bucket}', Key='{key}', UploadId=u, PartNumber=1, Body=b'x' * 1024)"
        ));
    }

    pub fn get(&self, bucket: &str, key: &str, dest: &Path) {
        self.boto(&format!(
            "s3.download_file('{bucket}', '{key}', '{}')",
            dest.display()
        ));
    }

    pub fn put(&self, bucket: &str, key: &str, src: &Path) {
        self.boto(&format!(
            "s3.upload_file('{}', '{bucket}', '{key}')",
            src.display()
        ));
    }

    /// The CRC32C the server keeps for an object (`crc` or `crc-N`), if any.
    pub fn stored_crc32c(&self, bucket: &str, key: &str) -> Option<String> {
        let out = self.boto(&format!(
            "print(s3.head_object(Bucket='{bucket}', Key='{key}', ChecksumMode='ENABLED')\
             .get('ChecksumCRC32C') or '')"
        ));
        Some(out.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The composite CRC32C of a file cut in parts of `part` bytes, as S3
    /// computes it, by Python's `crc32c` (not the daemon's code).
    pub fn composite_crc32c(&self, path: &Path, part: usize) -> String {
        self.boto(&format!(
            "import base64, crc32c\n\
             data = open('{}', 'rb').read()\n\
             parts = [data[i:i + {part}] for i in range(0, len(data), {part})]\n\
             crcs = b''.join(crc32c.crc32c(p).to_bytes(4, 'big') for p in parts)\n\
             print(base64.b64encode(crc32c.crc32c(crcs).to_bytes(4, 'big')).decode() + '-' + str(len(parts)))",
            path.display()
        ))
        .trim()
        .to_owned()
    }

    /// The size of an object.
    pub fn size(&self, bucket: &str, key: &str) -> u64 {
        self.boto(&format!(
            "print(s3.head_object(Bucket='{bucket}', Key='{key}')['ContentLength'])"
        ))
        .trim()
        .parse()
        .expect("a size")
    }

    /// Writes a secret access key file (mode 0600) in `dir` and returns the
    /// `[[remote]]` entry for this server's `bucket` under `prefix`.
    pub fn remote_toml(&self, name: &str, bucket: &str, prefix: &str, dir: &Path) -> String {
        let secret = dir.join(format!("{name}.secret"));
        write_secret(&secret, SECRET_ACCESS_KEY, 0o600);
        format!(
            "[[remote]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             bucket = \"{bucket}\"\nprefix = \"{prefix}\"\npath_style = true\n\
             access_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key_file = \"{}\"\n",
            self.endpoint(),
            secret.display()
        )
    }
}

/// Writes a secret file with `mode`.
pub fn write_secret(path: &Path, secret: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{secret}\n")).expect("write the secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("chmod the secret file");
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
