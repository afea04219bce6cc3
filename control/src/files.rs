//! Small files the daemon keeps in `data_dir` (the failover state, the API tokens), written so
//! that a crash leaves the old file or the new one, never a torn one, and so that only their
//! owner reads them.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` as the whole of `path`: a temporary file beside it (mode 0600), synced,
/// handed to `prepare` (to change its owner, say), renamed over `path`, and the directory
/// synced. The error names the file it happened to.
pub fn write_private(
    path: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), (PathBuf, io::Error)> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let at = |p: &Path| {
        let p = p.to_owned();
        move |e| (p, e)
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(at(&tmp))?;
    f.write_all(bytes).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    prepare(&tmp).map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_file_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        write_private(&path, b"one", |_| Ok(())).expect("write");
        write_private(&path, b"two", |_| Ok(())).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("f.tmp").exists());
        // A failing `prepare` leaves the old file.
        let e = write_private(&path, b"three", |_| Err(io::Error::other("no")))
            .expect_err("prepare fails");
        assert_eq!(e.0, dir.path().join("f.tmp"));
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
    }
}
