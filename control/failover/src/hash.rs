//! RFC 3074 load balancing: the Pearson hash of a client and the hash bucket assignment.
//!
//! The key is the client identifier (DHCP option 61 data, type byte included) if the client
//! sent one, else `chaddr` for `hlen` bytes without htype (ISC `load_balance_mine`,
//! `failover.c:5958-6010`; Kea `query_filter.cc:460-474`). The bucket is
//! [`pearson`]`(key)`, 0..=255.
//!
//! The HBA is 256 bits, one per bucket. ISC's bit order, which we follow: bucket `b` is bit
//! `1 << (b & 7)` of byte `b >> 3` (least significant bit first, `failover.c:6004`), and a set
//! bit means the **primary** serves the bucket (`confpars.c:1094-1120`; the draft §12.11 says
//! the opposite, see `reference/failover-protocol.md` §2.3).

use super::Role;

/// RFC 3074 §6 mixing table (also ISC `loadb_mx_tbl`, `failover.c:5918-5946`).
pub const MIXING_TABLE: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, //
    31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, //
    59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179, 197, 65, //
    180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97, 16, //
    40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, //
    207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, //
    20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75, 27, 41, 245, //
    230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241, 73, 88, 105, //
    39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, //
    82, 163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, //
    195, 42, 106, 198, 118, 112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, //
    137, 185, 99, 164, 102, 147, 45, 66, 231, 52, 141, 211, 194, 206, 246, 238, //
    56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171, 72, 50, //
    33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, //
    96, 235, 136, 208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, //
    216, 131, 89, 21, 28, 133, 37, 153, 149, 80, 170, 68, 6, 169, 234, 151, //
];

/// The RFC 3074 hash: start with the key length (mod 256), then walk the key from the last
/// byte to the first, `h = T[h ^ byte]` (ISC `loadb_p_hash`, `failover.c:5948-5956`).
pub fn pearson(key: &[u8]) -> u8 {
    // The length is taken mod 256, as ISC's `unsigned char hash = len`.
    let mut h = u8::try_from(key.len() % 256).unwrap_or(0);
    for &b in key.iter().rev() {
        h = MIXING_TABLE[usize::from(h ^ b)];
    }
    h
}

/// The bucket of a DHCP client: hash of option 61's data if present (and non-empty), else of
/// the first `hlen` bytes of `chaddr` (at most 16).
pub fn client_bucket(client_id: Option<&[u8]>, chaddr: &[u8], hlen: u8) -> u8 {
    match client_id {
        Some(id) if !id.is_empty() => pearson(id),
        _ => {
            let n = usize::from(hlen).min(chaddr.len()).min(16);
            pearson(chaddr.get(..n).unwrap_or(&[]))
        }
    }
}

/// A 256-bit hash bucket assignment (draft §12.11), in ISC's bit order and meaning (a set
/// bit = the primary serves the bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hba(pub [u8; 32]);

impl Hba {
    /// No bucket for the primary (`split 0`: the secondary serves everyone).
    pub const NONE: Hba = Hba([0; 32]);
    /// Every bucket for the primary (`split 256`: hot standby with the primary active).
    pub const ALL: Hba = Hba([0xff; 32]);

    /// ISC's `split N`: the primary owns buckets `0..N`; `n` above 256 is read as 256.
    pub fn split(n: u16) -> Hba {
        let mut h = Hba::NONE;
        for b in 0..n.min(256) {
            // b < 256 so it fits a u8.
            h.set(u8::try_from(b).unwrap_or(u8::MAX), true);
        }
        h
    }

    /// From the option bytes; ISC accepts exactly 32 (`failover.c:586-591`).
    pub fn from_bytes(b: &[u8]) -> Option<Hba> {
        <[u8; 32]>::try_from(b).ok().map(Hba)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// How many of the 256 buckets the primary serves (`split N` gives N).
    pub fn primary_buckets(&self) -> u16 {
        self.0.iter().map(|b| b.count_ones() as u16).sum()
    }

    /// Whether the primary serves `bucket`.
    pub fn is_set(&self, bucket: u8) -> bool {
        self.0[usize::from(bucket >> 3)] & (1 << (bucket & 7)) != 0
    }

    pub fn set(&mut self, bucket: u8, primary: bool) {
        let byte = &mut self.0[usize::from(bucket >> 3)];
        if primary {
            *byte |= 1 << (bucket & 7);
        } else {
            *byte &= !(1 << (bucket & 7));
        }
    }

    /// Buckets the primary serves.
    pub fn count(&self) -> u16 {
        self.0
            .iter()
            .map(|b| u16::try_from(b.count_ones()).unwrap_or(0))
            .sum()
    }

    /// Whether `role` serves `bucket`.
    pub fn serves(&self, role: Role, bucket: u8) -> bool {
        match role {
            Role::Primary => self.is_set(bucket),
            Role::Secondary => !self.is_set(bucket),
        }
    }
}

/// Load-balancing settings of one relationship, as `load_balance_mine` uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadBalance {
    pub role: Role,
    /// `None` before the secondary has learned it from CONNECT: then nothing is ours.
    pub hba: Option<Hba>,
    /// `load balance max seconds`; 0 switches load balancing off (both answer).
    pub max_seconds: u16,
    /// ISC `check-secs-byte-order`: read a little-endian `secs` the right way round.
    pub check_secs_byte_order: bool,
}

impl LoadBalance {
    /// Whether this server answers a DISCOVER with the given `secs` (host order, as read
    /// big-endian from the packet) and client bucket (ISC `load_balance_mine`).
    pub fn mine(&self, secs: u16, bucket: u8) -> bool {
        let mut ec = secs;
        if self.check_secs_byte_order && ec > 255 && ec & 0xff == 0 {
            ec = ec.swap_bytes();
        }
        if self.max_seconds == 0 || self.max_seconds < ec {
            return true;
        }
        match self.hba {
            Some(h) => h.serves(self.role, bucket),
            None => false,
        }
    }
}
