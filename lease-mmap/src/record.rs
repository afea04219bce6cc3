//! The lease record: what one address's binding is, as the engine and failover see it.
//!
//! [`Lease`] is the in-memory snapshot handed out by [`crate::Table::read`]; the fixed-size
//! on-disk layout it is stored in is private to this module (see `FORMAT.md`).

use crate::UnixTime;

/// Binding states of draft-ietf-dhc-failover-12 §5.1 (FREE .. BACKUP), plus OFFERED, a
/// short, non-durable hold between DHCPOFFER and DHCPREQUEST (RFC 2131 §4.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BindingState {
    #[default]
    Free = 0,
    Active = 1,
    Expired = 2,
    Released = 3,
    Abandoned = 4,
    Reset = 5,
    Backup = 6,
    Offered = 7,
}

impl BindingState {
    /// Every state, in wire/disk order.
    pub const ALL: [BindingState; 8] = [
        Self::Free,
        Self::Active,
        Self::Expired,
        Self::Released,
        Self::Abandoned,
        Self::Reset,
        Self::Backup,
        Self::Offered,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// Lower-case name as shown by `tandemctl status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Released => "released",
            Self::Abandoned => "abandoned",
            Self::Reset => "reset",
            Self::Backup => "backup",
            Self::Offered => "offered",
        }
    }
}

/// Which server last changed a binding (failover bookkeeping; `Us` when standalone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Owner {
    #[default]
    Us = 0,
    Partner = 1,
}

/// How a client is identified (RFC 2131 §4.2): option 61 if present, else htype + chaddr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey<'a> {
    /// Option 61, the whole option payload (type byte included).
    ClientId(&'a [u8]),
    /// `htype` and the first `hlen` bytes of `chaddr`.
    HwAddr { htype: u8, chaddr: &'a [u8] },
}

/// Longest client identifier (option 61 payload) a record can hold.
pub const MAX_CLIENT_ID: usize = 255;

/// A client identifier stored by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    len: u8,
    bytes: [u8; MAX_CLIENT_ID],
}

impl ClientId {
    pub const EMPTY: ClientId = ClientId { len: 0, bytes: [0; MAX_CLIENT_ID] };

    /// `None` when `id` is longer than [`MAX_CLIENT_ID`].
    pub fn new(id: &[u8]) -> Option<Self> {
        let len = u8::try_from(id.len()).ok()?;
        let mut bytes = [0; MAX_CLIENT_ID];
        bytes[..id.len()].copy_from_slice(id);
        Some(Self { len, bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for ClientId {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A consistent snapshot of one address's binding.
///
/// Times follow draft-ietf-dhc-failover-12 §5: `ends` is the lease expiration given to the
/// client, `tstp` the potential expiration sent to the partner, `tsfp` the potential expiration
/// the partner last told us, `atsfp` the one it acknowledged, `cltt` the client's last
/// transaction time, `stos` the start time of the binding's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    pub state: BindingState,
    pub ends: UnixTime,
    pub tstp: UnixTime,
    pub tsfp: UnixTime,
    pub atsfp: UnixTime,
    pub cltt: UnixTime,
    pub stos: UnixTime,
    pub htype: u8,
    pub hlen: u8,
    pub chaddr: [u8; 16],
    pub client_id: ClientId,
    pub owner: Owner,
}

impl Lease {
    /// The key this lease's client is indexed by, if it has a client.
    pub fn client_key(&self) -> Option<ClientKey<'_>> {
        if !self.client_id.is_empty() {
            Some(ClientKey::ClientId(self.client_id.as_bytes()))
        } else if self.hlen > 0 {
            let n = usize::from(self.hlen.min(16));
            Some(ClientKey::HwAddr { htype: self.htype, chaddr: &self.chaddr[..n] })
        } else {
            None
        }
    }

    /// Whether this lease belongs to the client identified by `key`.
    pub fn is_for(&self, key: &ClientKey<'_>) -> bool {
        self.client_key().as_ref() == Some(key)
    }
}
