//! What goes into [`super::Engine::decide`] besides the request, and what comes out.

use std::net::Ipv4Addr;

use lease_mmap::{Lease, Slot, TableId};

use crate::reasons::reasons;
use crate::wire::dhcpv4::Repr;

pub use crate::wire::dhcpv4::{CLIENT_PORT, SERVER_PORT};

/// Ethernet broadcast.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Where a request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// The receiving interface's IPv4 address: selects the scope of directly attached
    /// clients and is the server identifier when none is configured.
    pub if_addr: Ipv4Addr,
    /// Ethernet source of the request (the client, or the relay / router in front of it).
    pub src_mac: [u8; 6],
    /// IPv4 source of the request.
    pub src_ip: Ipv4Addr,
}

/// Where a reply goes (DESIGN.md §2 "Replies", RFC 2131 §4.1). Never needs ARP: `mac` is
/// the request's source MAC, `chaddr`, or broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// [`SERVER_PORT`] toward a relay agent, else [`CLIENT_PORT`].
    pub port: u16,
}

impl Destination {
    pub const BROADCAST: Destination = Destination {
        mac: BROADCAST_MAC,
        ip: Ipv4Addr::BROADCAST,
        port: CLIENT_PORT,
    };
}

/// A lease change to journal ([`lease_mmap::WorkerJournal::record`]) and group-commit
/// before the reply that carries it may leave. The table already holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    pub table: TableId,
    pub slot: Slot,
    /// The record version the change produced.
    pub version: u64,
    pub lease: Lease,
}

/// A reply to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The DHCP (or BOOTP) message, borrowing the request and the engine's config.
    pub repr: Repr<'a>,
    pub dest: Destination,
    /// IPv4 source address of the reply: the configured server identifier, else the
    /// receiving interface's address (option 54 differs only under an RFC 5107 override).
    pub server_ip: Ipv4Addr,
    /// `Some` for a DHCPACK or BOOTREPLY that binds or extends a lease: the reply may leave
    /// only once this is durable. OFFERs and NAKs never carry one.
    pub commit: Option<Commit>,
}

/// The engine's answer to one request.
#[expect(
    clippy::large_enum_variant,
    reason = "the fast path never allocates: a decision lives on the worker's stack"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Send this.
    Reply(Reply<'a>),
    /// A valid request that gets no reply (RFC 2131 says so, or the partner serves it).
    /// RELEASE and DECLINE carry the change to journal (no reply waits on it).
    Silent {
        reason: SilentReason,
        commit: Option<Commit>,
    },
    /// Malformed, unserviceable or out of resources: drop and count by reason.
    Drop(DropReason),
}

impl Decision<'_> {
    /// The reply, if any.
    pub fn reply(&self) -> Option<&Reply<'_>> {
        match self {
            Decision::Reply(r) => Some(r),
            _ => None,
        }
    }

    /// The lease change to journal, if any.
    pub fn commit(&self) -> Option<&Commit> {
        match self {
            Decision::Reply(r) => r.commit.as_ref(),
            Decision::Silent { commit, .. } => commit.as_ref(),
            Decision::Drop(_) => None,
        }
    }
}

reasons! {
    /// Why a request was dropped.
    DropReason {
        /// `op` is BOOTREPLY.
        NotBootRequest => "not-boot-request",
        /// `hlen` over 16.
        BadHlen => "bad-hlen",
        /// Neither a client identifier (61) nor a hardware address.
        NoClientIdentity => "no-client-identity",
        /// Option 61 longer than a record can hold.
        ClientIdTooLong => "client-id-too-long",
        /// Option 82 sub-options overrun, or link selection is not 4 bytes.
        BadRelayAgentInfo => "bad-relay-agent-info",
        /// No configured scope for the link / subnet selection / giaddr / interface.
        NoSubnet => "no-subnet",
        /// No server identifier: none configured and the interface has no address.
        NoServerAddress => "no-server-address",
        /// OFFER, ACK or NAK sent to a server.
        ServerMessageType => "server-message-type",
        /// Option 53 value unknown to RFC 2131.
        UnknownMessageType => "unknown-message-type",
        /// REQUEST (SELECTING / INIT-REBOOT) or DECLINE without option 50.
        MissingRequestedIp => "missing-requested-ip",
        /// RELEASE without ciaddr.
        MissingCiaddr => "missing-ciaddr",
        /// RELEASE or DECLINE without option 54 (RFC 2131 §4.4.4, §4.4.6: it MUST carry it).
        MissingServerId => "missing-server-id",
        /// RELEASE or DECLINE naming another server's identifier.
        OtherServerId => "other-server-id",
        /// DECLINE of an address the client does not hold (no unexpired ACTIVE lease of its
        /// own there): an OFFER is not enough, else anyone could abandon a pool.
        DeclineNotHeld => "decline-not-held",
        /// DECLINE over its client MAC's limit ([`crate::limit::DeclineLimits::mac`]).
        DeclineRateMac => "decline-rate-mac",
        /// DECLINE over its relay's limit ([`crate::limit::DeclineLimits::relay`]).
        DeclineRateRelay => "decline-rate-relay",
        /// Nothing left to allocate.
        PoolExhausted => "pool-exhausted",
        /// The client's reserved address is bound to another client or on probation.
        ReservedAddressUnavailable => "reserved-address-unavailable",
        /// A record kept changing under us (bounded CAS retries exhausted).
        Contention => "contention",
        /// The table's client index (or its long client-id area) is full.
        ClientIndexFull => "client-index-full",
        /// The lease table could not write a record's long client id back to disk: a storage
        /// failure, fatal like a failed journal commit.
        Storage => "storage",
        /// The lease table disagrees with the config (a bug, never the client's fault).
        Internal => "internal",
    }
}

reasons! {
    /// Why a valid request gets no reply.
    SilentReason {
        /// Failover: the partner answers this client.
        PartnerServes => "partner-serves",
        /// REQUEST in SELECTING for another server; our offer hold was released.
        OtherServerSelected => "other-server-selected",
        /// INIT-REBOOT / RENEWING / REBINDING from a client we have no record of (§4.3.2).
        UnknownClient => "unknown-client",
        /// RELEASE applied.
        Released => "released",
        /// DECLINE applied: the address is ABANDONED for the probation period.
        Declined => "declined",
        /// DECLINE of the client's own lease, not applied: the scope already holds its
        /// `max_abandoned_percent` of ABANDONED addresses, so the lease stays as it was.
        DeclineOverCap => "decline-over-cap",
        /// RELEASE for an address not bound to this client.
        NotBound => "not-bound",
        /// BOOTREQUEST from a client without a reservation.
        BootpWithoutReservation => "bootp-without-reservation",
    }
}
