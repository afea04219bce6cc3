//! Batched BNDUPD and BNDACK (see the module docs of [`super`]): several binding groups in
//! one message, each starting with assigned-IP-address.

use lease_record::UnixTime;

use super::options::{emit_option, ordered, parse_options, value_len};
use super::{
    HEADER_LEN, MAX_MESSAGE_LEN, MessageType, OptionIter, Options, ParseError, Repr, Value, opt,
};

impl<'a> Repr<'a> {
    /// Every binding the message carries: [`Repr::options`] when it has an assigned IP,
    /// then each group of [`Repr::more`]. A parsed message's groups were all checked by
    /// the parser; a group that does not parse ends the walk.
    pub fn bindings(&self) -> Bindings<'a> {
        Bindings {
            msg_type: self.msg_type,
            first: self.options.assigned_ip.is_some().then_some(self.options),
            rest: self.more,
        }
    }
}

/// Iterates the bindings of a BNDUPD or BNDACK ([`Repr::bindings`]).
#[derive(Clone, Debug)]
pub struct Bindings<'a> {
    msg_type: MessageType,
    first: Option<Options<'a>>,
    rest: &'a [u8],
}

impl<'a> Iterator for Bindings<'a> {
    type Item = Options<'a>;

    fn next(&mut self) -> Option<Options<'a>> {
        if let Some(o) = self.first.take() {
            return Some(o);
        }
        if self.rest.is_empty() {
            return None;
        }
        let end = next_group(self.rest, 1).unwrap_or(self.rest.len());
        let (group, rest) = self.rest.split_at(end);
        self.rest = rest;
        match parse_options(self.msg_type, group) {
            Ok(o) => Some(o),
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Byte offset in `payload` of the `nth` (0-based) option that starts a binding group
/// (assigned-IP-address), or `None`. Stops at a malformed option.
fn next_group(payload: &[u8], nth: usize) -> Option<usize> {
    let mut at = 0;
    let mut seen = 0;
    for o in OptionIter::new(payload) {
        let o = o.ok()?;
        if o.code == opt::ASSIGNED_IP_ADDRESS {
            if seen == nth {
                return Some(at);
            }
            seen += 1;
        }
        at += 4 + o.data.len();
    }
    None
}

/// Several bindings packed into one BNDUPD or BNDACK for a tandem peer: each binding's
/// options are encoded as they are pushed, until the message would pass 2048 bytes (room
/// is kept for a digest).
#[derive(Clone, Debug)]
pub struct BindingBatch {
    msg_type: MessageType,
    buf: Vec<u8>,
    count: usize,
    limit: usize,
}

/// Bytes a digest option takes (`00 11 00 21`, type, 32 bytes).
const DIGEST_OPTION_LEN: usize = 4 + 1 + 32;

impl BindingBatch {
    /// An empty BNDUPD or BNDACK batch.
    pub fn new(msg_type: MessageType) -> Self {
        Self {
            msg_type,
            buf: Vec::new(),
            count: 0,
            limit: usize::from(MAX_MESSAGE_LEN) - usize::from(HEADER_LEN) - DIGEST_OPTION_LEN,
        }
    }

    /// Bindings held.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one binding (the options of a single-binding [`Repr`]; it must have an assigned
    /// IP, and its digest is ignored). Returns false, adding nothing, when it has no assigned
    /// IP or the message would grow past 2048 bytes.
    pub fn push(&mut self, binding: &Options<'_>) -> bool {
        if binding.assigned_ip.is_none() {
            return false;
        }
        let len: usize = ordered(self.msg_type, binding)
            .map(|(_, v)| 4 + value_len(&v))
            .sum();
        if self.buf.len() + len > self.limit {
            return false;
        }
        let start = self.buf.len();
        self.buf.resize(start + len, 0);
        let mut at = start;
        for (code, v) in ordered(self.msg_type, binding) {
            match emit_option(&mut self.buf, at, code, v) {
                Ok(next) => at = next,
                Err(_) => {
                    self.buf.truncate(start);
                    return false;
                }
            }
        }
        self.count += 1;
        true
    }

    /// The message: every binding in [`Repr::more`] (the first group too), ready for
    /// [`Repr::emit`] or the state machine's `send`.
    pub fn repr(&self, time: UnixTime, xid: u32) -> Repr<'_> {
        let mut r = Repr::new(self.msg_type, time, xid);
        r.more = &self.buf;
        r
    }

    /// Empties the batch for the next message.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}

/// A BNDUPD or BNDACK payload: the first binding group (with a digest that ends the
/// message) as the options, the other groups, each checked, as the `more` bytes.
pub(super) fn parse_batch(
    msg_type: MessageType,
    payload: &[u8],
) -> Result<(Options<'_>, &[u8]), ParseError> {
    // Where the digest starts, when it is the last option.
    let mut digest_at = None;
    let mut at = 0;
    for o in OptionIter::new(payload) {
        let o = o?;
        digest_at = (o.code == opt::MESSAGE_DIGEST).then_some(at);
        at += 4 + o.data.len();
    }
    let (body, digest) = payload.split_at(digest_at.unwrap_or(payload.len()));
    let Some(second) = next_group(body, 1) else {
        return Ok((parse_options(msg_type, payload)?, &[]));
    };
    let (first, more) = body.split_at(second);
    let mut options = parse_options(msg_type, first)?;
    if let Some(o) = OptionIter::new(digest).next() {
        let o = o?;
        if !options.set(o.code, Value::Bytes(o.data)) {
            return Err(ParseError::DuplicateOption(o.code));
        }
    }
    let mut rest = more;
    while !rest.is_empty() {
        let end = next_group(rest, 1).unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        parse_options(msg_type, group)?;
        rest = tail;
    }
    Ok((options, more))
}
