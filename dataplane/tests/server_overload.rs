//! The handler fed batches built in memory (deterministic: no sockets, no timing).
//!
//! Overload shedding: a backlogged (full) batch is served REQUESTs first, then DISCOVERs up
//! to the budget; a DISCOVER superseded by the same client's retransmission in the batch is
//! dropped as stale, the rest over the budget as shed. Rate limits per MAC, circuit and relay.
//! And a live configuration change ([`dataplane::server::Live`]), taken between two batches.
//! And the commit pipeline: an fdatasync held open by the test's journal backend holds
//! back the ACKs it covers and nothing else.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use dataplane::engine::{Engine, EngineConfig, ScopeConfig};
use dataplane::limit::{RateLimit, RateLimits};
use dataplane::server::{DhcpHandler, Interface, Live, OverloadPolicy, Serving};
use dataplane::stats::{DropReason, WorkerStats};
use dataplane::wire::frame;
use dataplane::worker::{BatchHandler, RxBatch, RxDesc, RxMeta, TxBatch};
use dhcproto::v4::{self, DhcpOption, Message};
use dhcproto::{Decodable, Encodable};
use lease_mmap::storage::SimBackend;
use lease_mmap::{Durability, Store, UnixTime};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IFINDEX: u32 = 7;
const BATCH: usize = 64;

fn now() -> UnixTime {
    UnixTime(1_800_000_000)
}

/// The scope every test serves: 10.0.0.0/24, pool .10-.250.
fn scope() -> ScopeConfig {
    let mut s = ScopeConfig::new(Ipv4Addr::new(10, 0, 0, 0), 24);
    s.pools = vec![(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 250))];
    s
}

fn handler(dir: &tempfile::TempDir, policy: OverloadPolicy) -> (DhcpHandler, Arc<WorkerStats>) {
    let (h, stats, _) = handler_and_engine(dir, policy);
    (h, stats)
}

/// [`handler`], and the engine it serves from.
fn handler_and_engine(
    dir: &tempfile::TempDir,
    policy: OverloadPolicy,
) -> (DhcpHandler, Arc<WorkerStats>, Arc<Engine>) {
    let b = build(dir, None, now);
    (b.handler.with_overload(policy), b.stats, b.engine)
}

/// A handler of the test scope, and what the tests look at beside it.
struct Built {
    handler: DhcpHandler,
    stats: Arc<WorkerStats>,
    engine: Arc<Engine>,
    fatal: Arc<AtomicBool>,
}

/// Serves [`scope`] from a store in `dir`: its journal on `sim` with durability `sync`, or
/// on the real file system with durability `async`.
fn build(dir: &tempfile::TempDir, sim: Option<&SimBackend>, clock: fn() -> UnixTime) -> Built {
    let cfg = EngineConfig {
        scopes: vec![scope()],
        ..EngineConfig::default()
    };
    let specs = cfg.table_specs();
    let (store, journals, _) = match sim {
        Some(sim) => Store::open_with(
            dir.path(),
            &specs,
            1,
            Durability::Sync,
            Arc::new(sim.clone()),
        ),
        None => Store::open(dir.path(), &specs, 1, Durability::Async),
    }
    .expect("store");
    let engine = Arc::new(Engine::new(cfg, Arc::new(store)).expect("engine"));
    let stats = Arc::new(WorkerStats::new());
    let fatal = Arc::new(AtomicBool::new(false));
    let handler = DhcpHandler::new(
        Arc::clone(&engine),
        engine.worker(0, 1),
        journals.into_iter().next().expect("journal"),
        Arc::from(vec![Interface {
            name: "tdm-ovl0".into(),
            ifindex: IFINDEX,
            mac: [2, 0, 0, 0, 0, 1],
            addr: Some(SERVER),
        }]),
        Arc::clone(&stats),
        Arc::clone(&fatal),
        clock,
    )
    .expect("handler");
    Built {
        handler,
        stats,
        engine,
        fatal,
    }
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0x0a, 0, 0, 0, n]
}

/// A broadcast Ethernet/IPv4/UDP 68→67 frame around `msg` (IPv4 checksum set, UDP's 0).
fn wrap(src: [u8; 6], msg: &Message) -> Vec<u8> {
    wrap_from(src, Ipv4Addr::UNSPECIFIED, msg)
}

/// [`wrap`] from IPv4 source `ip`.
fn wrap_from(src: [u8; 6], ip_src: Ipv4Addr, msg: &Message) -> Vec<u8> {
    let dhcp = msg.to_vec().expect("encode");
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(28 + dhcp.len()).expect("size");
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&ip_src.octets());
    ip.extend_from_slice(&[255, 255, 255, 255]);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&68u16.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&dhcp);
    f
}

fn discover(n: u8, xid: u32) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, &mac(n));
    m.opts_mut()
        .insert(DhcpOption::MessageType(v4::MessageType::Discover));
    wrap(mac(n), &m)
}

/// A SELECTING REQUEST for `addr` from server `SERVER`.
fn request(n: u8, xid: u32, addr: Ipv4Addr) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, &mac(n));
    m.opts_mut()
        .insert(DhcpOption::MessageType(v4::MessageType::Request));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
    wrap(mac(n), &m)
}

/// Feeds `frames` as one batch; returns the replies (decoded), in transmit order: those
/// that leave at once, then those held for their group commit.
fn feed(h: &mut DhcpHandler, frames: &[Vec<u8>]) -> Vec<Message> {
    let mut tx = TxBatch::new(BATCH, 2048);
    handle(h, frames, &mut tx);
    let mut replies = decode(&tx);
    while let Some(held) = h.durable(true) {
        replies.extend(decode(held));
        held.clear();
    }
    replies
}

/// The replies queued in `tx`, decoded.
fn decode(tx: &TxBatch) -> Vec<Message> {
    tx.frames()
        .map(|f| {
            let f = frame::parse(f).expect("reply frame");
            Message::from_bytes(f.dhcp).expect("reply decodes")
        })
        .collect()
}

/// Hands `frames` to the handler as one batch; the replies that leave at once are in `tx`.
fn handle(h: &mut DhcpHandler, frames: &[Vec<u8>], tx: &mut TxBatch) {
    let mut buf = Vec::new();
    let mut descs = Vec::new();
    for f in frames {
        descs.push(RxDesc {
            offset: buf.len(),
            len: f.len(),
            meta: RxMeta {
                ifindex: IFINDEX,
                ..RxMeta::default()
            },
        });
        buf.extend_from_slice(f);
    }
    h.handle(&RxBatch::new(&buf, &descs), tx);
}

fn kind(m: &Message) -> Option<v4::MessageType> {
    match m.opts().get(v4::OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// 16 selecting clients (offered in an earlier, small batch), then a full batch: 44 new
/// clients' DISCOVERs, 4 of them sent twice (the later copy last but the REQUESTs), and the
/// 16 REQUESTs at its end.
fn scenario(h: &mut DhcpHandler) -> (Vec<Message>, Vec<Vec<u8>>) {
    let offers = feed(
        h,
        &(0..16)
            .map(|n| discover(n, 100 + u32::from(n)))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        offers.len(),
        16,
        "below the backlog mark every DISCOVER is answered"
    );
    let mut batch: Vec<Vec<u8>> = (0..44)
        .map(|n| discover(100 + n, 1000 + u32::from(n)))
        .collect();
    for n in 0..4 {
        batch.push(discover(100 + n, 2000 + u32::from(n)));
    }
    for o in &offers {
        let n = o.chaddr()[5];
        batch.push(request(n, o.xid(), o.yiaddr()));
    }
    assert_eq!(batch.len(), BATCH);
    (offers, batch)
}

#[test]
fn a_full_batch_serves_requests_first_and_sheds_stale_then_surplus_discovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut h, stats) = handler(&dir, OverloadPolicy::DEFAULT);
    let (offers, batch) = scenario(&mut h);
    let replies = feed(&mut h, &batch);

    // The 16 REQUESTs, last in, are served first: one ACK each, for the offered address.
    // The ACKs leave after the OFFERs, once their group commit is done.
    let (rest, acks) = replies.split_at(replies.len() - 16);
    for (o, a) in offers.iter().zip(acks) {
        assert_eq!(kind(a), Some(v4::MessageType::Ack), "{a:?}");
        assert_eq!((a.xid(), a.yiaddr()), (o.xid(), o.yiaddr()));
    }
    // Then DISCOVERs: the budget (half the batch, 32) in arrival order, skipping the 4
    // superseded by a retransmission (clients 100..104's first copies).
    assert_eq!(rest.len(), 32, "{rest:?}");
    let xids: Vec<u32> = rest.iter().map(Message::xid).collect();
    let want: Vec<u32> = (4..36).map(|n| 1000 + n).collect();
    assert_eq!(xids, want);
    assert!(rest.iter().all(|m| kind(m) == Some(v4::MessageType::Offer)));
    let s = stats.snapshot();
    assert_eq!(s.dropped(DropReason::Stale), 4);
    // 44 distinct DISCOVERs + 4 retransmissions - 4 stale - 32 answered.
    assert_eq!(s.dropped(DropReason::Shed), 12);
    // Counted by type: every well-formed request read (shed ones too), every reply sent.
    use dataplane::wire::dhcpv4::MessageType as T;
    let slot = |t| dataplane::stats::message_slot(Some(t));
    assert_eq!(s.received[slot(T::Discover)], 16 + 48);
    assert_eq!(s.received[slot(T::Request)], 16);
    assert_eq!(s.sent[slot(T::Offer)], 16 + 32);
    assert_eq!(s.sent[slot(T::Ack)], 16);
    // The batch that ACKs is made durable by one group commit (the OFFERs-only batch
    // promised nothing and wrote nothing).
    assert_eq!(s.commit_ns.count(), 1);
    assert_eq!(s.commit_entries.count(), 1);
    assert!(s.commit_entries.sum >= 16, "{:?}", s.commit_entries);
}

#[test]
fn without_a_policy_the_same_batch_is_served_in_arrival_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut h, stats) = handler(&dir, OverloadPolicy::OFF);
    let (_, batch) = scenario(&mut h);
    let replies = feed(&mut h, &batch);
    assert_eq!(replies.len(), BATCH);
    assert_eq!(replies[0].xid(), 1000);
    assert_eq!(kind(&replies[63]), Some(v4::MessageType::Ack));
    let s = stats.snapshot();
    assert_eq!(
        s.dropped(DropReason::Stale) + s.dropped(DropReason::Shed),
        0
    );
}

#[test]
fn stale_secs_and_a_smaller_backlog_mark_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = OverloadPolicy {
        backlog: 4,
        discover_budget: 2,
        stale_secs: 10,
    };
    let (mut h, stats) = handler(&dir, policy);
    // Three frames: under the mark, all answered whatever their secs.
    let mut slow = Vec::new();
    for n in 0..3u8 {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(u32::from(n), z, z, z, z, &mac(n));
        m.set_secs(30);
        m.opts_mut()
            .insert(DhcpOption::MessageType(v4::MessageType::Discover));
        slow.push(wrap(mac(n), &m));
    }
    assert_eq!(feed(&mut h, &slow).len(), 3);
    // Four: a backlog. The slow client is stale, two of the other three are answered.
    let batch = vec![
        slow[0].clone(),
        discover(50, 50),
        discover(51, 51),
        discover(52, 52),
    ];
    let xids: Vec<u32> = feed(&mut h, &batch).iter().map(Message::xid).collect();
    assert_eq!(xids, [50, 51]);
    let s = stats.snapshot();
    assert_eq!(
        (s.dropped(DropReason::Stale), s.dropped(DropReason::Shed)),
        (1, 1)
    );
}

/// The rate-limit test's clock.
static LIMIT_NOW: AtomicU32 = AtomicU32::new(1_800_000_000);

fn limit_now() -> UnixTime {
    UnixTime(LIMIT_NOW.load(Ordering::Relaxed))
}

/// A DISCOVER from client `n` relayed by the relay at `relay` (giaddr and IPv4 source), with
/// option 82 circuit-id `circuit` if given.
fn relayed_discover(n: u8, relay: Ipv4Addr, circuit: Option<&[u8]>) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(u32::from(n), z, z, z, relay, &mac(n));
    m.opts_mut()
        .insert(DhcpOption::MessageType(v4::MessageType::Discover));
    if let Some(c) = circuit {
        let mut info = v4::relay::RelayAgentInformation::default();
        info.insert(v4::relay::RelayInfo::AgentCircuitId(c.to_vec()));
        m.opts_mut().insert(DhcpOption::RelayAgentInformation(info));
    }
    wrap_from([2, 0xee, 0, 0, 0, 1], relay, &m)
}

#[test]
fn rate_limits_per_mac_circuit_and_relay() {
    // #13: no rate limit per MAC, circuit or relay. Token buckets per worker drop what is
    // over (counted rate-mac, rate-circuit, rate-relay) before the engine spends an offer
    // hold on it; other keys are untouched; a second refills `rate` tokens.
    let dir = tempfile::tempdir().expect("tempdir");
    let Built { handler, stats, .. } = build(&dir, None, limit_now);
    let mut h = handler.with_rate_limits(RateLimits {
        mac: RateLimit { rate: 1, burst: 3 },
        circuit: RateLimit { rate: 1, burst: 2 },
        relay: RateLimit { rate: 2, burst: 5 },
    });
    let dropped = |r| stats.snapshot().dropped(r);

    // Per MAC: a burst of 3, then dropped; another client is served.
    let five: Vec<Vec<u8>> = (0..5).map(|x| discover(1, 10 + x)).collect();
    assert_eq!(feed(&mut h, &five).len(), 3);
    assert_eq!(dropped(DropReason::RateMac), 2);
    assert_eq!(feed(&mut h, &[discover(2, 20)]).len(), 1);

    // Per circuit (within a relay): 2, then dropped, whatever the MACs; another circuit of
    // the same relay is served.
    let relay = Ipv4Addr::new(10, 0, 0, 2);
    let c: Vec<Vec<u8>> = (30..33)
        .map(|n| relayed_discover(n, relay, Some(b"port-1")))
        .collect();
    assert_eq!(feed(&mut h, &c).len(), 2);
    assert_eq!(dropped(DropReason::RateCircuit), 1);
    assert_eq!(
        feed(&mut h, &[relayed_discover(34, relay, Some(b"port-2"))]).len(),
        1
    );
    // That relay has now sent 4 (3 + 1) of its burst of 5: one more, then dropped.
    let r: Vec<Vec<u8>> = (40..43).map(|n| relayed_discover(n, relay, None)).collect();
    assert_eq!(feed(&mut h, &r).len(), 1);
    assert_eq!(dropped(DropReason::RateRelay), 2);
    // Another relay is not affected.
    let other = Ipv4Addr::new(10, 0, 0, 3);
    assert_eq!(feed(&mut h, &[relayed_discover(50, other, None)]).len(), 1);

    // A second later: the relay has 2 more tokens, client 1 one more.
    LIMIT_NOW.fetch_add(1, Ordering::Relaxed);
    let r: Vec<Vec<u8>> = (60..63).map(|n| relayed_discover(n, relay, None)).collect();
    assert_eq!(feed(&mut h, &r).len(), 2);
    assert_eq!(feed(&mut h, &[discover(1, 70), discover(1, 71)]).len(), 1);
    let s = stats.snapshot();
    assert_eq!(
        (
            s.dropped(DropReason::RateMac),
            s.dropped(DropReason::RateCircuit),
            s.dropped(DropReason::RateRelay)
        ),
        (3, 1, 3)
    );
}

#[test]
fn rate_limited_discovers_do_not_spend_the_shed_budget() {
    // A backlogged batch: 48 DISCOVERs from distinct clients behind one flooding relay
    // (arriving first), then 16 direct clients. The relay's burst is 4: its other 44 are
    // dropped as rate-relay, and the budget (half the batch, 32) is left for the 16 others,
    // none of whom is shed. Were the limited DISCOVERs to count against the budget, the
    // relay's 48 would use it all up and every direct client would be shed.
    let dir = tempfile::tempdir().expect("tempdir");
    let (h, stats) = handler(&dir, OverloadPolicy::DEFAULT);
    let mut h = h.with_rate_limits(RateLimits {
        relay: RateLimit { rate: 1, burst: 4 },
        ..RateLimits::OFF
    });
    let relay = Ipv4Addr::new(10, 0, 0, 2);
    let mut batch: Vec<Vec<u8>> = (0..48).map(|n| relayed_discover(n, relay, None)).collect();
    batch.extend((0..16).map(|n| discover(100 + n, 5000 + u32::from(n))));
    assert_eq!(batch.len(), BATCH);
    let replies = feed(&mut h, &batch);
    let direct = replies
        .iter()
        .filter(|m| m.giaddr().is_unspecified())
        .count();
    let s = stats.snapshot();
    assert_eq!(
        (direct, replies.len() - direct),
        (16, 4),
        "every direct client and the relay's burst are answered"
    );
    assert_eq!(s.dropped(DropReason::RateRelay), 44);
    assert_eq!(s.dropped(DropReason::Shed), 0);
}

fn lease_time(m: &Message) -> Option<u32> {
    match m.opts().get(v4::OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
        _ => None,
    }
}

fn dns(m: &Message) -> Vec<Ipv4Addr> {
    match m.opts().get(v4::OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn a_live_change_is_taken_whole_between_two_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (h, _, engine) = handler_and_engine(&dir, OverloadPolicy::DEFAULT);
    let live = Live::new(Serving {
        engine: Arc::clone(&engine),
        limits: RateLimits::OFF,
    });
    let mut h = h.with_live(Arc::clone(&live));

    // Under the first configuration: the pool's first address, an hour, no DNS.
    let first = feed(&mut h, &[discover(1, 1)]);
    assert_eq!(first[0].yiaddr(), Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(
        (lease_time(&first[0]), dns(&first[0])),
        (Some(3600), vec![])
    );

    // The change: .10-.100 excluded, ten minutes, a DNS server.
    let mut s = scope();
    s.exclude = vec![(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 100))];
    s.lease_time = 600;
    s.dns = vec![Ipv4Addr::new(10, 0, 0, 53)];
    let changed = engine
        .reconfigured(EngineConfig {
            scopes: vec![s],
            ..EngineConfig::default()
        })
        .expect("same tables");
    assert_eq!(
        live.replace(Serving {
            engine: Arc::new(changed),
            limits: RateLimits::OFF,
        }),
        1
    );

    // The next batch is wholly the new configuration: the client offered an address that is
    // now excluded is refused it, a new client gets one past the exclusion, with the new
    // options.
    let replies = feed(
        &mut h,
        &[request(1, 1, Ipv4Addr::new(10, 0, 0, 10)), discover(2, 2)],
    );
    assert_eq!(kind(&replies[0]), Some(v4::MessageType::Nak), "{replies:?}");
    assert_eq!(
        kind(&replies[1]),
        Some(v4::MessageType::Offer),
        "{replies:?}"
    );
    assert_eq!(replies[1].yiaddr(), Ipv4Addr::new(10, 0, 0, 101));
    assert_eq!(
        (lease_time(&replies[1]), dns(&replies[1])),
        (Some(600), vec![Ipv4Addr::new(10, 0, 0, 53)])
    );

    // A configuration whose scopes no longer match the tables is refused.
    let mut wider = scope();
    wider.pools = vec![(Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 250))];
    assert!(
        engine
            .reconfigured(EngineConfig {
                scopes: vec![wider],
                ..EngineConfig::default()
            })
            .is_err()
    );
}

/// A handler over a journal on `sim` (durability `sync`), and its fatal flag.
fn sim_handler(
    dir: &tempfile::TempDir,
    sim: &SimBackend,
) -> (DhcpHandler, Arc<WorkerStats>, Arc<AtomicBool>) {
    let b = build(dir, Some(sim), now);
    (b.handler, b.stats, b.fatal)
}

/// The one reply `frames` get at once (handled as one batch), decoded.
fn at_once(h: &mut DhcpHandler, frames: &[Vec<u8>]) -> Vec<Message> {
    let mut tx = TxBatch::new(BATCH, 2048);
    handle(h, frames, &mut tx);
    decode(&tx)
}

#[test]
fn offers_leave_while_a_commit_is_held_open_and_acks_wait_for_theirs() {
    // #14 item 3: the worker never waits on fdatasync. OFFERs (not durable) leave at once;
    // an ACK leaves only when the commit of its own group is done, and the batches received
    // meanwhile are decided and recorded into the next group.
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimBackend::new();
    let (mut h, stats, _) = sim_handler(&dir, &sim);
    let offers = at_once(&mut h, &[discover(1, 1), discover(2, 2)]);
    assert_eq!(offers.len(), 2);
    assert!(
        h.durable(false).is_none(),
        "OFFERs promise nothing: no commit"
    );

    let gate = sim.hold_syncs();
    let req = |o: &Message| request(o.chaddr()[5], o.xid(), o.yiaddr());
    // Client 1's REQUEST: its ACK is held, and its group goes to the commit thread.
    assert!(at_once(&mut h, &[req(&offers[0])]).is_empty());
    assert!(
        gate.wait_held(1, std::time::Duration::from_secs(10)),
        "the commit thread is in its fdatasync"
    );
    // While that fdatasync is held: a new client is offered at once, and client 2's
    // REQUEST is decided and held for the next group.
    let now_offered = at_once(&mut h, &[discover(3, 3), req(&offers[1])]);
    assert_eq!(now_offered.len(), 1, "{now_offered:?}");
    assert_eq!(kind(&now_offered[0]), Some(v4::MessageType::Offer));
    assert_eq!(now_offered[0].xid(), 3);
    assert!(
        h.durable(false).is_none(),
        "no ACK leaves before its commit"
    );
    assert_eq!(stats.snapshot().commit_ns.count(), 0);

    gate.open();
    // The first group's ACK, then the second's (its commit starts when the first is done).
    let mut acks = Vec::new();
    while let Some(held) = h.durable(true) {
        acks.push(decode(held));
        held.clear();
    }
    let xids: Vec<Vec<u32>> = acks
        .iter()
        .map(|g| g.iter().map(Message::xid).collect())
        .collect();
    assert_eq!(xids, [vec![1], vec![2]]);
    assert!(
        acks.iter()
            .flatten()
            .all(|m| kind(m) == Some(v4::MessageType::Ack))
    );
    let s = stats.snapshot();
    assert_eq!(s.commit_entries.count(), 2, "two group commits");
    use dataplane::wire::dhcpv4::MessageType as T;
    assert_eq!(s.sent[dataplane::stats::message_slot(Some(T::Ack))], 2);
    // Both are durable: the journal's durable image holds them.
    let file = sim.file(dir.path(), 0).expect("journal");
    assert_eq!(file.durable, file.live);
    assert!(file.durable.len() >= 512 * 3, "header and two entries");
}

#[test]
fn an_ack_whose_commit_fails_never_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimBackend::new();
    let (mut h, stats, fatal) = sim_handler(&dir, &sim);
    let offers = at_once(&mut h, &[discover(1, 1)]);
    sim.fail_sync_after(0);
    let req = request(1, offers[0].xid(), offers[0].yiaddr());
    assert!(at_once(&mut h, &[req]).is_empty());
    assert!(h.durable(true).is_none(), "the ACK is discarded");
    assert!(fatal.load(Ordering::Relaxed), "the daemon is told to stop");
    let s = stats.snapshot();
    assert_eq!(s.dropped(DropReason::Durability), 1);
    use dataplane::wire::dhcpv4::MessageType as T;
    assert_eq!(s.sent[dataplane::stats::message_slot(Some(T::Ack))], 0);
    // And nothing more is answered.
    assert!(at_once(&mut h, &[discover(2, 2)]).is_empty());
}

/// Frames a [`Keep`] was given, with their interface.
type Kept = Arc<std::sync::Mutex<Vec<(Vec<u8>, u32)>>>;

/// A [`dataplane::server::QuerySink`] that keeps what it is given, up to `room`.
struct Keep {
    got: Kept,
    room: usize,
}

impl dataplane::server::QuerySink for Keep {
    fn forward(&mut self, frame: &[u8], ifindex: u32) -> bool {
        let mut got = self.got.lock().unwrap();
        if got.len() == self.room {
            return false;
        }
        got.push((frame.to_vec(), ifindex));
        true
    }
}

fn leasequery(n: u8, ciaddr: Ipv4Addr) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(u32::from(n), ciaddr, z, z, ip_relay(), &[0; 6]);
    m.opts_mut()
        .insert(DhcpOption::MessageType(v4::MessageType::LeaseQuery));
    wrap_from(mac(n), ip_relay(), &m)
}

fn ip_relay() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 2)
}

#[test]
fn leasequeries_go_to_the_control_plane_untouched_and_never_to_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (h, stats) = handler(&dir, OverloadPolicy::DEFAULT);
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut h = h.with_query_sink(Box::new(Keep {
        got: Arc::clone(&got),
        room: 2,
    }));
    let frames = vec![
        leasequery(1, SERVER),
        discover(2, 2),
        leasequery(3, SERVER),
        leasequery(4, SERVER),
    ];
    let replies = feed(&mut h, &frames);
    // Only the DISCOVER is answered by the worker.
    assert_eq!(replies.len(), 1);
    assert_eq!(kind(&replies[0]), Some(v4::MessageType::Offer));
    let got = got.lock().unwrap();
    assert_eq!(
        *got,
        vec![(frames[0].clone(), IFINDEX), (frames[2].clone(), IFINDEX)]
    );
    // The third found the queue full: dropped and counted.
    assert_eq!(
        stats.snapshot().dropped[DropReason::LeasequeryBacklog.index()],
        1
    );

    // Without a sink every leasequery is dropped the same way.
    let dir = tempfile::tempdir().unwrap();
    let (mut h, stats) = handler(&dir, OverloadPolicy::DEFAULT);
    assert!(feed(&mut h, &[leasequery(5, SERVER)]).is_empty());
    assert_eq!(
        stats.snapshot().dropped[DropReason::LeasequeryBacklog.index()],
        1
    );
}
