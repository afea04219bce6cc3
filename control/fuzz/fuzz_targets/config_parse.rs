//! The configuration parser (`control::config::parse`) on arbitrary text, and what the daemon
//! derives from a configuration it accepts.
//!
//! Properties: nothing panics; a refused text gets at least one error, each at a line and
//! column inside the text (1-based, at most one past a line's last character), with a
//! message, in order; an accepted configuration makes an engine configuration the engine
//! accepts, table specs, the failover gate and each relationship's session settings (or a
//! typed error: a shared secret file that cannot be read).
#![no_main]

use control::config;
use control::failover::driver::session_config;
use control::failover::gate::Gate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(src) {
        Ok(cfg) => {
            let engine = control::serve::engine_config(&cfg);
            if let Err(e) = engine.validate() {
                panic!("an accepted configuration the engine refuses: {e}");
            }
            let specs = engine.table_specs();
            assert_eq!(specs.len(), cfg.subnets.len());
            let (_gate, views) = Gate::new(&cfg);
            assert_eq!(views.len(), cfg.failover.len());
            for f in &cfg.failover {
                let _ = session_config(&cfg, f);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            let lines: Vec<&str> = src.split('\n').collect();
            let mut last = (0, 0);
            for e in &errors {
                assert!(!e.message.is_empty());
                let line = usize::try_from(e.line).expect("u32 fits");
                assert!(
                    line >= 1 && line <= lines.len(),
                    "{e}: line outside the text"
                );
                let width = lines[line - 1].chars().count();
                let col = usize::try_from(e.col).expect("u32 fits");
                assert!(
                    col >= 1 && col <= width + 1,
                    "{e}: column outside line {line}"
                );
                assert!((e.line, e.col) >= last, "errors out of order");
                last = (e.line, e.col);
            }
        }
    }
});
