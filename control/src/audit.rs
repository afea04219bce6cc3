//! The audit log: every change asked of the admin API, who asked, from where, what, and how it
//! ended, one JSON object a line in `DATA_DIR/audit.log` (mode 0600), and the same as a tracing
//! event under the `audit` target. Reads (`status`, `leases`, `audit`) are not recorded.
//!
//! The file is appended to with one `write` a line and rolled to `audit.log.1` past
//! [`ROLL_BYTES`], so it cannot fill the disk; [`AuditLog::recent`] reads both back, newest last.
//! A failure to write is logged and never fails the change itself: the change has happened,
//! and the tracing event still carries it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The audit log's file name inside `data_dir`.
pub const FILE_NAME: &str = "audit.log";
/// Past this size the file is renamed to `audit.log.1` (replacing the one before).
pub const ROLL_BYTES: u64 = 8 << 20;
/// The most entries one read returns.
pub const MAX_ENTRIES: usize = 10_000;

/// One change asked of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, Unix seconds.
    pub time: u64,
    /// Who: `uid 0 (pid 1234)` on the Unix socket, `anonymous` on TCP (no authentication yet).
    pub who: String,
    /// From where: `unix` or `tcp 192.0.2.7:51234`.
    pub from: String,
    /// The verb (`partner-down`).
    pub verb: String,
    /// The request as received.
    pub request: serde_json::Value,
    /// Whether it was carried out.
    pub ok: bool,
    /// What the daemon answered: its message, or the error.
    pub result: String,
}

/// The audit log of one data directory.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    /// The log in `data_dir` (opened on the first entry).
    pub fn new(data_dir: &Path) -> Self {
        AuditLog {
            path: data_dir.join(FILE_NAME),
            file: Mutex::new(None),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `entry` in the file and as a tracing event.
    pub fn record(&self, entry: &AuditEntry) {
        tracing::info!(
            target: "audit",
            who = %entry.who,
            from = %entry.from,
            verb = %entry.verb,
            request = %entry.request,
            ok = entry.ok,
            result = %entry.result,
            "admin change"
        );
        if let Err(e) = self.append(entry) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the audit log");
        }
    }

    fn append(&self, entry: &AuditEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = file.as_ref()
            && f.metadata()?.len() + line.len() as u64 > ROLL_BYTES
        {
            *file = None;
            std::fs::rename(&self.path, roll_path(&self.path))?;
        }
        if file.is_none() {
            let mut f = OpenOptions::new()
                .read(true)
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            // A line torn by a crash is ended, so that it does not swallow the next one.
            let len = f.metadata()?.len();
            if len > 0 {
                let mut last = [0u8; 1];
                f.seek(SeekFrom::Start(len - 1))?;
                f.read_exact(&mut last)?;
                if last[0] != b'\n' {
                    f.write_all(b"\n")?;
                }
            }
            *file = Some(f);
        }
        match file.as_mut() {
            // Durable before the change is answered: an audit trail that a power loss can
            // shorten is no trail (changes are rare; one fdatasync each is nothing).
            Some(f) => f.write_all(&line).and_then(|()| f.sync_data()),
            None => Ok(()),
        }
    }

    /// The last `limit` entries (at most [`MAX_ENTRIES`]), oldest first; lines that do not
    /// parse (a torn last line after a crash) are skipped.
    pub fn recent(&self, limit: usize) -> io::Result<Vec<AuditEntry>> {
        let limit = limit.min(MAX_ENTRIES);
        let mut entries = read_entries(&self.path, limit)?;
        if entries.len() < limit {
            let mut older = read_entries(&roll_path(&self.path), limit - entries.len())?;
            older.append(&mut entries);
            entries = older;
        }
        let skip = entries.len().saturating_sub(limit);
        Ok(entries.split_off(skip))
    }
}

fn roll_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// The last `want` entries in `path` (none when it does not exist), oldest first. Reads from
/// the end in growing windows until it has them, and never more than [`ROLL_BYTES`], so a
/// short answer costs little and a file grown by hand cannot exhaust memory.
fn read_entries(path: &Path, want: usize) -> io::Result<Vec<AuditEntry>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut window: u64 = 64 << 10;
    loop {
        let start = len.saturating_sub(window.min(ROLL_BYTES));
        f.seek(SeekFrom::Start(start))?;
        let mut text = Vec::new();
        (&mut f).take(len - start).read_to_end(&mut text)?;
        let mut lines = text.split(|&b| b == b'\n');
        if start > 0 {
            // Most likely the tail of a line that began before the window.
            lines.next();
        }
        // Parsed from the newest back, only as many as wanted.
        let lines: Vec<&[u8]> = lines.collect();
        let mut entries: Vec<AuditEntry> = lines
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_slice(l).ok())
            .take(want)
            .collect();
        if entries.len() >= want || start == 0 || window >= ROLL_BYTES {
            entries.reverse();
            return Ok(entries);
        }
        window = window.saturating_mul(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> AuditEntry {
        AuditEntry {
            time: 1_763_784_000 + i,
            who: "uid 0 (pid 1)".into(),
            from: "unix".into(),
            verb: "partner-down".into(),
            request: serde_json::json!({"verb": "partner-down", "name": "pair"}),
            ok: i.is_multiple_of(2),
            result: format!("result {i}"),
        }
    }

    #[test]
    fn entries_come_back_in_order_across_a_roll_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        assert!(log.recent(10).expect("read").is_empty(), "no file yet");
        for i in 0..3 {
            log.record(&entry(i));
        }
        // A crash mid-line leaves a torn line: skipped, the rest read.
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open")
            .write_all(b"{\"time\":17")
            .expect("tear");
        let got = log.recent(10).expect("read");
        assert_eq!(got, (0..3).map(entry).collect::<Vec<_>>());
        // And the next writer ends it before appending.
        AuditLog::new(dir.path()).record(&entry(4));
        assert_eq!(log.recent(1).expect("read"), vec![entry(4)]);

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(log.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // More than the first window holds: read back from further.
        let many = AuditLog::new(&dir.path().join("many"));
        std::fs::create_dir(dir.path().join("many")).expect("mkdir");
        for i in 0..2000 {
            many.record(&entry(i));
        }
        assert!(std::fs::metadata(many.path()).expect("stat").len() > 64 << 10);
        let got = many.recent(1500).expect("read");
        assert_eq!(got.len(), 1500);
        assert_eq!(got[0], entry(500));
        assert_eq!(got[1499], entry(1999));

        // Rolled: the old file is read before the new one.
        let again = AuditLog::new(dir.path());
        std::fs::rename(log.path(), roll_path(log.path())).expect("roll");
        again.record(&entry(3));
        let got = again.recent(3).expect("read");
        assert_eq!(got, vec![entry(2), entry(4), entry(3)]);
    }
}
