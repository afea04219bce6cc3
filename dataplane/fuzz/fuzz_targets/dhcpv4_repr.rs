//! DHCPv4 message parsing: never panics; whatever parses re-emits and parses back the same.
#![no_main]

use dataplane::wire::dhcpv4::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let mut scratch = [0u8; 1024];
    let Ok(repr) = Repr::parse(&packet, &mut scratch) else {
        return;
    };
    let mut out = [0u8; 4096];
    let len = repr.buffer_len();
    let Some(buf) = out.get_mut(..len) else {
        return;
    };
    if repr.emit(&mut Packet::new_unchecked(&mut *buf)).is_err() {
        return;
    }
    let mut scratch2 = [0u8; 1024];
    let again = Repr::parse(&Packet::new_unchecked(&*buf), &mut scratch2).expect("re-parse");
    let mut expect = repr;
    expect.options.overload = None;
    assert_eq!(again, expect);
});
