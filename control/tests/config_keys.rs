//! Every key of every table, with non-default values, and the defaults when keys are left out.
use std::net::{Ipv4Addr, SocketAddr};

use control::config::{self, Datapath, Durability, FailoverMode, ReservationKey, Role};

const FULL: &str = r#"
[server]
interfaces = ["eth0", "eth1"]
server_id = "192.0.2.1"
data_dir = "/tmp/tandem-test"
datapath = "packet"
workers = 4
durability = "async"
log_level = "control=debug,info"
log_format = "json"
admin = "127.0.0.1:6470"
http = "127.0.0.1:9167"
user = "tandem"
http_auth = "on"
http_tls_cert = "/etc/tandem/http.crt"
http_tls_key = "/etc/tandem/http.key"
dispatch = "off"
trusted_relays = ["10.78.0.1", "192.0.2.0/24"]
leasequery_from = ["10.0.0.0/8"]
bulk_leasequery = "0.0.0.0:67"
mac_rate = 3
mac_burst = 9
circuit_rate = 0
relay_rate = 100
mac_decline_rate = 4
relay_decline_rate = 0

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.1.0-10.0.1.255", "10.0.2.0/24", "10.0.3.7"]
exclude = ["10.0.1.1-10.0.1.10", "10.0.2.128/25"]
router = ["10.0.0.1", "10.0.0.2"]
dns = ["10.0.0.53"]
domain_name = "example.net"
interface = "eth1"
lease_time = "1d"
renewal_time = "6h"
rebinding_time = "20h30m"
decline_probation = "90s"
max_abandoned_percent = 25
offer_hold = "10s"
failover = "hs"

[[subnet.reservation]]
mac = "02:00:00:00:00:01"
address = "10.0.0.5"
hostname = "printer"

[[subnet.reservation]]
client_id = "01:02:00:00:00:00:02"
address = "10.0.0.6"

[[subnet.reservation]]
circuit_id = "eth0/1/2:100"
address = "10.0.0.7"

[[subnet.reservation]]
circuit_id_hex = "0a0b0c"
address = "10.0.0.8"

[[subnet.reservation]]
remote_id = "cpe-42"
address = "10.0.0.9"

[[subnet.reservation]]
remote_id_hex = "0x0102"
address = "10.0.0.10"

[[subnet]]
prefix = "172.16.0.0/12"

[[failover]]
name = "hs"
role = "secondary"
mode = "hot-standby"
address = "192.0.2.1"
peer_address = "192.0.2.2"
port = 6470
peer_port = 6471
manage_port = 6472
peer_manage_port = 6473
replicate = "manual"
reserve_percent = 20
load_balance_max_seconds = 5
max_response_delay = "1m"
max_unacked_updates = 50
auto_partner_down = "1h"
max_lease_time = "2d"
peer_software = "isc-dhcpd"
"#;

#[test]
fn every_key() {
    let c = config::parse(FULL).unwrap_or_else(|e| panic!("{e:#?}"));
    let s = &c.server;
    assert_eq!(s.interfaces, ["eth0", "eth1"]);
    assert_eq!(s.server_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(s.data_dir.to_str(), Some("/tmp/tandem-test"));
    assert_eq!(s.datapath, Datapath::Packet);
    assert_eq!(s.dispatch, config::Dispatch::Off);
    let rl = |rate, burst| dataplane::limit::RateLimit { rate, burst };
    assert_eq!(
        s.rate_limits,
        dataplane::limit::RateLimits {
            mac: rl(3, 9),
            circuit: rl(0, 1),
            relay: rl(100, 400),
        }
    );
    assert_eq!(
        s.decline_limits,
        dataplane::limit::DeclineLimits {
            mac: rl(4, 4),
            relay: rl(0, 1),
        }
    );
    assert_eq!(
        s.trusted_relays,
        [
            config::Ipv4Prefix {
                addr: Ipv4Addr::new(10, 78, 0, 1),
                len: 32
            },
            config::Ipv4Prefix {
                addr: Ipv4Addr::new(192, 0, 2, 0),
                len: 24
            }
        ]
    );
    assert_eq!(
        s.leasequery_from,
        [config::Ipv4Prefix {
            addr: Ipv4Addr::new(10, 0, 0, 0),
            len: 8
        }]
    );
    assert_eq!(s.bulk_leasequery, "0.0.0.0:67".parse::<SocketAddr>().ok());
    assert_eq!(s.workers, 4);
    assert_eq!(s.durability, Durability::Async);
    assert_eq!(s.log_level.as_deref(), Some("control=debug,info"));
    assert_eq!(s.log_format, config::LogFormat::Json);
    assert_eq!(
        s.admin,
        Some("127.0.0.1:6470".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(s.user.as_deref(), Some("tandem"));
    assert_eq!(s.http_auth, config::HttpAuth::On);
    assert_eq!(
        s.http_tls,
        Some(("/etc/tandem/http.crt".into(), "/etc/tandem/http.key".into()))
    );
    assert_eq!(
        s.http,
        Some("127.0.0.1:9167".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        c.admin_socket().to_str(),
        Some("/tmp/tandem-test/tandemd.sock")
    );

    assert_eq!(c.subnets.len(), 2);
    let n = &c.subnets[0];
    let pools: Vec<String> = n.pools.iter().map(ToString::to_string).collect();
    assert_eq!(
        pools,
        ["10.0.1.0-10.0.1.255", "10.0.2.0-10.0.2.255", "10.0.3.7"]
    );
    let exclude: Vec<String> = n.exclude.iter().map(ToString::to_string).collect();
    assert_eq!(exclude, ["10.0.1.1-10.0.1.10", "10.0.2.128-10.0.2.255"]);
    assert_eq!(
        n.router,
        [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
    );
    assert_eq!(n.dns, [Ipv4Addr::new(10, 0, 0, 53)]);
    assert_eq!(n.domain_name.as_deref(), Some("example.net"));
    assert_eq!(n.interface.as_deref(), Some("eth1"));
    assert_eq!(n.lease_time, 86_400);
    assert_eq!(n.renewal_time, Some(21_600));
    assert_eq!(n.rebinding_time, Some(73_800));
    assert_eq!((n.t1(), n.t2()), (21_600, 73_800));
    assert_eq!(n.decline_probation, 90);
    assert_eq!(n.max_abandoned_percent, 25);
    assert_eq!(n.offer_hold, 10);
    assert_eq!(n.failover.as_deref(), Some("hs"));
    let keys: Vec<(ReservationKey, Ipv4Addr)> = n
        .reservations
        .iter()
        .map(|r| (r.key.clone(), r.address))
        .collect();
    assert_eq!(
        keys,
        [
            (
                ReservationKey::Mac([2, 0, 0, 0, 0, 1]),
                Ipv4Addr::new(10, 0, 0, 5)
            ),
            (
                ReservationKey::ClientId(vec![1, 2, 0, 0, 0, 0, 2]),
                Ipv4Addr::new(10, 0, 0, 6)
            ),
            (
                ReservationKey::CircuitId(b"eth0/1/2:100".to_vec()),
                Ipv4Addr::new(10, 0, 0, 7)
            ),
            (
                ReservationKey::CircuitId(vec![10, 11, 12]),
                Ipv4Addr::new(10, 0, 0, 8)
            ),
            (
                ReservationKey::RemoteId(b"cpe-42".to_vec()),
                Ipv4Addr::new(10, 0, 0, 9)
            ),
            (
                ReservationKey::RemoteId(vec![1, 2]),
                Ipv4Addr::new(10, 0, 0, 10)
            ),
        ]
    );
    assert_eq!(n.reservations[0].hostname.as_deref(), Some("printer"));
    assert_eq!(c.reservation_count(), 6);

    let d = &c.subnets[1];
    assert_eq!(d.prefix.to_string(), "172.16.0.0/12");
    assert!(d.pools.is_empty() && d.exclude.is_empty() && d.reservations.is_empty());
    assert_eq!(
        (d.lease_time, d.decline_probation, d.offer_hold),
        (3600, 86_400, 30)
    );
    assert_eq!(d.max_abandoned_percent, 10);
    assert_eq!(
        (d.renewal_time, d.rebinding_time, d.t1(), d.t2()),
        (None, None, 1800, 3150)
    );
    assert_eq!(
        (
            d.failover.as_deref(),
            d.interface.as_deref(),
            d.domain_name.as_deref()
        ),
        (None, None, None)
    );

    let f = &c.failover[0];
    assert_eq!(f.name, "hs");
    assert_eq!(f.role, Role::Secondary);
    assert_eq!(f.mode, FailoverMode::HotStandby);
    assert_eq!((f.port, f.peer_port), (6470, 6471));
    assert_eq!((f.manage_port, f.peer_manage_port), (6472, 6473));
    assert!(!f.replicate_auto);
    assert_eq!(
        f.mclt, 3600,
        "a secondary without mclt gets the default until it learns the primary's"
    );
    assert_eq!(f.split, 128);
    assert_eq!(f.reserve_percent, 20);
    assert_eq!(f.load_balance_max_seconds, 5);
    assert_eq!(f.max_response_delay, 60);
    assert_eq!(f.max_unacked_updates, 50);
    assert_eq!(f.auto_partner_down, 3600);
    assert_eq!(f.shared_secret_file, None);
    assert_eq!(f.max_lease_time, Some(2 * 86_400));
    assert_eq!(f.peer_software, config::PeerSoftware::IscDhcpd);
}

#[test]
fn defaults() {
    let c = config::parse("[server]\ninterfaces = [\"eth0\"]\n").expect("minimal");
    assert_eq!(c.server.server_id, None);
    assert_eq!(c.server.data_dir.to_str(), Some("/var/lib/tandem"));
    assert_eq!(c.server.datapath, Datapath::Auto);
    assert_eq!(c.server.dispatch, config::Dispatch::Auto);
    assert_eq!(c.server.workers, 0);
    assert_eq!(c.server.durability, Durability::Sync);
    assert_eq!(c.server.log_level, None);
    assert_eq!(c.server.log_format, config::LogFormat::Text);
    assert_eq!(c.server.admin, None);
    assert_eq!(c.server.http, None);
    assert_eq!(c.server.user, None);
    assert_eq!(c.server.http_auth, config::HttpAuth::Auto);
    assert_eq!(c.server.http_tls, None);
    assert!(c.server.trusted_relays.is_empty());
    // leasequery_from defaults to trusted_relays (here: nobody); no bulk listener.
    assert!(c.server.leasequery_from.is_empty());
    assert_eq!(c.server.bulk_leasequery, None);
    assert_eq!(c.server.rate_limits, dataplane::limit::RateLimits::DEFAULT);
    assert_eq!(
        c.server.decline_limits,
        dataplane::limit::DeclineLimits::DEFAULT
    );
    assert!(c.subnets.is_empty() && c.failover.is_empty());

    let c = config::parse(
        "[server]\ninterfaces = [\"eth0\"]\n[[failover]]\nname = \"p\"\nrole = \"primary\"\naddress = \"10.0.0.1\"\npeer_address = \"10.0.0.2\"\nmclt = \"30m\"\nshared_secret_file = \"/s\"\n",
    )
    .expect("failover defaults");
    let f = &c.failover[0];
    assert_eq!(f.mode, FailoverMode::LoadBalance);
    assert_eq!(
        (f.port, f.peer_port, f.mclt, f.split),
        (647, 647, 1800, 128)
    );
    assert_eq!((f.manage_port, f.peer_manage_port), (8647, 8647));
    assert!(
        !f.replicate_auto,
        "replication is asked for unless replicate = \"auto\""
    );
    assert_eq!(
        (
            f.reserve_percent,
            f.load_balance_max_seconds,
            f.max_response_delay
        ),
        (10, 3, 60)
    );
    assert_eq!((f.max_unacked_updates, f.auto_partner_down), (10, 0));
    assert_eq!(f.max_lease_time, None);
    assert_eq!(f.peer_software, config::PeerSoftware::Tandem);
    assert_eq!(
        f.shared_secret_file.as_deref(),
        Some(std::path::Path::new("/s"))
    );
}
