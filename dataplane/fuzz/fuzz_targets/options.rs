//! The options TLV iterator, the option 82 views and the writer: never panic.
#![no_main]

use dataplane::wire::options::{OptionWriter, OptionsIter};
use dataplane::wire::relay::{RelayAgentInfo, SubOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = [0u8; 512];
    let cap = usize::from(data.first().copied().unwrap_or(0)) * 2;
    let mut w = OptionWriter::new(&mut out[..cap.min(512)]);
    for opt in OptionsIter::new(data) {
        let Ok(opt) = opt else { break };
        let _ = w.emit(opt.kind, opt.data);
        let _ = RelayAgentInfo::parse(opt.data);
    }
    let _ = w.finish();
    let _ = SubOptions::new(data).count();
});
