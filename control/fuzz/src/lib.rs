//! What the control-plane fuzz targets share: scratch data directories and the store
//! helpers.

use std::path::{Path, PathBuf};

/// Where scratch data directories go: /dev/shm (no disk writes, fsync is free), else the
/// temp dir.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A fresh, empty directory `tandem-fuzz-TAG-PID` for this process. libFuzzer ends a run
/// with `exit`, so nothing removes it then: every call first removes the directories of
/// processes that are gone (`.ci/run` and `campaign.sh` remove the rest).
pub fn scratch_dir(tag: &str) -> PathBuf {
    let root = scratch_root();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(pid) = name
                .strip_prefix("tandem-fuzz-")
                .and_then(|rest| rest.rsplit_once('-'))
                .map(|(_, pid)| pid)
            else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = root.join(format!("tandem-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

/// Empties `dir` (keeps the directory).
pub fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// Where a target writes the seeds only it can make (real store files, state files) when
/// `seed-corpus.sh` runs it: `TANDEM_FUZZ_SEEDS=DIR`. `None` in a fuzzing run.
pub fn seed_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TANDEM_FUZZ_SEEDS")?);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    Some(dir)
}
