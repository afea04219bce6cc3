//! The example of DESIGN.md §6 parses to what it says.
use std::net::Ipv4Addr;

use control::config::{self, Datapath, Durability, FailoverMode, ReservationKey, Role};

pub const EXAMPLE: &str = r#"[server]
interfaces = ["eth0"]            # where DHCP is served
server_id = "192.0.2.1"          # option 54; default: the interface's first IPv4 address
data_dir = "/var/lib/tandem"     # lease tables and journals
datapath = "auto"                # "xdp" | "packet" | "auto"
workers = 0                      # 0 = one per rx queue (capped at cores)
durability = "sync"              # group commit before ACK; "async" only on purpose

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.1.0-10.0.255.254"]
exclude = ["10.0.1.1-10.0.1.10"]
router = ["10.0.0.1"]
dns = ["10.0.0.53"]
lease_time = "1h"
failover = "edge-pair"           # optional: the relationship this scope belongs to

[[subnet.reservation]]
mac = "02:00:00:00:00:01"
address = "10.0.1.5"

[[failover]]
name = "edge-pair"
role = "primary"                 # "secondary" learns mclt and split from the primary
mode = "load-balance"            # or "hot-standby"
address = "192.0.2.1"
peer_address = "192.0.2.2"
port = 647
peer_port = 647
mclt = "1h"
split = 128                      # load balance: buckets the primary owns, 0..=256
reserve_percent = 5              # hot standby: free addresses held by the standby
load_balance_max_seconds = 3
max_response_delay = "20s"
max_unacked_updates = 100
auto_partner_down = "0s"         # the safe period; "0s" = off
shared_secret_file = "/etc/tandem/edge-pair.secret"   # tandem peers only
"#;

#[test]
fn design_example_parses() {
    let c = config::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.server.interfaces, ["eth0"]);
    assert_eq!(c.server.server_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(c.server.data_dir.to_str(), Some("/var/lib/tandem"));
    assert_eq!(c.server.datapath, Datapath::Auto);
    assert_eq!(c.server.workers, 0);
    assert_eq!(c.server.durability, Durability::Sync);
    assert_eq!(c.subnets.len(), 1);
    let s = &c.subnets[0];
    assert_eq!(s.prefix.to_string(), "10.0.0.0/16");
    assert_eq!(s.pools[0].to_string(), "10.0.1.0-10.0.255.254");
    assert_eq!(s.exclude[0].to_string(), "10.0.1.1-10.0.1.10");
    assert_eq!(s.router, [Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(s.dns, [Ipv4Addr::new(10, 0, 0, 53)]);
    assert_eq!(s.lease_time, 3600);
    assert_eq!((s.t1(), s.t2()), (1800, 3150));
    assert_eq!(s.failover.as_deref(), Some("edge-pair"));
    assert_eq!(s.reservations.len(), 1);
    assert_eq!(
        s.reservations[0].key,
        ReservationKey::Mac([2, 0, 0, 0, 0, 1])
    );
    assert_eq!(s.reservations[0].address, Ipv4Addr::new(10, 0, 1, 5));
    let f = c.relationship("edge-pair").expect("relationship");
    assert_eq!(f.role, Role::Primary);
    assert_eq!(f.mode, FailoverMode::LoadBalance);
    assert_eq!(f.address, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(f.peer_address, Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!((f.port, f.peer_port), (647, 647));
    assert_eq!(f.mclt, 3600);
    assert_eq!(f.split, 128);
    assert_eq!(f.reserve_percent, 5);
    assert_eq!(f.load_balance_max_seconds, 3);
    assert_eq!(f.max_response_delay, 20);
    assert_eq!(f.max_unacked_updates, 100);
    assert_eq!(f.auto_partner_down, 0);
    assert_eq!(
        f.shared_secret_file.as_deref().and_then(|p| p.to_str()),
        Some("/etc/tandem/edge-pair.secret")
    );
}
