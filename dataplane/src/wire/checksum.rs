//! The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum.

use core::net::Ipv4Addr;

/// The one's complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with zero, RFC 1071 §4.1), folded to 16 bits but not complemented.
pub(crate) fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

/// Adds partial sums in one's complement arithmetic.
pub(crate) fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| u64::from(p)).sum())
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // `acc <= 0xffff` here, so the conversion cannot fail.
    u16::try_from(acc).unwrap_or(0xffff)
}

/// The sum of the IPv4 pseudo-header (RFC 768, "Fields"): source, destination, zero,
/// protocol, UDP length.
pub(crate) fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    combine(&[
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(protocol),
        length,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(sum(&[0xff]), 0xff00);
        assert_eq!(sum(&[]), 0);
    }
}
