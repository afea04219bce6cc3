//! Packet capture of the DHCP traffic (dumpcap in the server namespace), a reader of every DHCP
//! message in it (`tshark -T fields`), and the safety checker: no address bound to two different
//! clients at overlapping times (DESIGN.md §5), judged from the ACKs seen on the wire.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use super::net::Ns;

/// DHCP message types (RFC 2132 §9.6).
pub mod msg {
    /// DHCPDISCOVER.
    pub const DISCOVER: u8 = 1;
    /// DHCPOFFER.
    pub const OFFER: u8 = 2;
    /// DHCPREQUEST.
    pub const REQUEST: u8 = 3;
    /// DHCPDECLINE.
    pub const DECLINE: u8 = 4;
    /// DHCPACK.
    pub const ACK: u8 = 5;
    /// DHCPNAK.
    pub const NAK: u8 = 6;
    /// DHCPRELEASE.
    pub const RELEASE: u8 = 7;
}

/// A running capture; stop it with [`Capture::stop`] (dropping it also stops it).
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts dumpcap on `iface` in `ns` (DHCP ports only) and returns once it captures.
    pub fn start(ns: &Ns, iface: &str) -> Self {
        Self::start_ifaces(ns, &[iface])
    }

    /// Starts one dumpcap on every interface of `ifaces` in `ns` (e.g. the bridge ports of
    /// both servers of a pair), one time line for all of them.
    pub fn start_ifaces(ns: &Ns, ifaces: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tdm-e2e-cap-")
            .tempdir()
            .expect("create the capture temp dir");
        let file = dir.path().join("dhcp.pcapng");
        let log = dir.path().join("dumpcap.log");
        let path = file.to_string_lossy().into_owned();
        let mut args = vec!["dumpcap", "-q"];
        for iface in ifaces {
            args.extend(["-i", iface]);
        }
        args.extend(["-f", "udp port 67 or udp port 68", "-B", "64", "-w", &path]);
        let child = ns.spawn(&args, &log);
        let mut cap = Self {
            child: Some(child),
            file,
            log,
            _dir: dir,
        };
        // dumpcap opens the device (filter attached) before it writes the file header.
        let started = super::try_wait_until(Duration::from_secs(30), || {
            let exited = cap
                .child
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            assert!(!exited, "dumpcap exited: {}", cap.log_text());
            std::fs::metadata(&cap.file)
                .is_ok_and(|m| m.len() > 0)
                .then_some(())
        });
        assert!(
            started.is_some(),
            "dumpcap did not start: {}",
            cap.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
        cap
    }

    /// The capture file (pcapng), for [`read_dhcp`] while or after it runs.
    pub fn path(&self) -> &Path {
        &self.file
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the capture (SIGINT, so dumpcap flushes) and reads every DHCP message in it.
    pub fn stop(&mut self) -> Vec<DhcpMsg> {
        if let Some(mut child) = self.child.take() {
            // Let the last replies reach the capture (a loaded machine may not run dumpcap at
            // once).
            std::thread::sleep(Duration::from_secs(1));
            super::signal(child.id(), "INT");
            if super::wait_exit(&mut child, Duration::from_secs(30)).is_none() {
                super::reap(&mut child);
            }
            eprintln!("capture: {}", self.log_text().trim());
        }
        read_dhcp(&self.file)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::reap(&mut child);
        }
    }
}

/// One DHCP message seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpMsg {
    /// Capture time, microseconds since the Unix epoch.
    pub time_us: u64,
    /// BOOTP `op`: 1 BOOTREQUEST, 2 BOOTREPLY.
    pub op: u8,
    /// UDP source port: 67 from servers and relays, 68 from clients.
    pub sport: u16,
    /// Option 53 (0 if absent: BOOTP).
    pub msg_type: u8,
    /// `xid`.
    pub xid: u32,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// `chaddr`, lower-case `aa:bb:...`.
    pub chaddr: String,
    /// Option 61 as lower-case hex.
    pub client_id: Option<String>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 50.
    pub requested: Option<Ipv4Addr>,
    /// Option 82 (relay agent information) as lower-case hex.
    pub option82: Option<String>,
    /// `secs`: seconds since the client began (the RFC 3074 load-balancing override).
    pub secs: u16,
}

impl DhcpMsg {
    /// Whether a server sent it (a BOOTREPLY from port 67).
    pub fn is_server_reply(&self) -> bool {
        self.op == 2 && self.sport == 67
    }

    /// The client as RFC 2131 §4.2 identifies it: client-id if present, else chaddr. A
    /// client-id that is Ethernet's hardware type and `chaddr` (`01` + the MAC, the usual
    /// form) names the same client as `chaddr` alone: a server that does not echo option 61
    /// (ISC dhcpd 4.4) and one that does then agree on who got an address.
    pub fn client_key(&self) -> String {
        match &self.client_id {
            Some(id) if *id != format!("01{}", self.chaddr.replace(':', "")) => {
                format!("id:{id}")
            }
            _ => format!("hw:{}", self.chaddr),
        }
    }
}

const FIELDS: &[&str] = &[
    "frame.time_epoch",
    "dhcp.option.dhcp",
    "dhcp.ip.client",
    "dhcp.ip.your",
    "dhcp.ip.relay",
    "dhcp.hw.mac_addr",
    "dhcp.option.ip_address_lease_time",
    "dhcp.option.dhcp_server_id",
    "dhcp.option.requested_ip_address",
    "dhcp.option.type",
    "dhcp.option.value",
    "dhcp.id",
    "dhcp.type",
    "udp.srcport",
    "dhcp.secs",
];

/// Every DHCP message tshark can dissect in `file`.
pub fn read_dhcp(file: &Path) -> Vec<DhcpMsg> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(file)
        .args(["-Y", "dhcp", "-T", "fields", "-E", "separator=/t"])
        .args(["-E", "occurrence=a", "-E", "aggregator=;"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run tshark on {}: {e}", file.display()));
    assert!(
        out.status.success(),
        "tshark -r {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<DhcpMsg> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() < FIELDS.len() {
        return None;
    }
    let first = |s: &str| s.split(';').next().unwrap_or("").to_owned();
    let addr = |s: &str| first(s).parse::<Ipv4Addr>().ok();
    let (secs, frac) = f[0].split_once('.').unwrap_or((f[0], "0"));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let time_us = secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?;
    // Options with a value, in order: tshark gives no value for PAD and END.
    let types = f[9]
        .split(';')
        .filter_map(|t| t.parse::<u8>().ok())
        .filter(|t| *t != 0 && *t != 255);
    let values = f[10].split(';');
    let mut option = BTreeMap::new();
    for (t, v) in types.zip(values) {
        option.entry(t).or_insert_with(|| v.to_ascii_lowercase());
    }
    Some(DhcpMsg {
        time_us,
        op: first(f[12]).parse().unwrap_or(0),
        sport: first(f[13]).parse().unwrap_or(0),
        msg_type: first(f[1]).parse().unwrap_or(0),
        xid: u32::from_str_radix(first(f[11]).trim_start_matches("0x"), 16).unwrap_or(0),
        ciaddr: addr(f[2]).unwrap_or(Ipv4Addr::UNSPECIFIED),
        yiaddr: addr(f[3]).unwrap_or(Ipv4Addr::UNSPECIFIED),
        giaddr: addr(f[4]).unwrap_or(Ipv4Addr::UNSPECIFIED),
        chaddr: first(f[5]).to_ascii_lowercase(),
        client_id: option.get(&61).cloned(),
        lease_time: first(f[6]).parse().ok(),
        server_id: addr(f[7]),
        requested: addr(f[8]),
        option82: option.get(&82).cloned(),
        secs: first(f[14]).parse().unwrap_or(0),
    })
}

/// The ACKs among `msgs` that bind an address (yiaddr set).
pub fn acks(msgs: &[DhcpMsg]) -> Vec<&DhcpMsg> {
    msgs.iter()
        .filter(|m| m.msg_type == msg::ACK && !m.yiaddr.is_unspecified())
        .collect()
}

/// Checks DESIGN.md §5's safety property over a capture: no address bound to two different
/// clients at overlapping times. A binding runs from its ACK to ACK + lease time; a RELEASE from
/// the same client for that address ends it early. Panics listing the violations.
pub fn check_no_double_binding(msgs: &[DhcpMsg]) {
    let violations = double_bindings(msgs);
    assert!(
        violations.is_empty(),
        "address bound to two clients at overlapping times:\n{}",
        violations.join("\n")
    );
}

/// The violations [`check_no_double_binding`] reports, one line each.
pub fn double_bindings(msgs: &[DhcpMsg]) -> Vec<String> {
    // address → [(start, end, client)]
    let mut bindings: BTreeMap<Ipv4Addr, Vec<(u64, u64, String)>> = BTreeMap::new();
    let mut sorted: Vec<&DhcpMsg> = msgs.iter().collect();
    sorted.sort_by_key(|m| m.time_us);
    for m in sorted {
        match m.msg_type {
            msg::ACK if !m.yiaddr.is_unspecified() => {
                let lease_us = u64::from(m.lease_time.unwrap_or(u32::MAX)) * 1_000_000;
                bindings.entry(m.yiaddr).or_default().push((
                    m.time_us,
                    m.time_us.saturating_add(lease_us),
                    m.client_key(),
                ));
            }
            msg::RELEASE | msg::DECLINE => {
                let addr = if m.msg_type == msg::RELEASE {
                    m.ciaddr
                } else {
                    m.requested.unwrap_or(Ipv4Addr::UNSPECIFIED)
                };
                let client = m.client_key();
                for b in bindings.get_mut(&addr).into_iter().flatten() {
                    if b.2 == client && b.0 <= m.time_us && m.time_us < b.1 {
                        b.1 = m.time_us;
                    }
                }
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    for (addr, list) in &bindings {
        // `list` is in start order; compare each binding with the ones still running.
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if b.0 >= a.1 {
                    break;
                }
                if a.2 != b.2 {
                    violations.push(format!(
                        "{addr}: {} from {} to {} overlaps {} from {}",
                        a.2, a.0, a.1, b.2, b.0
                    ));
                }
            }
        }
    }
    violations
}
