//! One failover relationship end to end but for the sockets: arbitrary bytes from the peer
//! through `Session` (its `StreamDecoder`, `Fsm`, link handling, the BNDUPD judge, replies
//! and pool balancing) over the daemon's own `Storage`, `replicate::Tables`, on a real
//! `lease_mmap::Store` in /dev/shm. The store is opened once per process; each input starts
//! from FREE records (reset by CAS) and checkpoints now and then so the control journal
//! stays small.
//!
//! Input: byte 0 picks the setup (bit 0: we are the primary; bit 1: a tandem peer with a
//! shared secret, else an ISC peer without; bits 2-3: the stored state we resume from:
//! none, NORMAL, COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN; bit 4: shut down at the end);
//! byte 1 is the size of the pieces the rest is read in; byte 2 the seconds that pass after
//! each piece. The rest is what the peer sends. The clock starts at the time of the ISC
//! captures, so their CONNECT passes the clock-skew check.
//!
//! Properties: nothing panics; storage never fails; every message the session sends is one
//! well-formed failover message; the state the session stores loads back.
#![no_main]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use control::failover::fsm::{PersistedState, StateKind};
use control::failover::hash::Hba;
use control::failover::msg::{Repr, StreamDecoder};
use control::failover::persist;
use control::failover::replicate::Tables;
use control::failover::session::{self, Event, LinkId, Origin, Session};
use control::failover::{Instant, Now, UnixTime};
use lease_mmap::{Durability, Lease, Slot, Store, TableId, WorkerJournal};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "edge";
const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The time of the ISC captures (`control/tests/data/isc-4.4.3`).
const T0: u32 = 0x6b02_6ef9;
/// Inputs between checkpoints.
const CHECKPOINT_EVERY: u32 = 512;

struct Fixture {
    dir: PathBuf,
    store: Arc<Store>,
    journal: Arc<Mutex<WorkerJournal>>,
    /// By setup bits 0-1.
    configs: Vec<session::Config>,
    runs: Mutex<u32>,
}

fn config_text(primary: bool, secret: bool, dir: &std::path::Path) -> String {
    let role = if primary {
        "role = \"primary\"\nmclt = \"600s\"\nsplit = 128"
    } else {
        "role = \"secondary\""
    };
    let peer = if secret {
        format!(
            "shared_secret_file = {:?}",
            dir.join("secret").to_string_lossy()
        )
    } else {
        "peer_software = \"isc-dhcpd\"".to_owned()
    };
    format!(
        r#"[server]
interfaces = ["lan"]
server_id = "{US}"
data_dir = {dir:?}
workers = 1

[[subnet]]
prefix = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.113"]
lease_time = "3600s"
failover = "{NAME}"

[[subnet.reservation]]
mac = "02:00:00:77:00:72"
address = "10.77.0.114"

[[failover]]
name = "{NAME}"
{role}
address = "{US}"
peer_address = "{PEER}"
max_response_delay = "30s"
max_unacked_updates = 8
{peer}
"#
    )
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = control_fuzz::scratch_dir("session");
        std::fs::write(dir.join("secret"), "fuzzing secret, 32 bytes or more").expect("secret");
        let mut configs = Vec::new();
        let mut specs = None;
        for setup in 0..4u8 {
            let text = config_text(setup & 1 != 0, setup & 2 != 0, &dir);
            let cfg = control::config::parse(&text).unwrap_or_else(|e| panic!("config: {e:?}"));
            specs.get_or_insert_with(|| control::serve::engine_config(&cfg).table_specs());
            configs.push(
                control::failover::driver::session_config(&cfg, &cfg.failover[0])
                    .expect("session config"),
            );
        }
        let (store, mut journals, _) =
            Store::open(&dir, &specs.expect("specs"), 2, Durability::Async)
                .expect("open the store");
        let mut journal = journals.pop().expect("the control journal");
        journal.set_reset_threshold(1 << 20);
        Fixture {
            dir,
            store: Arc::new(store),
            journal: Arc::new(Mutex::new(journal)),
            configs,
            runs: Mutex::new(0),
        }
    })
}

/// Every record back to FREE (a fresh table), by CAS like any writer; a checkpoint now and
/// then lets the control journal start over.
fn reset(f: &Fixture) {
    let t = f.store.table(TableId(0));
    for s in 0..t.len() {
        let (v, l) = t.read(Slot(s));
        if l != Lease::default() {
            t.update(Slot(s), v, &Lease::default())
                .expect("reset a record");
        }
    }
    let mut runs = f.runs.lock().expect("runs");
    *runs += 1;
    if runs.is_multiple_of(CHECKPOINT_EVERY) {
        f.store.checkpoint().expect("checkpoint");
    }
}

fn stored(kind: u8) -> Option<PersistedState> {
    let (my_state, partner_state) = match kind {
        0 => return None,
        1 => (StateKind::Normal, StateKind::Normal),
        2 => (StateKind::CommunicationsInterrupted, StateKind::Normal),
        _ => (StateKind::PartnerDown, StateKind::CommunicationsInterrupted),
    };
    Some(PersistedState {
        my_state,
        my_stos: UnixTime(T0 - 7200),
        partner_state: Some(partner_state),
        partner_stos: UnixTime(T0 - 7200),
        mclt: 600,
        hba: Hba::split(128),
        partner_down_since: UnixTime(T0 - 3600),
        last_operation: Some(UnixTime(T0 - 60)),
    })
}

/// What the session wants done, done: links dialled, closed ones forgotten, messages checked.
fn drain(s: &mut Session<Tables>, now: Now, link: &mut Option<LinkId>, next: &mut u64) {
    loop {
        let mut idle = true;
        while let Some((_, t)) = s.poll_transmit() {
            idle = false;
            let mut d = StreamDecoder::new();
            d.feed(&t.bytes);
            let frame = d
                .next_frame()
                .expect("we frame what we send")
                .expect("a whole message");
            assert_eq!(frame.len(), t.bytes.len(), "one message per transmit");
            let r = Repr::parse_bytes(frame).expect("what we send parses");
            assert_eq!(r.msg_type, t.msg_type);
        }
        while let Some(e) = s.poll_event() {
            idle = false;
            match e {
                Event::Dial => {
                    *next += 1;
                    s.handle_link_up(now, LinkId(*next), Origin::Dialed, PEER);
                    if s.link() == Some(LinkId(*next)) {
                        *link = Some(LinkId(*next));
                    }
                }
                Event::Close { link: l, .. } => {
                    if *link == Some(l) {
                        *link = None;
                    }
                }
                Event::Failed(e) => panic!("storage failed on /dev/shm: {e}"),
                Event::Fsm(_) => {}
            }
        }
        if idle {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [setup, cut, step, rest @ ..] = data else {
        return;
    };
    let f = fixture();
    reset(f);
    let config = f.configs[usize::from(setup & 3)].clone();
    let tables = Tables::new(
        Arc::clone(&f.store),
        Arc::clone(&f.journal),
        vec![TableId(0)],
        f.dir.clone(),
        NAME,
    );
    let mut ms = 1_000_000u64;
    let mut now = Now {
        instant: Instant::from_millis(ms),
        wall: UnixTime(T0),
    };
    let mut s = Session::new(config, stored((setup >> 2) & 3), now, tables).expect("session");
    let (mut link, mut next) = (None, 0u64);
    s.handle_timeout(now);
    drain(&mut s, now, &mut link, &mut next);
    for piece in rest.chunks(usize::from(*cut).max(1)) {
        let l = match link {
            Some(l) => l,
            None => {
                // The peer connects (again).
                next += 1;
                s.handle_link_up(now, LinkId(next), Origin::Accepted, PEER);
                drain(&mut s, now, &mut link, &mut next);
                if s.link() != Some(LinkId(next)) {
                    continue;
                }
                link = Some(LinkId(next));
                LinkId(next)
            }
        };
        s.handle_bytes(now, l, piece);
        drain(&mut s, now, &mut link, &mut next);
        ms += u64::from(*step) * 1000;
        now = Now {
            instant: Instant::from_millis(ms),
            wall: UnixTime(T0 + u32::try_from((ms - 1_000_000) / 1000).unwrap_or(u32::MAX)),
        };
        if s.poll_timeout().is_some_and(|t| t <= now.instant) {
            s.handle_timeout(now);
            drain(&mut s, now, &mut link, &mut next);
        }
    }
    if setup & 16 != 0 {
        s.shutdown(now);
        drain(&mut s, now, &mut link, &mut next);
    }
    let kept = persist::load(&f.dir, NAME).expect("the stored state loads");
    assert!(kept.is_some(), "a session stores its state");
});
