//! Fixtures that tandem's tests share, so that each is written once.
//!
//! - [`netns`]: network namespaces with unique names, veth pairs between them, running code
//!   and programs inside them, teardown in `Drop` even after a failure (dora's
//!   `bin/tests/common/env.rs`).
//! - [`io`]: socket calls with a time-out, made again when a stop and continue of the test
//!   process interrupts them.
//! - [`rng`]: the seeded generator of the randomized runs (smoltcp's `tests/netsim.rs` shape).
//!
//! A dev-dependency only (`publish = false`): nothing in the product links it. Fixtures panic
//! with context rather than return errors, as the tests that use them do.
#![forbid(unsafe_code)]

pub mod io;
pub mod netns;
pub mod rng;
pub mod tools;
