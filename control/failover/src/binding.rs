//! One binding as BNDUPD carries it (draft §7.1), between a lease record and the wire, with
//! ISC's rules for what a BNDUPD must hold (`failover.c:4659-4785` sending,
//! `:5170-5360` receiving; reference §1.3 and §6 item 5).
//!
//! The conflict and state-transition checks of a received update (which binding wins) and
//! the `tstp`/`tsfp`/`atsfp` bookkeeping after BNDACK are in [`super::judge`].

use std::net::Ipv4Addr;

use lease_record::ClientId;
use lease_record::{BindingState, Lease, UnixTime};

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
        })
    }

    /// The client-hardware-address option value (htype, then the address), if any.
    pub fn chaddr(&self) -> Option<&[u8]> {
        (self.hw_len > 0).then(|| &self.hw[..usize::from(self.hw_len)])
    }

    /// A BNDUPD as ISC builds one: client-id and chaddr only when known, CLTT and IP-flags
    /// only when nonzero; one binding per message. Time and xid are set by [`super::fsm::Fsm::send`].
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
        r
    }

    /// The binding of a received BNDUPD, refused as ISC refuses it.
    pub fn from_repr(m: &Repr<'_>) -> Result<Binding, BindingError> {
        Self::from_options(&m.options)
    }

    /// One binding of a received BNDUPD (an element of [`Repr::bindings`]), refused as ISC
    /// refuses it.
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
        })
    }

    /// Writes a received binding into our record, as ISC installs it (`failover.c:5240-5360`):
    /// the partner's potential expiry becomes our `tsfp`; a missing client-id erases ours
    /// except in RESET, FREE and BACKUP; ABANDONED clears the hardware address. Whether the
    /// update may win at all (conflict rules) is decided before.
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
