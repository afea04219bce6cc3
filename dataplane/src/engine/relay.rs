//! Option 82 sub-options the engine reads (RFC 3046 §3, RFC 3527 §3).
//!
//! A private, minimal reader until `wire::relay` lands; then this module should go and the
//! engine should call that one (one piece of code for both).

use std::net::Ipv4Addr;

/// Circuit-ID (RFC 3046 §3.1).
const CIRCUIT_ID: u8 = 1;
/// Remote-ID (RFC 3046 §3.2).
const REMOTE_ID: u8 = 2;
/// Link selection (RFC 3527 §3).
const LINK_SELECTION: u8 = 5;

/// The sub-options of one option 82 payload that matter to address assignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RelayInfo<'a> {
    pub circuit_id: Option<&'a [u8]>,
    pub remote_id: Option<&'a [u8]>,
    pub link_selection: Option<Ipv4Addr>,
}

impl<'a> RelayInfo<'a> {
    /// Read `payload` (the option's data). `None` when a sub-option overruns the payload or
    /// link selection is not four bytes. The first instance of a sub-option wins.
    pub(crate) fn parse(payload: &'a [u8]) -> Option<Self> {
        let mut info = RelayInfo::default();
        let mut rest = payload;
        while let [code, len, tail @ ..] = rest {
            let (data, next) = tail.split_at_checked(usize::from(*len))?;
            match *code {
                CIRCUIT_ID => {
                    info.circuit_id.get_or_insert(data);
                }
                REMOTE_ID => {
                    info.remote_id.get_or_insert(data);
                }
                LINK_SELECTION => {
                    let octets: [u8; 4] = data.try_into().ok()?;
                    info.link_selection.get_or_insert(Ipv4Addr::from(octets));
                }
                _ => {}
            }
            rest = next;
        }
        rest.is_empty().then_some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_sub_options() {
        let p = [
            1, 3, b'a', b'b', b'c', 9, 1, 0, 2, 2, 7, 8, 5, 4, 10, 1, 2, 0,
        ];
        let info = RelayInfo::parse(&p).unwrap();
        assert_eq!(info.circuit_id, Some(&b"abc"[..]));
        assert_eq!(info.remote_id, Some(&[7u8, 8][..]));
        assert_eq!(info.link_selection, Some(Ipv4Addr::new(10, 1, 2, 0)));
    }

    #[test]
    fn rejects_overruns_and_bad_link_selection() {
        assert_eq!(RelayInfo::parse(&[1, 5, 0]), None);
        assert_eq!(RelayInfo::parse(&[1]), None);
        assert_eq!(RelayInfo::parse(&[5, 3, 1, 2, 3]), None);
        assert_eq!(RelayInfo::parse(&[]), Some(RelayInfo::default()));
    }

    #[test]
    fn never_panics() {
        for n in 0u8..=255 {
            let p: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) % 7).collect();
            let _ = RelayInfo::parse(&p);
        }
    }
}
