//! The failover state of each relationship on disk: what [`Fsm::persisted`] returns,
//! stored so a restart resumes where it stopped (ISC writes the same into its lease file,
//! `db.c:766-812`).
//!
//! One file per relationship in `data_dir`, `failover-<name>.state`: an rkyv archive,
//! validated (bytecheck) on open, followed by a little-endian CRC-32C of the archive so a
//! flipped bit inside a number (or in padding) is refused too. Written atomically: a temp file, fsync, rename over the
//! old one, fsync of the directory. A missing file means the relationship is new (the FSM
//! then starts from RECOVER); a present but unreadable one is an error, never silently
//! treated as new, because starting fresh could hand out addresses the partner holds.
//!
//! Versions (the magic's last byte): 2 adds the last time of operation (draft §9.3.2 step
//! 5), written every [`OPERATION_RECORD_INTERVAL`] while the relationship runs. Version 1
//! files still load, with that time unknown (`None`), which STARTUP treats as "may have
//! served until now": a partner found in PARTNER-DOWN then leads to POTENTIAL-CONFLICT, never
//! to RECOVER. The next store writes version 2.
//!
//! [`OPERATION_RECORD_INTERVAL`]: super::fsm::OPERATION_RECORD_INTERVAL
//!
//! [`Fsm::persisted`]: super::fsm::Fsm::persisted

use std::io;
use std::path::{Path, PathBuf};

use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::UnixTime;
use super::fsm::{PersistedState, StateKind};
use super::hash::Hba;

/// Format tag: `TDMFOST` and a version byte.
const MAGIC: [u8; 8] = *b"TDMFOST\x02";
/// Version 1: [`RecordV1`], without the last time of operation.
const MAGIC_V1: [u8; 8] = *b"TDMFOST\x01";

/// The archived record. Plain numbers only: no `usize`, no platform-dependent layout.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
struct Record {
    magic: [u8; 8],
    /// The relationship name, so a file copied under another name is refused.
    name: Vec<u8>,
    my_state: u8,
    my_stos: u32,
    /// 0 = partner not heard from yet.
    partner_state: u8,
    partner_stos: u32,
    mclt: u32,
    hba: [u8; 32],
    partner_down_since: u32,
    /// 0 = unknown.
    last_operation: u32,
}

/// Version 1 of [`Record`], read only.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
struct RecordV1 {
    magic: [u8; 8],
    /// The relationship name, so a file copied under another name is refused.
    name: Vec<u8>,
    my_state: u8,
    my_stos: u32,
    /// 0 = partner not heard from yet.
    partner_state: u8,
    partner_stos: u32,
    mclt: u32,
    hba: [u8; 32],
    partner_down_since: u32,
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: corrupt failover state file ({reason}); move it away to start this relationship over in RECOVER",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: DecodeError },
}

/// Why a state file's bytes are not a usable state for the relationship.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes is too short")]
    TooShort(usize),
    #[error("checksum mismatch")]
    Checksum,
    #[error("{0}")]
    Archive(rancor::Error),
    #[error("not a tandem failover state file (bad magic)")]
    Magic,
    #[error("it belongs to relationship {0:?}")]
    OtherRelationship(String),
    #[error("invalid own state {0}")]
    OwnState(u8),
    #[error("invalid partner state {0}")]
    PartnerState(u8),
}

/// Where the state of relationship `name` lives in `data_dir`. Names made only of
/// `[A-Za-z0-9._-]` (not starting with a dot) are used as they are, others hex-encoded.
pub fn state_path(data_dir: &Path, name: &str) -> PathBuf {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let stem = if plain {
        name.to_owned()
    } else {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}")
    };
    data_dir.join(format!("failover-{stem}.state"))
}

fn encode(name: &str, s: &PersistedState) -> Vec<u8> {
    let r = Record {
        magic: MAGIC,
        name: name.as_bytes().to_vec(),
        my_state: s.my_state as u8,
        my_stos: s.my_stos.0,
        partner_state: s.partner_state.map_or(0, |p| p as u8),
        partner_stos: s.partner_stos.0,
        mclt: s.mclt,
        hba: s.hba.0,
        partner_down_since: s.partner_down_since.0,
        last_operation: s.last_operation.map_or(0, |t| t.0),
    };
    let mut bytes = rkyv::to_bytes::<rancor::Error>(&r)
        .map(|v| v.to_vec())
        .unwrap_or_default();
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes and checks a state file's bytes for relationship `name`.
pub fn decode(name: &str, bytes: &[u8]) -> Result<PersistedState, DecodeError> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(DecodeError::TooShort(bytes.len()));
    };
    if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
        return Err(DecodeError::Checksum);
    }
    let mut a = AlignedVec::<16>::with_capacity(body.len());
    a.extend_from_slice(body);
    // The current version first; a version 1 archive does not validate as one (or carries
    // the other magic), and is read as version 1.
    let r = match rkyv::from_bytes::<Record, rancor::Error>(&a) {
        Ok(r) if r.magic == MAGIC => r,
        current => match rkyv::from_bytes::<RecordV1, rancor::Error>(&a) {
            Ok(v1) if v1.magic == MAGIC_V1 => Record::from(v1),
            // Neither version: say what the current one found wrong.
            _ => {
                return Err(match current {
                    Ok(_) => DecodeError::Magic,
                    Err(e) => DecodeError::Archive(e),
                });
            }
        },
    };
    if r.name != name.as_bytes() {
        return Err(DecodeError::OtherRelationship(
            String::from_utf8_lossy(&r.name).into_owned(),
        ));
    }
    let my_state = match StateKind::from_u8(r.my_state) {
        Some(StateKind::Startup) | None => {
            return Err(DecodeError::OwnState(r.my_state));
        }
        Some(s) => s,
    };
    let partner_state = match r.partner_state {
        0 => None,
        v => Some(StateKind::from_u8(v).ok_or(DecodeError::PartnerState(v))?),
    };
    Ok(PersistedState {
        my_state,
        my_stos: UnixTime(r.my_stos),
        partner_state,
        partner_stos: UnixTime(r.partner_stos),
        mclt: r.mclt,
        hba: Hba(r.hba),
        partner_down_since: UnixTime(r.partner_down_since),
        last_operation: (r.last_operation != 0).then_some(UnixTime(r.last_operation)),
    })
}

impl From<RecordV1> for Record {
    fn from(v: RecordV1) -> Record {
        Record {
            magic: MAGIC,
            name: v.name,
            my_state: v.my_state,
            my_stos: v.my_stos,
            partner_state: v.partner_state,
            partner_stos: v.partner_stos,
            mclt: v.mclt,
            hba: v.hba,
            partner_down_since: v.partner_down_since,
            last_operation: 0,
        }
    }
}

/// Reads the stored state of `name`: `Ok(None)` when there is none (a new relationship).
pub fn load(data_dir: &Path, name: &str) -> Result<Option<PersistedState>, PersistError> {
    let path = state_path(data_dir, name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Io { path, source }),
    };
    decode(name, &bytes)
        .map(Some)
        .map_err(|reason| PersistError::Corrupt { path, reason })
}

/// Stores `state` for `name` atomically: temp file, fsync, rename, fsync of `data_dir`.
pub fn store(data_dir: &Path, name: &str, state: &PersistedState) -> Result<(), PersistError> {
    crate::files::write_private(
        &state_path(data_dir, name),
        &encode(name, state),
        |_| Ok(()),
    )
    .map_err(|(path, source)| PersistError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        PersistedState {
            my_state: StateKind::PartnerDown,
            my_stos: UnixTime(1_763_784_000),
            partner_state: Some(StateKind::CommunicationsInterrupted),
            partner_stos: UnixTime(1_763_783_000),
            mclt: 600,
            hba: Hba::split(100),
            partner_down_since: UnixTime(1_763_783_990),
            last_operation: Some(UnixTime(1_763_784_321)),
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "edge-pair").unwrap(), None);
        store(dir.path(), "edge-pair", &sample()).unwrap();
        assert_eq!(load(dir.path(), "edge-pair").unwrap(), Some(sample()));
        let mut s = sample();
        s.partner_state = None;
        s.my_state = StateKind::Normal;
        store(dir.path(), "edge-pair", &s).unwrap();
        assert_eq!(load(dir.path(), "edge-pair").unwrap(), Some(s));
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("failover-edge-pair.state")]
        );
    }

    #[test]
    fn last_operation_round_trips_known_and_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sample();
        store(dir.path(), "edge", &s).unwrap();
        let back = load(dir.path(), "edge").unwrap().unwrap();
        assert_eq!(back.last_operation, Some(UnixTime(1_763_784_321)));
        s.last_operation = None;
        store(dir.path(), "edge", &s).unwrap();
        assert_eq!(load(dir.path(), "edge").unwrap(), Some(s));
    }

    /// A file written by version 1 (before the last time of operation was kept), by that
    /// code: it loads, with the time unknown, and the next store writes version 2.
    #[test]
    fn version_1_file_still_loads_without_a_last_operation() {
        let v1 = include_bytes!("testdata/failover-edge-pair.v1.state");
        assert_eq!(&v1[12..20], b"TDMFOST\x01", "the golden file is version 1");
        let expected = PersistedState {
            my_state: StateKind::Normal,
            my_stos: UnixTime(1_763_784_000),
            partner_state: Some(StateKind::Normal),
            partner_stos: UnixTime(1_763_783_000),
            mclt: 600,
            hba: Hba::split(128),
            partner_down_since: UnixTime(1_763_783_990),
            last_operation: None,
        };
        assert_eq!(decode("edge-pair", v1).unwrap(), expected);
        assert!(matches!(
            decode("other", v1),
            Err(DecodeError::OtherRelationship(n)) if n == "edge-pair"
        ));
        // Every single-bit flip of the old format is refused too.
        for i in 0..v1.len() {
            for bit in 0..8 {
                let mut b = v1.to_vec();
                b[i] ^= 1 << bit;
                assert!(decode("edge-pair", &b).is_err(), "flip {bit} of byte {i}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(state_path(dir.path(), "edge-pair"), v1).unwrap();
        let mut s = load(dir.path(), "edge-pair").unwrap().unwrap();
        s.last_operation = Some(UnixTime(1_763_784_500));
        store(dir.path(), "edge-pair", &s).unwrap();
        let bytes = std::fs::read(state_path(dir.path(), "edge-pair")).unwrap();
        assert_ne!(&bytes[..], &v1[..]);
        assert_eq!(decode("edge-pair", &bytes).unwrap(), s);
        assert!(bytes.windows(8).any(|w| w == MAGIC), "written as version 2");
    }

    #[test]
    fn odd_names_get_a_safe_file_name() {
        let d = Path::new("/d");
        assert_eq!(
            state_path(d, "a/b"),
            Path::new("/d/failover-x-612f62.state")
        );
        assert_eq!(state_path(d, ".."), Path::new("/d/failover-x-2e2e.state"));
        assert_eq!(state_path(d, "e_1.x"), Path::new("/d/failover-e_1.x.state"));
    }

    #[test]
    fn corrupt_file_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), "edge", &sample()).unwrap();
        let path = state_path(dir.path(), "edge");
        let good = std::fs::read(&path).unwrap();
        // Every single-bit flip is refused (rkyv validation or the checksum), never read as
        // another state.
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                assert!(
                    decode("edge", &b).is_err(),
                    "flip of bit {bit} in byte {i} accepted"
                );
            }
        }
        // Truncated, empty and garbage files too.
        for bad in [
            &good[..good.len() / 2],
            &[][..],
            b"hello, world, this is not rkyv",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = load(dir.path(), "edge").unwrap_err();
            assert!(matches!(e, PersistError::Corrupt { .. }), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("corrupt failover state file"), "{text}");
            assert!(text.contains("failover-edge.state"), "{text}");
        }
    }

    #[test]
    fn another_relationships_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), "a", &sample()).unwrap();
        std::fs::copy(state_path(dir.path(), "a"), state_path(dir.path(), "b")).unwrap();
        let e = load(dir.path(), "b").unwrap_err().to_string();
        assert!(e.contains("belongs to relationship \"a\""), "{e}");
    }
}
