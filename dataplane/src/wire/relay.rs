//! The Relay Agent Information option, 82 (RFC 3046 §2.0): a sequence of
//! `sub-option code, length, data` TLVs, without PAD or END. The server echoes the whole
//! option unchanged in its reply (RFC 3046 §2.2); these views only read it, for the
//! sub-options that steer address selection.

use core::net::Ipv4Addr;

use super::{Error, Result};

/// Agent Circuit ID sub-option (RFC 3046 §3.1).
pub const CIRCUIT_ID: u8 = 1;
/// Agent Remote ID sub-option (RFC 3046 §3.2).
pub const REMOTE_ID: u8 = 2;
/// Link Selection sub-option (RFC 3527 §3): the subnet to select from instead of giaddr.
pub const LINK_SELECTION: u8 = 5;
/// Server Identifier Override sub-option (RFC 5107 §4).
pub const SERVER_ID_OVERRIDE: u8 = 11;

/// One sub-option, borrowing its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubOption<'a> {
    /// Sub-option code.
    pub kind: u8,
    /// Sub-option data.
    pub data: &'a [u8],
}

/// Iterates over the raw sub-options of an option 82 payload. A sub-option that runs past
/// the end yields one `Err(Error)`, then the iterator is exhausted. Never panics.
#[derive(Clone, Debug)]
pub struct SubOptions<'a> {
    rest: &'a [u8],
}

impl<'a> SubOptions<'a> {
    /// Iterates over `payload` (the data of option 82).
    pub const fn new(payload: &'a [u8]) -> SubOptions<'a> {
        SubOptions { rest: payload }
    }
}

impl<'a> Iterator for SubOptions<'a> {
    type Item = Result<SubOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rest {
            [] => None,
            [kind, len, rest @ ..] if usize::from(*len) <= rest.len() => {
                let (data, rest) = rest.split_at(usize::from(*len));
                self.rest = rest;
                Some(Ok(SubOption { kind: *kind, data }))
            }
            _ => {
                self.rest = &[];
                Some(Err(Error))
            }
        }
    }
}

/// The sub-options tandem understands, validated. Unknown sub-options are skipped; when a
/// sub-option repeats, the first instance wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayAgentInfo<'a> {
    /// Agent Circuit ID (1): the relay's name for the port the request came in on.
    pub circuit_id: Option<&'a [u8]>,
    /// Agent Remote ID (2): the relay's name for the remote end (e.g. a modem).
    pub remote_id: Option<&'a [u8]>,
    /// Link Selection (5, RFC 3527): the client's subnet when giaddr cannot say it.
    pub link_selection: Option<Ipv4Addr>,
    /// Server Identifier Override (11, RFC 5107): the address the client must use as the
    /// server identifier, so renewals reach the relay.
    pub server_id_override: Option<Ipv4Addr>,
}

impl<'a> RelayAgentInfo<'a> {
    /// Parses the data of option 82. Errors on a truncated sub-option, an empty circuit or
    /// remote ID (RFC 3046 §3.1, §3.2: at least one byte), and an address sub-option whose
    /// length is not 4.
    pub fn parse(payload: &'a [u8]) -> Result<RelayAgentInfo<'a>> {
        let mut info = RelayAgentInfo::default();
        for sub in SubOptions::new(payload) {
            let SubOption { kind, data } = sub?;
            match kind {
                CIRCUIT_ID | REMOTE_ID if data.is_empty() => return Err(Error),
                CIRCUIT_ID => {
                    info.circuit_id.get_or_insert(data);
                }
                REMOTE_ID => {
                    info.remote_id.get_or_insert(data);
                }
                LINK_SELECTION => {
                    let a = addr(data)?;
                    info.link_selection.get_or_insert(a);
                }
                SERVER_ID_OVERRIDE => {
                    let a = addr(data)?;
                    info.server_id_override.get_or_insert(a);
                }
                _ => {}
            }
        }
        Ok(info)
    }
}

fn addr(data: &[u8]) -> Result<Ipv4Addr> {
    match data {
        [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(Error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_all_four() {
        let p = [
            1, 3, b'e', b't', b'h', 2, 2, 0xaa, 0xbb, 9, 1, 0, 5, 4, 10, 0, 0, 0, 11, 4, 10, 0, 0,
            1,
        ];
        let info = RelayAgentInfo::parse(&p).unwrap();
        assert_eq!(info.circuit_id, Some(&b"eth"[..]));
        assert_eq!(info.remote_id, Some(&[0xaa, 0xbb][..]));
        assert_eq!(info.link_selection, Some(Ipv4Addr::new(10, 0, 0, 0)));
        assert_eq!(info.server_id_override, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(SubOptions::new(&p).count(), 5);
    }

    #[test]
    fn malformed() {
        assert_eq!(RelayAgentInfo::parse(&[1, 4, 1]), Err(Error));
        assert_eq!(RelayAgentInfo::parse(&[1]), Err(Error));
        assert_eq!(RelayAgentInfo::parse(&[5, 3, 1, 2, 3]), Err(Error));
        assert_eq!(RelayAgentInfo::parse(&[1, 0]), Err(Error));
        assert_eq!(RelayAgentInfo::parse(&[]), Ok(RelayAgentInfo::default()));
    }
}
