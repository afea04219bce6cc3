//! The failover state file (`control::failover::persist`): `decode` and `load` on arbitrary
//! contents, and `store` then `load` of arbitrary valid states.
//!
//! Input: the first byte picks the case, the rest is its data.
//! * 0..=127: the rest is a state file for relationship "edge" (`decode`, then `load` of the
//!   same bytes in a data directory on /dev/shm);
//! * 128..=191: as above, with the trailing CRC-32C made right, so that rkyv's validation and
//!   the field checks see the bytes (a random file never gets past the checksum);
//! * 192..=255: a state built from the rest, stored and loaded back.
//!
//! Properties: nothing panics; `load` answers `Ok` or `Corrupt`, never an I/O error, and
//! agrees with `decode`; a decoded state re-stores to a file that loads to the same state; a
//! stored state loads back equal, and is refused under another relationship's name.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use control::failover::UnixTime;
use control::failover::fsm::{PersistedState, StateKind};
use control::failover::hash::Hba;
use control::failover::persist::{self, DecodeError, PersistError};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// The name of the golden version 1 file (`control/src/failover/testdata`).
const NAME: &str = "edge-pair";

/// A data directory of this process on /dev/shm (or the temp dir), removed by the next run
/// of any target once this process is gone (`control_fuzz::scratch_dir`).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = control_fuzz::scratch_dir("persist");
        if let Some(seeds) = control_fuzz::seed_dir() {
            write_seeds(&dir, &seeds);
        }
        dir
    })
}

/// A version 2 file of each own state (case 0), as `store` writes it.
fn write_seeds(dir: &std::path::Path, seeds: &std::path::Path) {
    for (i, my_state) in StateKind::ALL
        .into_iter()
        .filter(|s| *s != StateKind::Startup)
        .enumerate()
    {
        let s = PersistedState {
            my_state,
            my_stos: UnixTime(1_763_784_000),
            partner_state: (i % 3 != 0).then_some(StateKind::Normal),
            partner_stos: UnixTime(1_763_783_000),
            mclt: 600,
            hba: Hba::split(128),
            partner_down_since: UnixTime(1_763_783_990),
            last_operation: (i % 2 == 0).then_some(UnixTime(1_763_784_321)),
        };
        persist::store(dir, NAME, &s).expect("store");
        let mut seed = vec![0u8];
        seed.extend(std::fs::read(persist::state_path(dir, NAME)).expect("read"));
        std::fs::write(seeds.join(format!("v2-{}", my_state.name())), seed).expect("seed");
    }
}

fn state(u: &mut Unstructured<'_>) -> Result<PersistedState> {
    let my: Vec<StateKind> = StateKind::ALL
        .into_iter()
        .filter(|s| *s != StateKind::Startup)
        .collect();
    Ok(PersistedState {
        my_state: *u.choose(&my)?,
        my_stos: UnixTime(u.arbitrary()?),
        partner_state: if u.arbitrary()? {
            Some(*u.choose(&StateKind::ALL)?)
        } else {
            None
        },
        partner_stos: UnixTime(u.arbitrary()?),
        mclt: u.arbitrary()?,
        hba: Hba(u.arbitrary()?),
        partner_down_since: UnixTime(u.arbitrary()?),
        // 0 is how "unknown" is written, and no wall time.
        last_operation: Some(UnixTime(u.arbitrary()?)).filter(|t| t.0 != 0),
    })
}

fn round_trip(s: &PersistedState) {
    persist::store(dir(), NAME, s).expect("store");
    assert_eq!(persist::load(dir(), NAME).expect("load").as_ref(), Some(s));
    let bytes = std::fs::read(persist::state_path(dir(), NAME)).expect("read back");
    assert_eq!(persist::decode(NAME, &bytes).as_ref().ok(), Some(s));
    assert!(matches!(
        persist::decode("another", &bytes),
        Err(DecodeError::OtherRelationship(n)) if n == NAME
    ));
}

fn check_file(bytes: &[u8]) {
    let decoded = persist::decode(NAME, bytes);
    if let Err(e) = &decoded {
        assert!(!e.to_string().is_empty());
    }
    std::fs::write(persist::state_path(dir(), NAME), bytes).expect("write the file");
    match (persist::load(dir(), NAME), &decoded) {
        (Ok(Some(a)), Ok(b)) => assert_eq!(&a, b),
        (Err(PersistError::Corrupt { .. }), Err(_)) => {}
        (l, d) => panic!("load {l:?} disagrees with decode {d:?}"),
    }
    if let Ok(s) = decoded {
        assert_ne!(s.my_state, StateKind::Startup);
        // What loads can be stored again (version 1 files become version 2).
        round_trip(&s);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = dir();
    let Some((&case, rest)) = data.split_first() else {
        return;
    };
    match case {
        0..=127 => check_file(rest),
        128..=191 => {
            let mut b = rest.to_vec();
            if b.len() >= 4 {
                let body = b.len() - 4;
                let crc = crc32c::crc32c(&b[..body]);
                b[body..].copy_from_slice(&crc.to_le_bytes());
            }
            check_file(&b);
        }
        _ => {
            if let Ok(s) = state(&mut Unstructured::new(rest)) {
                round_trip(&s);
            }
        }
    }
});
