//! Integration tests of lease-mmap on real temporary directories.

mod api;
mod common;
mod crash;
mod prop;
mod stress;
