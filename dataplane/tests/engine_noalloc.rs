//! The decision path never allocates: a counting global allocator watches `Engine::decide`
//! over every message type once the worker is warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dataplane::engine::{Engine, EngineConfig, Ingress, Reservation, ReservationKey, ScopeConfig};
use dataplane::wire::dhcpv4::{MessageType, Repr};
use lease_mmap::{Durability, Store, UnixTime};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if WATCHING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; counting touches only an atomic and a const thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded verbatim; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn req(mt: Option<MessageType>, n: u8) -> Repr<'static> {
    Repr::request([2, 0, 0, 0, 1, n], u32::from(n), mt)
}

#[test]
fn decide_does_not_allocate() {
    let mut s = ScopeConfig::new(ip("10.0.0.0"), 24);
    s.pools = vec![(ip("10.0.0.10"), ip("10.0.0.200"))];
    s.router = vec![ip("10.0.0.1")];
    s.dns = vec![ip("10.0.0.53")];
    s.domain_name = Some("example.net".into());
    s.reservations = vec![Reservation {
        key: ReservationKey::CircuitId(b"port-1".to_vec()),
        address: ip("10.0.0.250"),
    }];
    let cfg = EngineConfig {
        scopes: vec![s],
        // Every relay trusted, so that option 82's sub-options are read.
        trusted_relays: vec![(ip("0.0.0.0"), 0)],
        ..EngineConfig::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) =
        Store::open(dir.path(), &cfg.table_specs(), 1, Durability::Async).expect("store");
    let engine = Engine::new(cfg, Arc::new(store)).expect("engine");
    let mut w = engine.worker(0, 1);
    let ing = Ingress {
        if_addr: ip("10.0.0.1"),
        src_mac: [2, 0, 0, 0, 0, 1],
        src_ip: ip("0.0.0.0"),
    };
    let server = ip("10.0.0.1");
    let cid: &[u8] = &[0xff, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
    let ri: &[u8] = &[1, 6, b'p', b'o', b'r', b't', b'-', b'1', 5, 4, 10, 0, 0, 0];

    let mut now = UnixTime(1_700_000_000);
    let mut run = |n: u8, watch: bool| {
        let mut d = req(Some(MessageType::Discover), n);
        d.options.parameter_request_list = Some(&[1, 3, 6, 15, 28]);
        if n.is_multiple_of(3) {
            d.options.client_id = Some(cid);
        }
        WATCHING.with(|c| c.set(watch));
        let offer = engine.decide(&mut w, &d, &ing, now);
        let addr = offer
            .reply()
            .map_or(Ipv4Addr::UNSPECIFIED, |r| r.repr.yiaddr);
        let mut r = req(Some(MessageType::Request), n);
        r.options.server_id = Some(server);
        r.options.requested_ip = Some(addr);
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(Some(MessageType::Request), n);
        r.ciaddr = addr;
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(Some(MessageType::Request), n);
        r.options.requested_ip = Some(addr);
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(Some(MessageType::Inform), n);
        r.ciaddr = addr;
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(Some(MessageType::Discover), n);
        r.giaddr = ip("10.0.0.2");
        r.options.relay_agent_info = Some(ri);
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(None, n);
        r.giaddr = ip("10.0.0.2");
        r.options.relay_agent_info = Some(ri);
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(Some(MessageType::Release), n);
        r.ciaddr = addr;
        r.options.server_id = Some(server);
        let _ = engine.decide(&mut w, &r, &ing, now);
        let mut r = req(Some(MessageType::Decline), n);
        r.options.requested_ip = Some(addr);
        r.options.server_id = Some(server);
        let _ = engine.decide(&mut w, &r, &ing, now);
        let _ = engine.decide(&mut w, &req(Some(MessageType::Other(77)), n), &ing, now);
        WATCHING.with(|c| c.set(false));
        now = now.saturating_add(1);
    };
    // The counter works.
    WATCHING.with(|c| c.set(true));
    let probe = std::hint::black_box(vec![1u8; 3]);
    WATCHING.with(|c| c.set(false));
    drop(probe);
    assert!(ALLOCS.swap(0, Ordering::Relaxed) > 0);
    // Warm up: the cursor sizes itself on first use.
    run(0, false);
    for n in 1..=120 {
        run(n, true);
    }
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        0,
        "allocations on the decision path"
    );
}
