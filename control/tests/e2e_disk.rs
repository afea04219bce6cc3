//! A disk that fails: ENOSPC (the data directory on a small tmpfs, filled) and EIO from
//! fdatasync (the data directory on a FUSE filesystem that fails fsync on demand). While a
//! journal commit fails, the real `tandemd` sends no DHCPACK, proved on the wire; it logs the
//! failure and exits with status 1, and after a restart on a working disk every lease it had
//! ACKed is still bound.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::{collections::BTreeSet, path::Path, time::Duration};

use common::{
    capture::{self, Capture, DhcpMsg},
    clients::{RebootReply, Scapy},
    disk::{FaultFs, Tmpfs},
    net::{Layout, TestNet},
    server::Server,
};

/// One worker (one journal), a small pool, group commit before every ACK.
fn config(net: &TestNet, data_dir: &Path) -> String {
    format!(
        r#"[server]
interfaces = ["{iface}"]
server_id = "{server}"
data_dir = "{data}"
datapath = "packet"
workers = 1
durability = "sync"

[[subnet]]
prefix = "{prefix}"
pools = ["10.77.1.10-10.77.1.250"]
lease_time = "3600s"
"#,
        iface = net.server.iface,
        server = common::net::DIRECT_SERVER,
        data = data_dir.display(),
        prefix = common::net::DIRECT_PREFIX,
    )
}

fn macs(tag: u8, n: u8) -> Vec<String> {
    (0..n)
        .map(|i| format!("02:00:00:00:{tag:02x}:{i:02x}"))
        .collect()
}

/// What the wire says: the chaddrs that got a DHCPACK, and whether `mac`'s REQUEST reached
/// the server.
fn acked(msgs: &[DhcpMsg]) -> BTreeSet<String> {
    capture::acks(msgs)
        .iter()
        .map(|a| a.chaddr.clone())
        .collect()
}

fn requested(msgs: &[DhcpMsg], mac: &str) -> bool {
    msgs.iter()
        .any(|m| m.op == 1 && m.msg_type == 3 && m.chaddr == mac)
}

/// Waits for the server to stop by itself after its commit failed: status 1, and the log says
/// why (`what`, the errno's text).
fn assert_stopped(server: &mut Server, what: &str, errno_text: &str) {
    let status = server
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| {
            panic!(
                "tandemd still runs after a failed commit; log:\n{}",
                server.log()
            )
        });
    let log = server.log();
    assert_eq!(status.code(), Some(1), "{status}; log:\n{log}");
    assert!(
        log.contains(what) && log.contains(errno_text),
        "the log names the failure ({what}: {errno_text}):\n{log}"
    );
    assert!(
        log.contains("exiting after a durability failure without a checkpoint"),
        "{log}"
    );
}

/// After a restart on a working disk, every chaddr in `acked` holds an active lease.
fn assert_kept(server: &mut Server, acked: &BTreeSet<String>) {
    server.restart();
    let stored: BTreeSet<String> = server
        .active_leases()
        .into_iter()
        .map(|l| l.chaddr)
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "ACKed leases lost: {lost:?}; stored {stored:?}"
    );
}

fn split_at_first_unanswered(replies: &[RebootReply]) -> usize {
    let i = replies
        .iter()
        .position(|r| r.reply != "ack")
        .unwrap_or_else(|| panic!("every REQUEST was ACKed although commits fail: {replies:?}"));
    assert_eq!(replies[i].reply, "none", "{replies:?}");
    assert!(
        replies[i..].iter().all(|r| r.reply != "ack"),
        "an ACK after a failed commit: {replies:?}"
    );
    i
}

#[test]
fn a_full_disk_sends_no_ack_and_stops_the_daemon() {
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, 1);
    let ep = net.clients[0].clone();
    let disk = Tmpfs::mount("2m");
    let data = disk.path.join("data");
    let mut cap = Capture::start(&net.server.ns, &net.server.iface);
    let mut server = Server::start_tandemd_in(&net.server.ns, &data, |d| config(&net, d));
    // Every block taken. The journal's first page (its header and room for 7 entries) is
    // already allocated, so the first commits still fit; the one that needs a new page
    // fails with ENOSPC.
    disk.fill();
    let replies = Scapy::new()
        .dora(&ep, &macs(0x0d, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    let failed = split_at_first_unanswered(&replies);
    assert_stopped(
        &mut server,
        "journal commit failed",
        "No space left on device",
    );

    let msgs = cap.stop();
    let want: BTreeSet<String> = replies[..failed].iter().map(|r| r.chaddr.clone()).collect();
    assert_eq!(acked(&msgs), want, "DHCPACKs on the wire");
    assert!(
        requested(&msgs, &replies[failed].chaddr),
        "the unanswered REQUEST reached the server: {:?}",
        replies[failed]
    );

    disk.free();
    assert_kept(&mut server, &want);
    drop(server);
}

#[test]
fn an_fsync_error_sends_no_ack_and_stops_the_daemon() {
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, 1);
    let ep = net.clients[0].clone();
    let disk = FaultFs::mount();
    let data = disk.path.join("data");
    let mut cap = Capture::start(&net.server.ns, &net.server.iface);
    let mut server = Server::start_tandemd_in(&net.server.ns, &data, |d| config(&net, d));
    let scapy = Scapy::new();
    let clients = macs(0x0e, 4);
    let before = scapy
        .dora(&ep, &clients[..2])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        before.iter().all(|r| r.reply == "ack"),
        "the disk still works: {before:?}\n{}",
        server.log()
    );
    disk.fail_fsync("journal-");
    let after = scapy
        .dora(&ep, &clients[2..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(split_at_first_unanswered(&after), 0, "{after:?}");
    assert_stopped(
        &mut server,
        "journal fdatasync failed",
        "Input/output error",
    );

    let msgs = cap.stop();
    let want: BTreeSet<String> = clients[..2].iter().cloned().collect();
    assert_eq!(acked(&msgs), want, "DHCPACKs on the wire");
    assert!(
        requested(&msgs, &clients[2]),
        "the REQUEST reached the server"
    );

    disk.heal();
    assert_kept(&mut server, &want);
    drop(server);
    assert!(!disk.log().contains("Traceback"), "{}", disk.log());
}
