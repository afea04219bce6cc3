//! The lease record: what one address's binding is, as the engine and failover see it, and
//! where it lives ([`TableId`], [`Slot`]). Plain values with no I/O, so that the failover
//! core can use them without the memory-mapped store (`lease-mmap`, which re-exports all of
//! this).
//!
//! [`Lease`] is the in-memory snapshot `lease_mmap::Table::read` hands out; the fixed-size
//! on-disk layout it is stored in is the store's business (the `disk` module, hidden, see
//! `lease-mmap/FORMAT.md`).
#![forbid(unsafe_code)]

mod time;

pub use time::UnixTime;

/// Index of a table within its store (the order of the specs given to `lease_mmap::Store::open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u16);

/// Index of a record within its table: `address - first address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u32);

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

/// Which server last changed a binding (failover bookkeeping; `Us` when standalone). The
/// one that wrote a binding's end (EXPIRED, RELEASED) may give the address again once its
/// partner has acknowledged that end; the other one only in PARTNER-DOWN.
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
    pub const EMPTY: ClientId = ClientId {
        len: 0,
        bytes: [0; MAX_CLIENT_ID],
    };

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

/// The most relay agent information (option 82 payload) a record keeps; a longer option is
/// kept as its circuit-id, remote-id and relay-id sub-options when those fit ([`RelayInfo::keep`]).
pub const MAX_RELAY_INFO: usize = 115;

/// Sub-options a leasequery asks by (RFC 3046 §3, RFC 6925): what [`RelayInfo::keep`] keeps.
const QUERIED_SUBOPTIONS: [u8; 3] = [1, 2, 12];

/// The relay agent information option (82) a lease was last obtained or renewed with, as
/// the relay sent it (its whole payload: sub-options with their codes and lengths), for
/// leasequery (RFC 4388 §6.4.2 returns it) and lease lookups by circuit-id or remote-id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayInfo {
    len: u8,
    bytes: [u8; MAX_RELAY_INFO],
}

impl RelayInfo {
    pub const EMPTY: RelayInfo = RelayInfo {
        len: 0,
        bytes: [0; MAX_RELAY_INFO],
    };

    /// `payload` stored whole; `None` when longer than [`MAX_RELAY_INFO`].
    pub fn new(payload: &[u8]) -> Option<Self> {
        if payload.len() > MAX_RELAY_INFO {
            return None;
        }
        let mut bytes = [0; MAX_RELAY_INFO];
        bytes[..payload.len()].copy_from_slice(payload);
        Some(Self {
            len: payload.len() as u8,
            bytes,
        })
    }

    /// What a record keeps of an option 82 payload: all of it if it fits, else the
    /// sub-options a leasequery asks by (circuit-id, remote-id, relay-id) that fit, in their
    /// order. A payload whose sub-options overrun it keeps nothing.
    pub fn keep(payload: &[u8]) -> Self {
        if let Some(whole) = Self::new(payload) {
            return whole;
        }
        let mut out = Self::EMPTY;
        let mut n = 0;
        for (code, value) in SubOptions(payload) {
            let Some(value) = value else {
                return Self::EMPTY;
            };
            let need = 2 + value.len();
            if QUERIED_SUBOPTIONS.contains(&code) && n + need <= MAX_RELAY_INFO {
                out.bytes[n] = code;
                out.bytes[n + 1] = value.len() as u8;
                out.bytes[n + 2..n + need].copy_from_slice(value);
                n += need;
            }
        }
        out.len = n as u8;
        out
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of sub-option `code`, if present (the first one).
    pub fn sub_option(&self, code: u8) -> Option<&[u8]> {
        SubOptions(self.as_bytes()).find_map(|(c, v)| if c == code { v } else { None })
    }

    /// Sub-option 1, the agent circuit id (RFC 3046 §3.1).
    pub fn circuit_id(&self) -> Option<&[u8]> {
        self.sub_option(1)
    }

    /// Sub-option 2, the agent remote id (RFC 3046 §3.2).
    pub fn remote_id(&self) -> Option<&[u8]> {
        self.sub_option(2)
    }

    /// Sub-option 12, the relay id (RFC 6925).
    pub fn relay_id(&self) -> Option<&[u8]> {
        self.sub_option(12)
    }
}

/// The longest host name (option 12) a record keeps; a longer one is cut.
pub const MAX_HOSTNAME: usize = 48;

/// The host name (option 12, RFC 2132 §3.14) the client sent when it last got or renewed the
/// lease, for lookups by name: at most [`MAX_HOSTNAME`] bytes, and beside the relay info no
/// more than the [`MAX_RELAY_INFO`] bytes they share in the store ([`Hostname::keep`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hostname {
    len: u8,
    bytes: [u8; MAX_HOSTNAME],
}

impl Hostname {
    pub const EMPTY: Hostname = Hostname {
        len: 0,
        bytes: [0; MAX_HOSTNAME],
    };

    /// `name` as far as it fits in [`MAX_HOSTNAME`] bytes and beside `relay` (the store keeps
    /// both in [`MAX_RELAY_INFO`] bytes); trailing NULs (some clients send them) dropped.
    pub fn keep(name: &[u8], relay: &RelayInfo) -> Self {
        let room = MAX_HOSTNAME.min(MAX_RELAY_INFO - relay.as_bytes().len());
        let mut name = &name[..name.len().min(room)];
        while let Some(n) = name.strip_suffix(&[0]) {
            name = n;
        }
        Self::exact(name).unwrap_or_default()
    }

    /// `name` as it is (a stored one); `None` when longer than [`MAX_HOSTNAME`].
    pub fn exact(name: &[u8]) -> Option<Self> {
        if name.len() > MAX_HOSTNAME {
            return None;
        }
        let mut bytes = [0; MAX_HOSTNAME];
        bytes[..name.len()].copy_from_slice(name);
        Some(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Hostname {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl std::fmt::Debug for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Walks option 82 sub-options: `(code, Some(value))`, then `(code, None)` once if one
/// overruns the payload, and stops.
struct SubOptions<'a>(&'a [u8]);

impl<'a> Iterator for SubOptions<'a> {
    type Item = (u8, Option<&'a [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        let (&code, rest) = self.0.split_first()?;
        let Some((&len, rest)) = rest.split_first() else {
            self.0 = &[];
            return Some((code, None));
        };
        let Some((value, rest)) = rest.split_at_checked(usize::from(len)) else {
            self.0 = &[];
            return Some((code, None));
        };
        self.0 = rest;
        Some((code, Some(value)))
    }
}

impl Default for RelayInfo {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl std::fmt::Debug for RelayInfo {
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
    /// The relay agent information the lease was last granted through (empty when the
    /// client reached the server directly, or for a record written before it was kept).
    pub relay: RelayInfo,
    /// The host name the client last sent (empty if none).
    pub hostname: Hostname,
}

impl Lease {
    /// The key this lease's client is indexed by, if it has a client.
    pub fn client_key(&self) -> Option<ClientKey<'_>> {
        if !self.client_id.is_empty() {
            Some(ClientKey::ClientId(self.client_id.as_bytes()))
        } else if self.hlen > 0 {
            let n = usize::from(self.hlen.min(16));
            Some(ClientKey::HwAddr {
                htype: self.htype,
                chaddr: &self.chaddr[..n],
            })
        } else {
            None
        }
    }

    /// Whether this lease belongs to the client identified by `key`.
    pub fn is_for(&self, key: &ClientKey<'_>) -> bool {
        self.client_key().as_ref() == Some(key)
    }
}

impl BindingState {
    /// Whether a record in this state holds a client (and is found by
    /// `lease_mmap::Table::find_client`): anything but FREE and BACKUP.
    pub fn is_bound(self) -> bool {
        !matches!(self, Self::Free | Self::Backup)
    }
}

impl Owner {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Us),
            1 => Some(Self::Partner),
            _ => None,
        }
    }
}

/// Hash of a client key: the client index's probe start and tag (`FORMAT.md` §3.3).
#[doc(hidden)]
pub fn key_hash(key: &ClientKey<'_>) -> u32 {
    let h = match key {
        ClientKey::ClientId(id) => crc32c::crc32c_append(crc32c::crc32c(&[1]), id),
        ClientKey::HwAddr { htype, chaddr } => {
            crc32c::crc32c_append(crc32c::crc32c(&[2, *htype]), chaddr)
        }
    };
    // 0 is never a tag, so an index entry is never all zero.
    h.max(1)
}

/// The on-disk encodings (`lease-mmap/FORMAT.md` §3.2 and §5.2), for the store.
#[doc(hidden)]
pub mod disk {
    use super::{
        BindingState, ClientId, Hostname, Lease, MAX_CLIENT_ID, MAX_HOSTNAME, MAX_RELAY_INFO,
        Owner, RelayInfo,
    };
    use crate::UnixTime;

    /// Bytes of one record image; a slot holds a version word and two images.
    pub const IMAGE_LEN: usize = 124;
    pub const IMAGE_WORDS: usize = IMAGE_LEN / 4;
    /// Longest client id stored inside the image; longer ones go to an overflow block.
    pub const INLINE_ID: usize = 64;
    /// The largest record version: a slot's version word holds `version << 1 | WRITING`. An
    /// image or journal entry naming a later one was not written by us.
    pub const MAX_VERSION: u64 = u64::MAX >> 1;
    /// The common part of an image and a journal entry: state byte block, times, chaddr.
    pub const CORE_LEN: usize = 48;
    /// A lease as a journal entry carries it: core, the whole client id, the relay info, the
    /// host name.
    pub const LEASE_LEN: usize = CORE_LEN + MAX_CLIENT_ID + MAX_RELAY_INFO + MAX_HOSTNAME;
    /// Bytes of one relay cell: a table's relay file holds two per slot, one per image half.
    pub const RELAY_CELL_LEN: usize = 128;
    pub const RELAY_CELL_WORDS: usize = RELAY_CELL_LEN / 4;

    const FLAG_OVERFLOW: u8 = 1;

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn get32(b: &[u8], at: usize) -> u32 {
        let mut x = [0; 4];
        x.copy_from_slice(&b[at..at + 4]);
        u32::from_le_bytes(x)
    }

    pub fn get64(b: &[u8], at: usize) -> u64 {
        let mut x = [0; 8];
        x.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(x)
    }

    /// Core (48 bytes): state, owner, htype, hlen, client-id length, flags, relay info
    /// length, host name length; ends,
    /// tstp, tsfp, atsfp, cltt, stos (u32 LE each); chaddr (16).
    fn encode_core(l: &Lease, flags: u8, b: &mut [u8]) {
        b[0] = l.state as u8;
        b[1] = l.owner as u8;
        b[2] = l.htype;
        b[3] = l.hlen;
        b[4] = l.client_id.len;
        b[5] = flags;
        b[6] = l.relay.len;
        // As much of the host name as the store keeps beside the relay info.
        b[7] = l
            .hostname
            .len
            .min((MAX_RELAY_INFO - usize::from(l.relay.len)) as u8);
        for (i, t) in [l.ends, l.tstp, l.tsfp, l.atsfp, l.cltt, l.stos]
            .iter()
            .enumerate()
        {
            put32(b, 8 + 4 * i, t.0);
        }
        b[32..48].copy_from_slice(&l.chaddr);
    }

    /// Decode a core; `None` if a state or owner byte or a length is out of range. Returns
    /// the lease (client id, relay info and host name still empty), the client id length,
    /// the flags and the relay info and host name lengths.
    fn decode_core(b: &[u8]) -> Option<(Lease, u8, u8, [u8; 2])> {
        if usize::from(b[6]) > MAX_RELAY_INFO
            || usize::from(b[7]) > MAX_HOSTNAME
            || usize::from(b[6]) + usize::from(b[7]) > MAX_RELAY_INFO
        {
            return None;
        }
        let t = |i: usize| UnixTime(get32(b, 8 + 4 * i));
        let mut chaddr = [0; 16];
        chaddr.copy_from_slice(&b[32..48]);
        let lease = Lease {
            state: BindingState::from_u8(b[0])?,
            owner: Owner::from_u8(b[1])?,
            htype: b[2],
            hlen: b[3],
            ends: t(0),
            tstp: t(1),
            tsfp: t(2),
            atsfp: t(3),
            cltt: t(4),
            stos: t(5),
            chaddr,
            client_id: ClientId::EMPTY,
            relay: RelayInfo::EMPTY,
            hostname: Hostname::EMPTY,
        };
        Some((lease, b[4], b[5], [b[6], b[7]]))
    }

    /// Where a long client id lives: overflow block index and the id's CRC32C.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct OverflowRef {
        pub block: u32,
        pub crc: u32,
    }

    /// Image (124 bytes): version u64 LE (0..8); core (8..56); client id inline (56..120)
    /// or overflow block u32 + id CRC32C u32 (56..64); CRC32C of 0..120 (120..124).
    pub fn encode_image(version: u64, l: &Lease, overflow: Option<u32>) -> [u32; IMAGE_WORDS] {
        let mut b = [0u8; IMAGE_LEN];
        b[0..8].copy_from_slice(&version.to_le_bytes());
        let id = l.client_id.as_bytes();
        match overflow {
            Some(block) => {
                encode_core(l, FLAG_OVERFLOW, &mut b[8..56]);
                put32(&mut b, 56, block);
                put32(&mut b, 60, crc32c::crc32c(id));
            }
            None => {
                encode_core(l, 0, &mut b[8..56]);
                b[56..56 + id.len()].copy_from_slice(id);
            }
        }
        let crc = crc32c::crc32c(&b[..120]);
        put32(&mut b, 120, crc);
        to_words(&b)
    }

    pub fn to_words(b: &[u8; IMAGE_LEN]) -> [u32; IMAGE_WORDS] {
        let mut w = [0u32; IMAGE_WORDS];
        for (i, x) in w.iter_mut().enumerate() {
            *x = get32(b, 4 * i);
        }
        w
    }

    pub fn to_bytes(w: &[u32]) -> [u8; IMAGE_LEN] {
        let mut b = [0u8; IMAGE_LEN];
        for (i, x) in w.iter().take(IMAGE_WORDS).enumerate() {
            put32(&mut b, 4 * i, *x);
        }
        b
    }

    /// A decoded image: version, lease (client id filled in only if inline; relay info and
    /// host name never: they live in the relay cell), overflow ref, the lengths of the relay
    /// info and the host name.
    pub struct Image {
        pub version: u64,
        pub lease: Lease,
        pub overflow: Option<(OverflowRef, u8)>,
        pub extra_len: [u8; 2],
    }

    /// Decode and check an image. An all-zero image is the initial FREE record, version 0.
    pub fn decode_image(w: &[u32]) -> Option<Image> {
        if w.iter().all(|x| *x == 0) {
            return Some(Image {
                version: 0,
                lease: Lease::default(),
                overflow: None,
                extra_len: [0, 0],
            });
        }
        let b = to_bytes(w);
        if crc32c::crc32c(&b[..120]) != get32(&b, 120) {
            return None;
        }
        let (mut lease, id_len, flags, extra_len) = decode_core(&b[8..56])?;
        let overflow = if flags & FLAG_OVERFLOW != 0 {
            if usize::from(id_len) <= INLINE_ID {
                return None;
            }
            Some((
                OverflowRef {
                    block: get32(&b, 56),
                    crc: get32(&b, 60),
                },
                id_len,
            ))
        } else {
            if usize::from(id_len) > INLINE_ID {
                return None;
            }
            lease.client_id = ClientId::new(&b[56..56 + usize::from(id_len)])?;
            None
        };
        let version = get64(&b, 0);
        if version > MAX_VERSION {
            return None;
        }
        Some(Image {
            version,
            lease,
            overflow,
            extra_len,
        })
    }

    /// Relay cell (128 bytes): version u64 LE (0..8), length (8), the relay info then the
    /// host name (9..124, zero padded), CRC32C of 0..124 (124..128). Version `v`'s cell lives
    /// in half `v % 2`. A host name that does not fit beside the relay info is cut.
    pub fn encode_relay_cell(version: u64, r: &RelayInfo, h: &Hostname) -> [u32; RELAY_CELL_WORDS] {
        let mut b = [0u8; RELAY_CELL_LEN];
        b[0..8].copy_from_slice(&version.to_le_bytes());
        let (r, h) = (r.as_bytes(), h.as_bytes());
        let h = &h[..h.len().min(MAX_RELAY_INFO - r.len())];
        b[8] = (r.len() + h.len()) as u8;
        b[9..9 + r.len()].copy_from_slice(r);
        b[9 + r.len()..9 + r.len() + h.len()].copy_from_slice(h);
        let crc = crc32c::crc32c(&b[..124]);
        put32(&mut b, 124, crc);
        let mut w = [0u32; RELAY_CELL_WORDS];
        for (i, x) in w.iter_mut().enumerate() {
            *x = get32(&b, 4 * i);
        }
        w
    }

    /// The relay info and host name in a cell, if the cell is intact and holds them for
    /// `version` with the lengths `len` (an image's [`Image::extra_len`]).
    pub fn decode_relay_cell(
        w: &[u32],
        version: u64,
        len: [u8; 2],
    ) -> Option<(RelayInfo, Hostname)> {
        let mut b = [0u8; RELAY_CELL_LEN];
        for (i, x) in w.iter().take(RELAY_CELL_WORDS).enumerate() {
            put32(&mut b, 4 * i, *x);
        }
        let (r, h) = (usize::from(len[0]), usize::from(len[1]));
        if crc32c::crc32c(&b[..124]) != get32(&b, 124)
            || get64(&b, 0) != version
            || usize::from(b[8]) != r + h
            || r + h > MAX_RELAY_INFO
        {
            return None;
        }
        let relay = RelayInfo::new(&b[9..9 + r])?;
        Some((relay, Hostname::exact(&b[9 + r..9 + r + h])?))
    }

    /// The overflow block an image in raw words refers to, without checking its CRC (at run
    /// time, any image of a block's slot keeps the block from being reclaimed; on open, only
    /// an image valid with its block claims it).
    pub fn image_block(w: &[u32]) -> Option<u32> {
        let flags = w[3] >> 8 & 0xff; // byte 13 = flags
        (flags & u32::from(FLAG_OVERFLOW) != 0).then_some(w[14])
    }

    /// The binding state in an image's raw words (at least its first three), without
    /// checking the CRC: a table reads it under the slot's claim to keep its count of
    /// ABANDONED records, which open rebuilds from verified records. All zero is FREE.
    pub fn image_state(w: &[u32]) -> Option<BindingState> {
        BindingState::from_u8((w[2] & 0xff) as u8) // byte 8 = the core's state
    }

    /// A lease in a journal entry (466 bytes): core, the client id padded to 255, the relay
    /// info padded to 115, the host name padded to 48 (an entry written before they were kept
    /// has zeros there and zero lengths in its core).
    pub fn encode_lease(l: &Lease, b: &mut [u8]) {
        encode_core(l, 0, &mut b[..CORE_LEN]);
        let id = l.client_id.as_bytes();
        b[CORE_LEN..CORE_LEN + id.len()].copy_from_slice(id);
        b[CORE_LEN + id.len()..CORE_LEN + MAX_CLIENT_ID].fill(0);
        let relay = l.relay.as_bytes();
        let at = CORE_LEN + MAX_CLIENT_ID;
        b[at..at + relay.len()].copy_from_slice(relay);
        b[at + relay.len()..at + MAX_RELAY_INFO].fill(0);
        let name = &l.hostname.as_bytes()[..usize::from(b[7])];
        let at = at + MAX_RELAY_INFO;
        b[at..at + name.len()].copy_from_slice(name);
        b[at + name.len()..LEASE_LEN].fill(0);
    }

    pub fn decode_lease(b: &[u8]) -> Option<Lease> {
        let (mut lease, id_len, _, [relay_len, name_len]) = decode_core(b.get(..CORE_LEN)?)?;
        lease.client_id = ClientId::new(b.get(CORE_LEN..CORE_LEN + usize::from(id_len))?)?;
        let at = CORE_LEN + MAX_CLIENT_ID;
        lease.relay = RelayInfo::new(b.get(at..at + usize::from(relay_len))?)?;
        let at = at + MAX_RELAY_INFO;
        lease.hostname = Hostname::exact(b.get(at..at + usize::from(name_len))?)?;
        Some(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::disk::*;
    use super::*;

    fn sample(id_len: usize) -> Lease {
        let id: Vec<u8> = (0..id_len).map(|i| i as u8 ^ 0x5a).collect();
        Lease {
            state: BindingState::Active,
            ends: UnixTime(10),
            tstp: UnixTime(11),
            tsfp: UnixTime(12),
            atsfp: UnixTime(13),
            cltt: UnixTime(14),
            stos: UnixTime(15),
            htype: 1,
            hlen: 6,
            chaddr: [7; 16],
            client_id: ClientId::new(&id).unwrap(),
            owner: Owner::Partner,
            relay: RelayInfo::EMPTY,
            hostname: Hostname::EMPTY,
        }
    }

    #[test]
    fn relay_info_keeps_what_a_leasequery_asks_by() {
        // circuit-id "ge-0/0/1", remote-id 6 bytes, link selection.
        let opt = [
            1, 8, b'g', b'e', b'-', b'0', b'/', b'0', b'/', b'1', 2, 6, 0, 1, 2, 3, 4, 5, 5, 4, 10,
            0, 0, 0,
        ];
        let r = RelayInfo::keep(&opt);
        assert_eq!(r.as_bytes(), &opt);
        assert_eq!(r.circuit_id(), Some(&b"ge-0/0/1"[..]));
        assert_eq!(r.remote_id(), Some(&[0, 1, 2, 3, 4, 5][..]));
        assert_eq!(
            (r.relay_id(), r.sub_option(5)),
            (None, Some(&[10, 0, 0, 0][..]))
        );
        // Too long as a whole: a 120-byte vendor sub-option is dropped, the rest kept.
        let mut long = vec![9, 120];
        long.extend([7; 120]);
        long.extend([1, 2, b'c', b'1', 12, 4, 192, 0, 2, 1]);
        let r = RelayInfo::keep(&long);
        assert_eq!(r.as_bytes(), &[1, 2, b'c', b'1', 12, 4, 192, 0, 2, 1]);
        assert_eq!(r.relay_id(), Some(&[192, 0, 2, 1][..]));
        // Malformed (a sub-option overruns): nothing kept, never a panic.
        let mut bad = vec![1, 200];
        bad.extend([0; 130]);
        assert!(RelayInfo::keep(&bad).is_empty());
        assert_eq!(RelayInfo::new(&[1, 5, 1]).unwrap().circuit_id(), None);
        assert!(RelayInfo::new(&[0; 116]).is_none());
    }

    #[test]
    fn relay_cells_round_trip_and_check_version_and_length() {
        let r = RelayInfo::new(&[1, 2, 3, 4]).unwrap();
        let h = Hostname::keep(b"laptop-7\0", &r);
        assert_eq!(h.as_bytes(), b"laptop-7");
        let w = encode_relay_cell(7, &r, &h);
        assert_eq!(decode_relay_cell(&w, 7, [4, 8]), Some((r, h)));
        assert_eq!(decode_relay_cell(&w, 8, [4, 8]), None);
        assert_eq!(decode_relay_cell(&w, 7, [3, 8]), None);
        assert_eq!(decode_relay_cell(&w, 7, [4, 7]), None);
        let mut bad = w;
        bad[3] ^= 1;
        assert_eq!(decode_relay_cell(&bad, 7, [4, 8]), None);
        assert_eq!(decode_relay_cell(&[0; RELAY_CELL_WORDS], 0, [0, 0]), None);
        // A host name is cut to what fits beside the relay info, and to MAX_HOSTNAME.
        let full = RelayInfo::new(&[9; 100]).unwrap();
        assert_eq!(Hostname::keep(&[b'a'; 60], &full).as_bytes().len(), 15);
        assert_eq!(
            Hostname::keep(&[b'a'; 60], &RelayInfo::EMPTY)
                .as_bytes()
                .len(),
            48
        );
        // Every trailing NUL goes; a stored name comes back exactly as stored, NULs and all
        // (its length is the image's), never cut again.
        assert_eq!(Hostname::keep(b"a\0\0", &r).as_bytes(), b"a");
        let odd = Hostname::exact(b"ab\0").unwrap();
        let w = encode_relay_cell(9, &r, &odd);
        assert_eq!(decode_relay_cell(&w, 9, [4, 3]), Some((r, odd)));
        let l = Lease {
            relay: r,
            hostname: odd,
            ..sample(0)
        };
        let mut b = [0u8; LEASE_LEN];
        encode_lease(&l, &mut b);
        assert_eq!(decode_lease(&b), Some(l));
        assert!(Hostname::exact(&[1; 49]).is_none());
    }

    #[test]
    fn states_and_owners_round_trip() {
        for s in BindingState::ALL {
            assert_eq!(BindingState::from_u8(s as u8), Some(s));
            assert!(!s.name().is_empty());
        }
        assert_eq!(BindingState::from_u8(8), None);
        assert!(BindingState::Offered.is_bound() && !BindingState::Backup.is_bound());
        assert_eq!(Owner::from_u8(1), Some(Owner::Partner));
        assert_eq!(Owner::from_u8(2), None);
    }

    #[test]
    fn client_ids_and_keys() {
        assert!(ClientId::new(&[0; 256]).is_none());
        let id = ClientId::new(&[1, 2, 3]).unwrap();
        assert_eq!(id.as_bytes(), &[1, 2, 3]);
        assert!(!id.is_empty() && ClientId::default().is_empty());
        assert_eq!(format!("{id:?}"), "010203");
        let l = sample(3);
        assert_eq!(
            l.client_key(),
            Some(ClientKey::ClientId(&[0x5a, 0x5b, 0x58]))
        );
        let l = Lease {
            client_id: ClientId::EMPTY,
            hlen: 40,
            ..l
        };
        // hlen beyond 16 is clamped, never a panic.
        assert_eq!(
            l.client_key(),
            Some(ClientKey::HwAddr {
                htype: 1,
                chaddr: &[7; 16]
            })
        );
        assert!(l.is_for(&ClientKey::HwAddr {
            htype: 1,
            chaddr: &[7; 16]
        }));
        assert_eq!(Lease::default().client_key(), None);
        assert_ne!(
            key_hash(&ClientKey::ClientId(&[1, 2])),
            key_hash(&ClientKey::HwAddr {
                htype: 1,
                chaddr: &[2]
            })
        );
    }

    #[test]
    fn images_round_trip_and_detect_damage() {
        for len in [0, 1, 64] {
            let l = sample(len);
            let w = encode_image(9, &l, None);
            let img = decode_image(&w).unwrap();
            assert_eq!((img.version, img.lease), (9, l));
            assert!(img.overflow.is_none() && image_block(&w).is_none());
            for i in 0..IMAGE_WORDS {
                let mut bad = w;
                bad[i] ^= 1 << (i % 32);
                assert!(decode_image(&bad).is_none(), "flip in word {i} undetected");
            }
        }
        let l = sample(200);
        let w = encode_image(3, &l, Some(17));
        let img = decode_image(&w).unwrap();
        assert_eq!(img.overflow.map(|(r, n)| (r.block, n)), Some((17, 200)));
        assert!(img.lease.client_id.is_empty());
        assert_eq!(image_block(&w), Some(17));
        let zero = decode_image(&[0; IMAGE_WORDS]).unwrap();
        assert_eq!((zero.version, zero.lease), (0, Lease::default()));
        assert_eq!(image_state(&[0; IMAGE_WORDS]), Some(BindingState::Free));
        for state in BindingState::ALL {
            let w = encode_image(5, &Lease { state, ..sample(0) }, None);
            assert_eq!(image_state(&w), Some(state));
        }
    }

    #[test]
    fn journal_lease_encoding_round_trips() {
        for len in [0, 65, 255] {
            let relay = RelayInfo::new(&[2, 3, 1, 2, 3][..len.min(5)]).unwrap();
            let l = Lease {
                relay,
                hostname: Hostname::keep(&b"host-name"[..len.min(9)], &relay),
                ..sample(len)
            };
            let mut b = [0xffu8; LEASE_LEN];
            encode_lease(&l, &mut b);
            assert_eq!(decode_lease(&b), Some(l));
        }
        let mut b = [0u8; LEASE_LEN];
        b[0] = 9; // no such state
        assert_eq!(decode_lease(&b), None);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoders; whatever decodes re-encodes the same.
        #[test]
        fn decoders_never_panic(words in proptest::collection::vec(proptest::num::u32::ANY, IMAGE_WORDS),
                                bytes in proptest::collection::vec(proptest::num::u8::ANY, LEASE_LEN)) {
            if let Some(img) = decode_image(&words).filter(|i| i.overflow.is_none() && i.version != 0 && i.extra_len == [0, 0]) {
                proptest::prop_assert_eq!(encode_image(img.version, &img.lease, None).to_vec(), words.clone());
            }
            if let Some(l) = decode_lease(&bytes) {
                let mut again = [0u8; LEASE_LEN];
                encode_lease(&l, &mut again);
                proptest::prop_assert_eq!(decode_lease(&again), Some(l));
            }
        }
    }
}
