//! The failover peer link's receive path: arbitrary bytes, cut into arbitrary chunks, through
//! `StreamDecoder`, `Repr::parse_bytes`, re-emission, and `Fsm::handle_frame` (with and
//! without a shared secret).
//!
//! Properties: nothing panics; every frame is 12..=2048 bytes; a parsed message re-emits to
//! bytes that parse back to the same message.
#![no_main]

use control::failover::fsm::{Config, Fsm};
use control::failover::msg::{Repr, StreamDecoder};
use control::failover::{Instant, Now, Role, UnixTime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: chunk size for feeding; second: which role the machine plays.
    let (cut, role, rest) = match data {
        [c, r, rest @ ..] => (usize::from(*c).max(1), *r, rest),
        _ => return,
    };
    let secret = role & 2 != 0;
    let role = if role & 1 == 0 {
        Role::Primary
    } else {
        Role::Secondary
    };
    let now = Now {
        instant: Instant::from_millis(0),
        wall: UnixTime(1_700_000_000),
    };
    let mut config = Config::new("fuzz", role);
    if secret {
        config.shared_secret = Some(b"fuzz".to_vec());
    }
    let mut fsm = Fsm::new(config, None, now);
    fsm.handle_connected(now);
    let mut decoder = StreamDecoder::new();
    let mut ms = 0u64;
    for chunk in rest.chunks(cut) {
        decoder.feed(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let frame = frame.to_vec();
            assert!((12..=2048).contains(&frame.len()));
            if let Ok(r) = Repr::parse_bytes(&frame) {
                let again = r.to_vec().expect("a parsed message re-emits");
                assert_eq!(
                    Repr::parse_bytes(&again).expect("re-emitted message parses"),
                    r
                );
            }
            ms += 500;
            let now = Now {
                instant: Instant::from_millis(ms),
                wall: UnixTime(1_700_000_000 + u32::try_from(ms / 1000).unwrap_or(0)),
            };
            // The machine's own entry point: digest check (with a secret), parse, handle.
            let _ = fsm.handle_frame(now, &frame);
            if !fsm.is_connected() {
                fsm.handle_connected(now);
            }
            fsm.handle_timeout(now);
            while fsm.poll_event().is_some() {}
            while fsm.poll_transmit().is_some() {}
        }
    }
});
