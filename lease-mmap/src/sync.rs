//! Atomics come through here so loom can replace them in model tests (`--cfg loom`).

#[cfg(loom)]
#[expect(unused_imports, reason = "filled in as the table code uses them")]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
#[expect(unused_imports, reason = "filled in as the table code uses them")]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
