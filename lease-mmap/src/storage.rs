//! Where journals live, behind a small trait (redb's `StorageBackend` pattern) so tests can
//! inject lost unsynced writes, torn tails and fsync failures deterministically.
//!
//! [`FileBackend`] is the real thing; [`SimBackend`] keeps every journal in memory as a
//! "live" image (what the page cache holds) and a "durable" one (what survived the last
//! `sync_data`), and can crash, tear and fail on demand.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// One journal file.
pub trait JournalStorage: Send + fmt::Debug {
    /// Bytes in the file.
    fn size(&self) -> io::Result<u64>;
    /// Fill `buf` from `offset`; short only at the end of the file (returns bytes read).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file at least `len` bytes long, the new bytes zero and written (not a hole,
    /// not an unwritten extent), so that writes below `len` change no metadata and the
    /// fdatasync after them writes data only. Takes effect at the next `sync_data`. The
    /// default does nothing (the simulated backend models appends).
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }
}

/// A directory of journals.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Open (creating) worker `worker`'s journal in `dir`. A created file is in the
    /// directory durably only after [`Backend::sync_dir`].
    fn open_journal(&self, dir: &Path, worker: u16) -> io::Result<Box<dyn JournalStorage>>;
    /// Workers that have a journal in `dir`.
    fn journals(&self, dir: &Path) -> io::Result<Vec<u16>>;
    fn remove_journal(&self, dir: &Path, worker: u16) -> io::Result<()>;
    /// Rename worker `worker`'s journal to `<name>.<suffix>` (with `-2`, `-3`, ... added if
    /// that exists; never over another file). Returns the new path.
    fn set_aside(&self, dir: &Path, worker: u16, suffix: &str) -> io::Result<PathBuf>;
    /// fsync `dir`: journals created, renamed or removed in it stay so after a crash.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The first `<name>.<suffix>`, `<name>.<suffix>-2`, ... for which `taken` is false.
fn aside_name(dir: &Path, worker: u16, suffix: &str, taken: impl Fn(&Path) -> bool) -> PathBuf {
    let base = format!("{}.{suffix}", journal_name(worker));
    let mut path = dir.join(&base);
    let mut n = 2;
    while taken(&path) {
        path = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    path
}

/// The file name of worker `worker`'s journal.
pub fn journal_name(worker: u16) -> String {
    format!("journal-{worker:05}.tdj")
}

fn parse_journal_name(name: &str) -> Option<u16> {
    name.strip_prefix("journal-")?
        .strip_suffix(".tdj")?
        .parse()
        .ok()
}

/// Journals as files in the data directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileBackend;

#[derive(Debug)]
struct FileJournal {
    file: File,
}

impl JournalStorage for FileJournal {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut at = self.size()?;
        while at < len {
            let n = usize::try_from(len - at)
                .unwrap_or(usize::MAX)
                .min(ZEROS.len());
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }
}

impl Backend for FileBackend {
    fn open_journal(&self, dir: &Path, worker: u16) -> io::Result<Box<dyn JournalStorage>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::FILE_MODE)
            .open(dir.join(journal_name(worker)))?;
        Ok(Box::new(FileJournal { file }))
    }
    fn journals(&self, dir: &Path) -> io::Result<Vec<u16>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Some(w) = e?.file_name().to_str().and_then(parse_journal_name) {
                v.push(w);
            }
        }
        v.sort_unstable();
        Ok(v)
    }
    fn remove_journal(&self, dir: &Path, worker: u16) -> io::Result<()> {
        std::fs::remove_file(dir.join(journal_name(worker)))
    }
    fn set_aside(&self, dir: &Path, worker: u16, suffix: &str) -> io::Result<PathBuf> {
        let to = aside_name(dir, worker, suffix, |p| p.symlink_metadata().is_ok());
        std::fs::rename(dir.join(journal_name(worker)), &to)?;
        Ok(to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// One simulated journal file.
#[derive(Debug, Default, Clone)]
pub struct SimFile {
    /// What a reader sees now (the page cache).
    pub live: Vec<u8>,
    /// What the last successful `sync_data` made durable.
    pub durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<(PathBuf, u16), Arc<Mutex<SimFile>>>,
    /// Journals created since their directory's last `sync_dir`: a power loss forgets them.
    unsynced: std::collections::BTreeSet<(PathBuf, u16)>,
    /// Journals set aside, by their new path.
    aside: BTreeMap<PathBuf, SimFile>,
    /// `sync_data` calls left before they start failing with EIO (`None`: never).
    syncs_left: Option<u64>,
    /// `write_at` calls left before they start failing with ENOSPC (`None`: never).
    writes_left: Option<u64>,
    /// While set, `sync_data` blocks until the gate opens ([`SimBackend::hold_syncs`]).
    gate: Option<Arc<GateState>>,
}

#[derive(Debug, Default)]
struct GateState {
    open: Mutex<bool>,
    opened: Condvar,
    /// `sync_data` calls blocked on the gate now.
    waiting: Mutex<usize>,
    arrived: Condvar,
}

/// Holds every journal `sync_data` of a [`SimBackend`] until it is opened or dropped: a
/// test keeps a group commit in its fdatasync for as long as it likes.
#[derive(Debug)]
pub struct SyncGate {
    state: Arc<GateState>,
    backend: SimBackend,
}

impl SyncGate {
    /// Waits until `n` `sync_data` calls are held (or `timeout` passed): whether they are.
    pub fn wait_held(&self, n: usize, timeout: std::time::Duration) -> bool {
        let waiting = lock(&self.state.waiting);
        let (w, _) = self
            .state
            .arrived
            .wait_timeout_while(waiting, timeout, |w| *w < n)
            .unwrap_or_else(PoisonError::into_inner);
        *w >= n
    }

    /// Lets every held and later `sync_data` through.
    pub fn open(self) {}
}

impl Drop for SyncGate {
    fn drop(&mut self) {
        lock(&self.backend.state).gate = None;
        *lock(&self.state.open) = true;
        self.state.opened.notify_all();
    }
}

/// In-memory journals with a live and a durable image each, and fault knobs.
#[derive(Clone, Debug, Default)]
pub struct SimBackend {
    state: Arc<Mutex<SimState>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// After `n` more successful `sync_data` calls, every further one fails with EIO.
    pub fn fail_sync_after(&self, n: u64) {
        lock(&self.state).syncs_left = Some(n);
    }

    /// After `n` more successful writes, every further one fails with ENOSPC.
    pub fn fail_write_after(&self, n: u64) {
        lock(&self.state).writes_left = Some(n);
    }

    /// Holds every journal `sync_data` from now until the gate is opened or dropped.
    pub fn hold_syncs(&self) -> SyncGate {
        let state = Arc::new(GateState::default());
        lock(&self.state).gate = Some(Arc::clone(&state));
        SyncGate {
            state,
            backend: self.clone(),
        }
    }

    /// Stop injecting failures.
    pub fn heal(&self) {
        let mut s = lock(&self.state);
        s.syncs_left = None;
        s.writes_left = None;
    }

    /// Power loss: every journal loses what was not synced, except that the first
    /// `keep_unsynced` bytes of each unsynced tail reach the disk (a torn last entry when it
    /// is not a multiple of the entry size). A journal created after its directory's last
    /// `sync_dir` is gone.
    pub fn power_loss(&self, keep_unsynced: usize) {
        let mut s = lock(&self.state);
        for key in std::mem::take(&mut s.unsynced) {
            s.files.remove(&key);
        }
        for f in s.files.values() {
            let mut f = lock(f);
            let mut img = f.durable.clone();
            if f.live.len() > img.len() && f.live[..img.len()] == img[..] {
                let end = (img.len() + keep_unsynced).min(f.live.len());
                img.extend_from_slice(&f.live[f.durable.len()..end]);
            }
            f.live = img.clone();
            f.durable = img;
        }
    }

    /// A copy of worker `worker`'s journal in `dir`.
    pub fn file(&self, dir: &Path, worker: u16) -> Option<SimFile> {
        lock(&self.state)
            .files
            .get(&(dir.to_path_buf(), worker))
            .map(|f| lock(f).clone())
    }

    /// The journals set aside ([`Backend::set_aside`]) by their new path.
    pub fn set_aside_files(&self) -> BTreeMap<PathBuf, SimFile> {
        lock(&self.state).aside.clone()
    }

    /// Overwrite worker `worker`'s journal (both images) with `bytes`.
    pub fn set_file(&self, dir: &Path, worker: u16, bytes: Vec<u8>) {
        let mut s = lock(&self.state);
        let f = s.files.entry((dir.to_path_buf(), worker)).or_default();
        let mut f = lock(f);
        f.live = bytes.clone();
        f.durable = bytes;
    }
}

#[derive(Debug)]
struct SimJournal {
    file: Arc<Mutex<SimFile>>,
    state: Arc<Mutex<SimState>>,
}

fn countdown(left: &mut Option<u64>) -> bool {
    match left {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

impl JournalStorage for SimJournal {
    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.file).live.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let f = lock(&self.file);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(f.live.len());
        let n = buf.len().min(f.live.len() - start);
        buf[..n].copy_from_slice(&f.live[start..start + n]);
        Ok(n)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !countdown(&mut lock(&self.state).writes_left) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut f = lock(&self.file);
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset"))?;
        if f.live.len() < start + data.len() {
            f.live.resize(start + data.len(), 0);
        }
        f.live[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let gate = lock(&self.state).gate.clone();
        if let Some(gate) = gate {
            *lock(&gate.waiting) += 1;
            gate.arrived.notify_all();
            let open = lock(&gate.open);
            drop(
                gate.opened
                    .wait_while(open, |open| !*open)
                    .unwrap_or_else(PoisonError::into_inner),
            );
            *lock(&gate.waiting) -= 1;
        }
        if !countdown(&mut lock(&self.state).syncs_left) {
            // fsyncgate: the kernel may drop the dirty pages it failed to write.
            let mut f = lock(&self.file);
            f.live = f.durable.clone();
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let mut f = lock(&self.file);
        f.durable = f.live.clone();
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("len"))?;
        lock(&self.file).live.resize(len, 0);
        Ok(())
    }
}

impl Backend for SimBackend {
    fn open_journal(&self, dir: &Path, worker: u16) -> io::Result<Box<dyn JournalStorage>> {
        let mut s = lock(&self.state);
        let key = (dir.to_path_buf(), worker);
        if !s.files.contains_key(&key) {
            s.unsynced.insert(key.clone());
        }
        let file = Arc::clone(s.files.entry(key).or_default());
        Ok(Box::new(SimJournal {
            file,
            state: Arc::clone(&self.state),
        }))
    }
    fn journals(&self, dir: &Path) -> io::Result<Vec<u16>> {
        Ok(lock(&self.state)
            .files
            .keys()
            .filter(|(d, _)| d == dir)
            .map(|(_, w)| *w)
            .collect())
    }
    fn remove_journal(&self, dir: &Path, worker: u16) -> io::Result<()> {
        lock(&self.state).files.remove(&(dir.to_path_buf(), worker));
        Ok(())
    }
    fn set_aside(&self, dir: &Path, worker: u16, suffix: &str) -> io::Result<PathBuf> {
        let mut s = lock(&self.state);
        let key = (dir.to_path_buf(), worker);
        let file = s
            .files
            .remove(&key)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.unsynced.remove(&key);
        let to = aside_name(dir, worker, suffix, |p| s.aside.contains_key(p));
        let content = lock(&file).clone();
        s.aside.insert(to.clone(), content);
        Ok(to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        lock(&self.state).unsynced.retain(|(d, _)| d != dir);
        Ok(())
    }
}
