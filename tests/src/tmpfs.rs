//! A small tmpfs mounted for one test, to make a directory fill up for
//! real (no fake of the disk). Mounting needs root; without it the test
//! says so and skips. The mount point is a fresh temporary directory, and
//! the file system is unmounted when the value is dropped, also when the
//! test fails (lazily, so a file still open does not keep it mounted).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes` (rounded up to whole pages), mode
    /// 0755 so the PostgreSQL account can reach it. `None` without root.
    ///
    /// Panics if the mount fails as root.
    pub fn mount(size_bytes: u64) -> Option<Tmpfs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a small file system needs root");
            return None;
        }
        let dir = crate::temp_dir("tmpfs-");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_bytes},mode=0755"))
            .arg("berkut-test")
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Tmpfs { path, _dir: dir })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file named `name` until the file system is full, and
    /// returns its path (remove it to free the space).
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.path.join(name);
        let mut file = std::fs::File::create(&path).expect("filler file");
        let block = vec![0u8; 64 * 1024];
        loop {
            if file.write_all(&block).is_err() {
                break;
            }
        }
        // Also the last partial block, so not even a byte is left.
        while file.write(&[0u8]).unwrap_or(0) > 0 {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
