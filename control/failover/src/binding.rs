//! One binding as BNDUPD carries it (draft §7.1), between a lease record and the wire, with
//! ISC's rules for what a BNDUPD must hold (`failover.c:4659-4785` sending,
//! `:5170-5360` receiving; reference §1.3 and §6 item 5).
//!
//! The relay agent information (option 82) a lease was granted through travels in
//! client-request-options (option 8, draft §12.8: the DHCP options of the client's request,
//! here an option 82 TLV, and an option 12 TLV with the client's host name), so either partner
//! can answer a leasequery with it and find the lease by name. ISC dhcpd 4.4
//! allows option 8 in a BNDUPD, stores it and never reads it (`stables.c:58-59`, `:112-115`;
//! `failover.c:796-818`), so it goes to every peer. A binding without option 8, or with one
//! whose contents do not parse, carries no relay info and no host name.
//!
//! The conflict and state-transition checks of a received update (which binding wins) and
//! the `tstp`/`tsfp`/`atsfp` bookkeeping after BNDACK are in [`super::judge`].

use std::net::Ipv4Addr;

use lease_record::{BindingState, Lease, UnixTime};
use lease_record::{ClientId, Hostname, MAX_HOSTNAME, MAX_RELAY_INFO, RelayInfo};

use super::msg::{BindingStatus, MessageType, Options, RejectReason, Repr};

/// Longest client-hardware-address ISC accepts: htype and 16 bytes (`hbuf[17]`).
pub const MAX_CHADDR_OPTION: usize = 17;

/// A binding update's contents, owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub ip: Ipv4Addr,
    pub status: BindingStatus,
    /// Option 61 contents; empty when the client sent none.
    pub client_id: ClientId,
    /// htype followed by the hardware address, as option 5 carries it; `hw_len == 0` = none.
    hw: [u8; MAX_CHADDR_OPTION],
    hw_len: u8,
    /// Expiry given to the client (option 13).
    pub ends: UnixTime,
    /// The sender's `tstp` (option 18): our `tsfp` when we receive it.
    pub potential_expiry: UnixTime,
    /// Option 25 (ISC sends the lease's `starts`).
    pub stos: UnixTime,
    /// Option 6; zero = not sent.
    pub cltt: UnixTime,
    /// Option 12; zero = not sent.
    pub ip_flags: u16,
    /// Option 82 the lease was granted through and the client's host name, as option 8
    /// carries them ([`Binding::relay`], [`Binding::hostname`]).
    relay: RelayOption,
}

/// DHCP option 82 (relay agent information).
const DHCP_RELAY_AGENT_INFO: u8 = 82;
/// DHCP option 12 (host name).
const DHCP_HOST_NAME: u8 = 12;
/// DHCP pad and end options, in option 8's contents.
const DHCP_PAD: u8 = 0;
const DHCP_END: u8 = 255;

/// The contents of client-request-options: a DHCP option 82 TLV (code, length, the relay
/// info) when there is relay info, then an option 12 TLV when there is a host name; `len` 0
/// when there is neither.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RelayOption {
    buf: [u8; 4 + MAX_RELAY_INFO + MAX_HOSTNAME],
    len: u8,
}

impl RelayOption {
    const NONE: RelayOption = RelayOption {
        buf: [0; 4 + MAX_RELAY_INFO + MAX_HOSTNAME],
        len: 0,
    };

    fn new(relay: &RelayInfo, hostname: &Hostname) -> Self {
        let mut o = Self::NONE;
        let mut n = 0;
        for (code, value) in [
            (DHCP_RELAY_AGENT_INFO, relay.as_bytes()),
            (DHCP_HOST_NAME, hostname.as_bytes()),
        ] {
            // Both bounded far below 255 by the record ([`MAX_RELAY_INFO`], [`MAX_HOSTNAME`]).
            if let Ok(len) = u8::try_from(value.len())
                && len > 0
            {
                o.buf[n] = code;
                o.buf[n + 1] = len;
                o.buf[n + 2..n + 2 + value.len()].copy_from_slice(value);
                n += 2 + value.len();
            }
        }
        o.len = n as u8;
        o
    }

    /// Option 8's contents; `None` when there is neither relay info nor a host name.
    fn contents(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.buf[..usize::from(self.len)])
    }

    fn relay(&self) -> RelayInfo {
        self.contents()
            .map(relay_from_request_options)
            .unwrap_or_default()
    }

    fn hostname(&self) -> Hostname {
        self.contents()
            .map(|c| hostname_from_request_options(c, &self.relay()))
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for RelayOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?}", self.relay(), self.hostname())
    }
}

/// The value of DHCP option `code` in client-request-options contents (several instances
/// concatenated, RFC 3396); `None` when the contents overrun or hold no such option.
fn request_option(contents: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut value: Option<Vec<u8>> = None;
    let mut rest = contents;
    while let Some((&c, tail)) = rest.split_first() {
        match c {
            DHCP_PAD => rest = tail,
            DHCP_END => break,
            _ => {
                let (&len, tail) = tail.split_first()?;
                let (v, tail) = tail.split_at_checked(usize::from(len))?;
                if c == code {
                    value.get_or_insert_with(Vec::new).extend_from_slice(v);
                }
                rest = tail;
            }
        }
    }
    value
}

/// The host name (option 12) in client-request-options, cut as a record keeps it beside
/// `relay` ([`Hostname::keep`]); none when the contents overrun or hold none.
pub fn hostname_from_request_options(contents: &[u8], relay: &RelayInfo) -> Hostname {
    request_option(contents, DHCP_HOST_NAME)
        .map(|h| Hostname::keep(&h, relay))
        .unwrap_or_default()
}

/// The relay info in client-request-options (option 8): its contents read as DHCP options
/// (code, length, value; 0 pads, 255 ends), the value of option 82 kept as a record keeps it
/// ([`RelayInfo::keep`]); several option 82s are one, concatenated (RFC 3396). Contents that
/// overrun, or hold no option 82, give none.
pub fn relay_from_request_options(contents: &[u8]) -> RelayInfo {
    request_option(contents, DHCP_RELAY_AGENT_INFO)
        .map(|v| RelayInfo::keep(&v))
        .unwrap_or_default()
}

/// A received BNDUPD ISC would refuse, with the BNDACK reject reason and message it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BindingError {
    pub reason: RejectReason,
    pub message: &'static str,
}

impl Binding {
    /// The update for `ip` from our lease record; `None` for OFFERED, which never travels.
    pub fn from_lease(ip: Ipv4Addr, lease: &Lease, ip_flags: u16) -> Option<Binding> {
        let status = BindingStatus::from_lease(lease.state)?;
        let mut hw = [0; MAX_CHADDR_OPTION];
        let n = usize::from(lease.hlen.min(16));
        let hw_len = if n > 0 {
            hw[0] = lease.htype;
            hw[1..=n].copy_from_slice(&lease.chaddr[..n]);
            u8::try_from(n + 1).unwrap_or(0)
        } else {
            0
        };
        Some(Binding {
            ip,
            status,
            client_id: lease.client_id,
            hw,
            hw_len,
            ends: lease.ends,
            potential_expiry: lease.tstp,
            stos: lease.stos,
            cltt: lease.cltt,
            ip_flags,
            relay: RelayOption::new(&lease.relay, &lease.hostname),
        })
    }

    /// The client-hardware-address option value (htype, then the address), if any.
    pub fn chaddr(&self) -> Option<&[u8]> {
        (self.hw_len > 0).then(|| &self.hw[..usize::from(self.hw_len)])
    }

    /// The option 82 payload the lease was granted through; empty when none travels.
    pub fn relay(&self) -> RelayInfo {
        self.relay.relay()
    }

    /// The client's host name; empty when none travels.
    pub fn hostname(&self) -> Hostname {
        self.relay.hostname()
    }

    /// The client-request-options value (option 8): DHCP option 82 and 12 TLVs, if any.
    pub fn request_options(&self) -> Option<&[u8]> {
        self.relay.contents()
    }

    /// A BNDUPD as ISC builds one: client-id and chaddr only when known, CLTT and IP-flags
    /// only when nonzero; one binding per message. Client-request-options (the relay info)
    /// only when there is some; ISC sends none, but reads and drops it. Time and xid are set
    /// by [`super::fsm::Fsm::send`].
    pub fn to_repr(&self) -> Repr<'_> {
        let mut r = Repr::new(MessageType::BndUpd, UnixTime(0), 0);
        let o = &mut r.options;
        o.assigned_ip = Some(self.ip);
        o.binding_status = Some(self.status as u8);
        o.client_id = (!self.client_id.is_empty()).then(|| self.client_id.as_bytes());
        o.chaddr = self.chaddr();
        o.lease_expiry = Some(self.ends);
        o.potential_expiry = Some(self.potential_expiry);
        o.stos = Some(self.stos);
        o.cltt = (self.cltt.0 != 0).then_some(self.cltt);
        o.ip_flags = (self.ip_flags != 0).then_some(self.ip_flags);
        o.client_request_options = self.request_options();
        r
    }

    /// The binding of a received BNDUPD, refused as ISC refuses it.
    pub fn from_repr(m: &Repr<'_>) -> Result<Binding, BindingError> {
        Self::from_options(&m.options)
    }

    /// One binding of a received BNDUPD (an element of [`Repr::bindings`]), refused as ISC
    /// refuses it. Client-request-options never refuses it: contents that do not parse
    /// carry no relay info ([`relay_from_request_options`]).
    pub fn from_options(o: &Options<'_>) -> Result<Binding, BindingError> {
        let missing = |message| BindingError {
            reason: RejectReason::MissingBindingInformation,
            message,
        };
        let misc = |message| BindingError {
            reason: RejectReason::Unknown,
            message,
        };
        let ip = o.assigned_ip.ok_or(missing("BNDUPD without IP address"))?;
        let status = o
            .binding_status
            .and_then(BindingStatus::from_u8)
            .ok_or(missing("BNDUPD without binding status"))?;
        let mut hw = [0; MAX_CHADDR_OPTION];
        let mut hw_len = 0;
        match o.chaddr {
            Some(_) if status == BindingStatus::Abandoned => {
                return Err(misc("BNDUPD to ABANDONED with a CHADDR"));
            }
            Some(c) if c.len() > MAX_CHADDR_OPTION => return Err(misc("chaddr too long")),
            Some(c) => {
                hw[..c.len()].copy_from_slice(c);
                hw_len = u8::try_from(c.len()).unwrap_or(0);
            }
            None if matches!(
                status,
                BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released
            ) =>
            {
                return Err(missing("BNDUPD without CHADDR"));
            }
            None => {}
        }
        let client_id = match o.client_id {
            Some(_) if status == BindingStatus::Abandoned => {
                return Err(misc("BNDUPD to ABANDONED with client-id"));
            }
            Some(id) => ClientId::new(id).ok_or(misc("client-id too long"))?,
            None => ClientId::EMPTY,
        };
        let zero = UnixTime(0);
        Ok(Binding {
            ip,
            status,
            client_id,
            hw,
            hw_len,
            ends: o.lease_expiry.unwrap_or(zero),
            potential_expiry: o.potential_expiry.unwrap_or(zero),
            stos: o.stos.unwrap_or(zero),
            cltt: o.cltt.unwrap_or(zero),
            ip_flags: o.ip_flags.unwrap_or(0),
            relay: o
                .client_request_options
                .map(|c| {
                    let relay = relay_from_request_options(c);
                    RelayOption::new(&relay, &hostname_from_request_options(c, &relay))
                })
                .unwrap_or(RelayOption::NONE),
        })
    }

    /// Writes a received binding into our record, as ISC installs it (`failover.c:5240-5360`):
    /// the partner's potential expiry becomes our `tsfp`; a missing client-id erases ours
    /// except in RESET, FREE and BACKUP; ABANDONED clears the hardware address. The relay
    /// info and host name become the binding's, none when it carried none (the update says what the
    /// partner knows). Whether the update may win at all (conflict rules) is decided before.
    pub fn apply_to(&self, lease: &mut Lease) {
        lease.state = self.status.to_lease();
        if let Some(c) = self.chaddr() {
            lease.htype = c.first().copied().unwrap_or(0);
            let mac = c.get(1..).unwrap_or(&[]);
            lease.chaddr = [0; 16];
            lease.chaddr[..mac.len()].copy_from_slice(mac);
            lease.hlen = u8::try_from(mac.len()).unwrap_or(0);
        } else if self.status == BindingStatus::Abandoned {
            lease.hlen = 0;
        }
        if !self.client_id.is_empty() {
            lease.client_id = self.client_id;
        } else if !matches!(
            self.status,
            BindingStatus::Reset | BindingStatus::Free | BindingStatus::Backup
        ) {
            lease.client_id = ClientId::EMPTY;
        }
        lease.ends = self.ends;
        lease.tsfp = self.potential_expiry;
        if self.stos.0 != 0 {
            lease.stos = self.stos;
        }
        if self.cltt.0 != 0 {
            lease.cltt = self.cltt;
        }
        lease.relay = self.relay();
        lease.hostname = self.hostname();
        lease.owner = lease_record::Owner::Partner;
    }

    /// The BNDACK for this binding as ISC sends it: assigned-IP only, plus reject-reason and
    /// message on refusal; the xid is the BNDUPD's (`failover.c:4787-4871`).
    pub fn ack(ip: Ipv4Addr, reject: Option<&BindingError>) -> Repr<'static> {
        let mut r = Repr::new(MessageType::BndAck, UnixTime(0), 0);
        r.options.assigned_ip = Some(ip);
        if let Some(e) = reject {
            r.options.reject_reason = Some(e.reason);
            r.options.message = Some(e.message.as_bytes());
        }
        r
    }
}

/// The lease state a binding status means, for callers holding raw wire values.
pub fn lease_state(status: u8) -> Option<BindingState> {
    BindingStatus::from_u8(status).map(BindingStatus::to_lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIRCUIT: [u8; 6] = [1, 4, 0xc0, 0xff, 0xee, 0x01];

    #[test]
    fn request_options_read_as_dhcp_options() {
        let relay = RelayInfo::new(&CIRCUIT).unwrap();
        // One option 82, with pads before, other options around it and an end after.
        let mut c = vec![0, 0, 12, 3, b'p', b'c', b'1', 82, 6];
        c.extend_from_slice(&CIRCUIT);
        c.extend_from_slice(&[55, 2, 1, 3, 255, 82, 9]);
        assert_eq!(relay_from_request_options(&c), relay);
        // Split over two option 82s (RFC 3396): one payload.
        let c = [82, 2, 1, 4, 82, 4, 0xc0, 0xff, 0xee, 0x01];
        assert_eq!(relay_from_request_options(&c), relay);
        // A payload longer than a record holds: only the sub-options leasequery asks by.
        let mut long = vec![9, 120];
        long.extend_from_slice(&[7; 120]);
        long.extend_from_slice(&CIRCUIT);
        let mut c = vec![82, 128];
        c.extend_from_slice(&long);
        assert_eq!(relay_from_request_options(&c), relay);
    }

    #[test]
    fn malformed_request_options_carry_no_relay() {
        for c in [
            &[][..],
            &[0, 0, 255][..],
            // No option 82.
            &[12, 1, b'x'][..],
            // Code without a length, then a length running past the end.
            &[82][..],
            &[82, 7, 1, 4, 0xc0, 0xff, 0xee, 0x01][..],
            // A good option 82, then an overrun.
            &[82, 6, 1, 4, 0xc0, 0xff, 0xee, 0x01, 12, 200, 0][..],
            // Empty option 82.
            &[82, 0][..],
        ] {
            assert!(relay_from_request_options(c).is_empty(), "{c:?}");
        }
        // Every prefix of a valid list, every byte value: never a panic.
        let mut c = vec![0, 82, 6];
        c.extend_from_slice(&CIRCUIT);
        for n in 0..c.len() {
            for b in 0..=255u8 {
                let mut x = c[..n].to_vec();
                x.push(b);
                let _ = relay_from_request_options(&x);
            }
        }
    }

    #[test]
    fn relay_option_holds_one_option_82() {
        let relay = RelayInfo::new(&CIRCUIT).unwrap();
        let none = Hostname::EMPTY;
        let o = RelayOption::new(&relay, &none);
        let mut want = vec![82, 6];
        want.extend_from_slice(&CIRCUIT);
        assert_eq!(o.contents(), Some(&want[..]));
        assert_eq!((o.relay(), o.hostname()), (relay, none));
        assert_eq!(
            RelayOption::new(&RelayInfo::EMPTY, &none),
            RelayOption::NONE
        );
        assert_eq!(RelayOption::NONE.contents(), None);
        let full = RelayInfo::new(&[0xab; MAX_RELAY_INFO]).unwrap();
        let o = RelayOption::new(&full, &none);
        assert_eq!(o.contents().map(<[u8]>::len), Some(2 + MAX_RELAY_INFO));
        assert_eq!(relay_from_request_options(o.contents().unwrap()), full);
        // With a host name: an option 12 after the 82; alone, just the 12.
        let name = Hostname::keep(b"pc1", &relay);
        let o = RelayOption::new(&relay, &name);
        want.extend_from_slice(&[12, 3, b'p', b'c', b'1']);
        assert_eq!(o.contents(), Some(&want[..]));
        assert_eq!((o.relay(), o.hostname()), (relay, name));
        let o = RelayOption::new(&RelayInfo::EMPTY, &name);
        assert_eq!(o.contents(), Some(&[12, 3, b'p', b'c', b'1'][..]));
        assert_eq!((o.relay(), o.hostname()), (RelayInfo::EMPTY, name));
        let c = [12, 2, b'p', b'c', 12, 1, b'1'];
        assert_eq!(hostname_from_request_options(&c, &relay), name);
        assert!(hostname_from_request_options(&[12, 5, b'x'], &relay).is_empty());
    }
}
