//! tandem's benchmarks. Micro-benchmarks live in `benches/` (criterion); run them with
//! `cargo bench -p bench`.
#![forbid(unsafe_code)]
