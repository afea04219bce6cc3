//! Shared helpers for the lease-mmap integration tests.

use std::net::Ipv4Addr;
use std::path::Path;

use lease_mmap::{BindingState, ClientId, Lease, TableSpec, UnixTime};

/// Where the table file's records start and how long a slot is (FORMAT.md §2).
pub const RECORDS_AT: u64 = 16384;
pub const SLOT_LEN: u64 = 256;
pub const IMAGE_A: u64 = 8;
pub const IMAGE_B: u64 = 132;

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// 10.0.0.0/24 covering .10–.200, allocatable .20–.100 and .150–.200.
pub fn small_spec() -> TableSpec {
    TableSpec {
        network: ip("10.0.0.0"),
        prefix_len: 24,
        first: ip("10.0.0.10"),
        last: ip("10.0.0.200"),
        allocatable: vec![
            (ip("10.0.0.20"), ip("10.0.0.100")),
            (ip("10.0.0.150"), ip("10.0.0.200")),
        ],
    }
}

/// A whole /20 (4096 addresses), everything allocatable except the network address.
pub fn big_spec() -> TableSpec {
    TableSpec {
        network: ip("10.1.0.0"),
        prefix_len: 20,
        first: ip("10.1.0.0"),
        last: ip("10.1.15.255"),
        allocatable: vec![(ip("10.1.0.1"), ip("10.1.15.255"))],
    }
}

pub fn mac(i: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..6].copy_from_slice(&[
        0x02,
        0,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ]);
    c
}

/// An ACTIVE lease for client `i`, identified by its MAC.
pub fn active(i: u32, now: u32) -> Lease {
    Lease {
        state: BindingState::Active,
        ends: UnixTime(now + 3600),
        tstp: UnixTime(now + 3600),
        cltt: UnixTime(now),
        stos: UnixTime(now),
        htype: 1,
        hlen: 6,
        chaddr: mac(i),
        ..Lease::default()
    }
}

/// An ACTIVE lease for client `i` with a client id of `len` bytes.
pub fn active_with_id(i: u32, len: usize, now: u32) -> Lease {
    let mut id = vec![0xffu8; len];
    id[..4].copy_from_slice(&i.to_be_bytes());
    Lease {
        client_id: ClientId::new(&id).unwrap(),
        ..active(i, now)
    }
}

pub fn free() -> Lease {
    Lease::default()
}

/// Overwrite `len` bytes at `at` in `path` with `byte`.
pub fn scribble(path: &Path, at: u64, len: usize, byte: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![byte; len], at).unwrap();
    f.sync_all().unwrap();
}
