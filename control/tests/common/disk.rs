//! Disks that fail, for the durability tests: a size-limited tmpfs (ENOSPC once it is
//! filled) and a FUSE passthrough filesystem whose fsync fails with EIO on demand
//! (`faultfs.py`, Debian's python3-fusepy). Each is mounted for one test in its own temp dir
//! and unmounted in `Drop`, even after a panic. Mount them before starting the server: the
//! server's namespace (`ip netns exec`) sees the mounts that existed when it started.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

fn mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let p = path.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&p))
}

fn umount(path: &Path) {
    if mounted(path) {
        let _ = Command::new("umount").arg(path).status();
    }
    if mounted(path) {
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

/// A tmpfs of a fixed size.
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `"2m"`).
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tdm-e2e-tmpfs-")
            .tempdir()
            .expect("create the tmpfs mount point");
        let path = dir.path().to_owned();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tdm-e2e",
            ])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs on {}", path.display());
        Self { path, _dir: dir }
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }

    /// Takes every free block: writes a file until the filesystem says ENOSPC.
    pub fn fill(&self) {
        let mut f = std::fs::File::create(self.filler()).expect("create the filler");
        let block = vec![0x5au8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
    }

    /// Gives the space back.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        umount(&self.path);
    }
}

/// A FUSE passthrough over a backing directory whose fsync fails on demand.
pub struct FaultFs {
    /// Where it is mounted.
    pub path: PathBuf,
    flag: PathBuf,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl FaultFs {
    /// Mounts it and waits until the mount is there.
    pub fn mount() -> Self {
        let fusepy = Command::new(super::PYTHON)
            .args(["-c", "import fusepy"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            fusepy,
            "the EIO test needs fusepy for {} (apt: python3-fusepy)",
            super::PYTHON
        );
        let dir = tempfile::Builder::new()
            .prefix("tdm-e2e-faultfs-")
            .tempdir()
            .expect("create the faultfs dir");
        let (backing, path) = (dir.path().join("backing"), dir.path().join("mnt"));
        for d in [&backing, &path] {
            std::fs::create_dir(d).expect("create the faultfs dirs");
        }
        let script = dir.path().join("faultfs.py");
        std::fs::write(&script, include_str!("faultfs.py")).expect("write faultfs.py");
        let (flag, log) = (
            dir.path().join("fail-fsync"),
            dir.path().join("faultfs.log"),
        );
        let out = std::fs::File::create(&log).expect("create the faultfs log");
        let mut child = Command::new(super::PYTHON)
            .arg(&script)
            .arg(&backing)
            .arg(&path)
            .arg(&flag)
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start faultfs.py");
        let up = super::try_wait_until(Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            mounted(&path).then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => {}
            other => {
                super::reap(&mut child);
                umount(&path);
                panic!(
                    "faultfs did not mount ({other:?}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        Self {
            path,
            flag,
            log,
            child,
            _dir: dir,
        }
    }

    /// From now on, fsync and fdatasync of every file whose name contains `name_part` fail
    /// with EIO.
    pub fn fail_fsync(&self, name_part: &str) {
        std::fs::write(&self.flag, name_part).expect("write the faultfs flag");
    }

    /// fsync works again.
    pub fn heal(&self) {
        let _ = std::fs::remove_file(&self.flag);
    }

    /// What the filesystem process printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        umount(&self.path);
        if super::wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            super::reap(&mut self.child);
        }
    }
}
