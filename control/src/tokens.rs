//! API tokens for the HTTP API: who may read and who may change (DESIGN.md §7).
//!
//! A token is 256 random bits, shown once when it is made (`tandemctl token add NAME --role
//! ROLE`) and stored only as its SHA-256 in `DATA_DIR/tokens` (0600), one JSON object a line
//! (`name`, `role`, `sha256`, `created`). A fast hash is right here: the token is a random key,
//! not a password, so there is nothing to guess. The daemon rereads the file when it changes,
//! so a token added or removed takes effect at its next use, without a restart.
//!
//! Roles, after the seeds (Windows' DHCP Administrators and DHCP Users, Micetro's roles):
//! `read-only` (status, leases, metrics) and `dhcp-admin` (also partner-down and the audit log).
//! The scope-level permission bits of the management issue come with the scope verbs.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The token file's name in `data_dir`.
pub const FILE_NAME: &str = "tokens";

/// How often, at most, the daemon looks at whether the file changed.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Status, leases, metrics.
    ReadOnly,
    /// Everything: also partner-down and the audit log.
    DhcpAdmin,
}

impl Role {
    /// The name as written (`read-only`, `dhcp-admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::DhcpAdmin => "dhcp-admin",
        }
    }

    /// `read-only` or `dhcp-admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read-only" => Some(Role::ReadOnly),
            "dhcp-admin" => Some(Role::DhcpAdmin),
            _ => None,
        }
    }

    /// Whether a token of this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Who or what holds it (`noc`, `prometheus`): the audit log names callers by it.
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// When it was made, Unix seconds.
    pub created: u64,
}

/// Why a token file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}:{line}: not a token entry: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("a token named {0:?} exists already (remove it first)")]
    Exists(String),
    #[error("token names are 1 to 64 letters, digits, '-', '_' or '.': {0:?}")]
    BadName(String),
}

fn hash_hex(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn path_of(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Every token in `data_dir`'s file (none when there is no file).
pub fn list(data_dir: &Path) -> Result<Vec<TokenEntry>, TokenError> {
    let path = path_of(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TokenError::Io { path, source }),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TokenError::Malformed {
                path: path.clone(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Writes `entries` as the whole file, atomically (a temporary file renamed over it), 0600.
fn store(data_dir: &Path, entries: &[TokenEntry]) -> Result<(), TokenError> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).unwrap_or_default());
        text.push('\n');
    }
    crate::files::write_private(&path_of(data_dir), text.as_bytes(), |tmp| {
        // Made by root for a daemon that runs as its own user: the file is data_dir's owner's.
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(data_dir) {
            Ok(meta) if dataplane::sys::euid() == 0 && meta.uid() != 0 => {
                std::os::unix::fs::lchown(tmp, Some(meta.uid()), Some(meta.gid()))
            }
            _ => Ok(()),
        }
    })
    .map_err(|(path, source)| TokenError::Io { path, source })
}

/// Makes a token for `name` with `role`, stores its hash, and returns the token (the only time
/// it is ever shown).
pub fn add(data_dir: &Path, name: &str, role: Role) -> Result<String, TokenError> {
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok_name {
        return Err(TokenError::BadName(name.to_owned()));
    }
    let mut entries = list(data_dir)?;
    if entries.iter().any(|e| e.name == name) {
        return Err(TokenError::Exists(name.to_owned()));
    }
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|source| TokenError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    entries.push(TokenEntry {
        name: name.to_owned(),
        role,
        sha256: hash_hex(&token),
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    store(data_dir, &entries)?;
    Ok(token)
}

/// Removes the token called `name`; whether there was one.
pub fn remove(data_dir: &Path, name: &str) -> Result<bool, TokenError> {
    let mut entries = list(data_dir)?;
    let before = entries.len();
    entries.retain(|e| e.name != name);
    if entries.len() == before {
        return Ok(false);
    }
    store(data_dir, &entries)?;
    Ok(true)
}

/// The daemon's view of the token file, reread when it changes.
#[derive(Debug)]
pub struct Tokens {
    data_dir: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    checked: Option<Instant>,
    stamp: Option<(SystemTime, u64)>,
    entries: Vec<TokenEntry>,
}

impl Tokens {
    /// The tokens of `data_dir` (read at first use).
    pub fn new(data_dir: &Path) -> Self {
        Tokens {
            data_dir: data_dir.to_owned(),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The name and role of the token whose text is `token`, if it is one.
    pub fn authenticate(&self, token: &str) -> Option<(String, Role)> {
        let want = hash_hex(token);
        let mut c = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if c.checked.is_none_or(|t| t.elapsed() >= RECHECK) {
            c.checked = Some(Instant::now());
            let stamp = std::fs::metadata(path_of(&self.data_dir))
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            if stamp != c.stamp {
                match list(&self.data_dir) {
                    Ok(entries) => c.entries = entries,
                    Err(e) => {
                        // Keep what was read last; say why the new file is not taken.
                        tracing::error!(error = %e, "http: token file not reread");
                    }
                }
                c.stamp = stamp;
            }
        }
        c.entries
            .iter()
            .find(|e| constant_time_eq(e.sha256.as_bytes(), want.as_bytes()))
            .map(|e| (e.name.clone(), e.role))
    }
}

/// Equality that takes as long whatever the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_token_is_shown_once_and_stored_as_its_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = add(dir.path(), "noc", Role::ReadOnly).expect("add");
        assert_eq!(token.len(), 64);
        let file = std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("file");
        assert!(!file.contains(&token), "the token itself is stored: {file}");
        assert!(file.contains(&hash_hex(&token)), "{file}");
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let tokens = Tokens::new(dir.path());
        assert_eq!(
            tokens.authenticate(&token),
            Some(("noc".into(), Role::ReadOnly))
        );
        assert_eq!(
            tokens.authenticate(&format!("{token}\n")),
            Some(("noc".into(), Role::ReadOnly))
        );
        assert_eq!(tokens.authenticate("0".repeat(64).as_str()), None);
        assert_eq!(tokens.authenticate(""), None);

        assert!(matches!(
            add(dir.path(), "noc", Role::DhcpAdmin),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            add(dir.path(), "a b", Role::DhcpAdmin),
            Err(TokenError::BadName(_))
        ));
        let admin = add(dir.path(), "ops", Role::DhcpAdmin).expect("add");
        assert_eq!(list(dir.path()).expect("list").len(), 2);
        assert!(remove(dir.path(), "noc").expect("remove"));
        assert!(!remove(dir.path(), "noc").expect("remove"));
        // Taken into account at the next look at the file.
        std::thread::sleep(RECHECK);
        assert_eq!(tokens.authenticate(&token), None);
        assert_eq!(
            tokens.authenticate(&admin),
            Some(("ops".into(), Role::DhcpAdmin))
        );
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::DhcpAdmin.allows(Role::ReadOnly));
        assert!(Role::DhcpAdmin.allows(Role::DhcpAdmin));
        assert!(Role::ReadOnly.allows(Role::ReadOnly));
        assert!(!Role::ReadOnly.allows(Role::DhcpAdmin));
        assert_eq!(Role::parse("dhcp-admin"), Some(Role::DhcpAdmin));
        assert_eq!(Role::parse("root"), None);
    }
}
