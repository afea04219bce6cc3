//! The BOOTP vendor-extension / DHCP options area (RFC 2132 §2): a sequence of
//! `code, length, data` TLVs, except PAD (0) and END (255) which are one byte. RFC 3396
//! (long options) is handled one level up, in [`super::dhcpv4`]: here an option is one TLV.

use super::{Error, Result};

/// Pad option (RFC 2132 §3.1).
pub const PAD: u8 = 0;
/// End option (RFC 2132 §3.2).
pub const END: u8 = 255;
/// Largest payload of one TLV instance.
pub const MAX_INSTANCE_LEN: usize = 255;

/// One option instance, borrowing its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    /// Option code.
    pub kind: u8,
    /// Option data (without code and length).
    pub data: &'a [u8],
}

/// Iterates over the TLVs of an options area. PADs are skipped; iteration stops at END or at
/// the end of the area. A TLV that runs past the end yields one `Err(Error)`, then the
/// iterator is exhausted. Never panics.
#[derive(Clone, Debug)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// END seen.
    Ended,
    /// Ran out of bytes without END (allowed, RFC 2131 implementations do it).
    Exhausted,
    /// A truncated TLV.
    Failed,
}

impl<'a> OptionsIter<'a> {
    /// Iterates over `area`.
    pub const fn new(area: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter {
            rest: area,
            state: State::Running,
        }
    }

    /// Whether iteration stopped at an END option.
    pub fn saw_end(&self) -> bool {
        self.state == State::Ended
    }

    /// Walks the whole area and checks it is well formed: every TLV fits, and the area
    /// ends with END or exactly at its end.
    pub fn validate(area: &'a [u8]) -> Result<()> {
        OptionsIter::new(area).try_for_each(|o| o.map(|_| ()))
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<DhcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != State::Running {
            return None;
        }
        loop {
            match self.rest {
                [] => {
                    self.state = State::Exhausted;
                    return None;
                }
                [PAD, rest @ ..] => self.rest = rest,
                [END, ..] => {
                    self.state = State::Ended;
                    return None;
                }
                [kind, len, rest @ ..] if usize::from(*len) <= rest.len() => {
                    let (data, rest) = rest.split_at(usize::from(*len));
                    self.rest = rest;
                    return Some(Ok(DhcpOption { kind: *kind, data }));
                }
                _ => {
                    self.state = State::Failed;
                    self.rest = &[];
                    return Some(Err(Error));
                }
            }
        }
    }
}

/// Writes options into a buffer. One byte is always kept back for END, so [`finish`]
/// cannot fail for lack of space; every write that does not fit returns `Err(Error)` and
/// leaves what was written before intact.
///
/// [`finish`]: OptionWriter::finish
#[derive(Debug)]
pub struct OptionWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OptionWriter<'a> {
    /// Writes into `buf`, from its start.
    pub fn new(buf: &'a mut [u8]) -> OptionWriter<'a> {
        OptionWriter { buf, pos: 0 }
    }

    /// Bytes written so far (END excluded).
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Bytes `emit(kind, data)` takes: 2 + len per instance of at most 255 bytes (RFC 3396
    /// §5: longer data is split into several instances; empty data is one instance).
    pub const fn encoded_len(data_len: usize) -> usize {
        let instances = if data_len == 0 {
            1
        } else {
            data_len.div_ceil(MAX_INSTANCE_LEN)
        };
        instances * 2 + data_len
    }

    /// Writes option `kind` with `data`, split into several instances when longer than 255
    /// bytes (RFC 3396 §5). PAD and END cannot be written this way.
    pub fn emit(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        if kind == PAD || kind == END {
            return Err(Error);
        }
        let need = Self::encoded_len(data.len());
        // Keep one byte for END.
        if self.buf.is_empty() || self.pos + need > self.buf.len() - 1 {
            return Err(Error);
        }
        let mut chunks = data.chunks(MAX_INSTANCE_LEN);
        let mut write = |chunk: &[u8]| {
            self.buf[self.pos] = kind;
            // `chunk.len() <= 255` by construction.
            self.buf[self.pos + 1] = u8::try_from(chunk.len()).unwrap_or(u8::MAX);
            self.buf[self.pos + 2..self.pos + 2 + chunk.len()].copy_from_slice(chunk);
            self.pos += 2 + chunk.len();
        };
        match chunks.next() {
            None => write(&[]),
            Some(first) => {
                write(first);
                chunks.for_each(write);
            }
        }
        Ok(())
    }

    /// Writes END and returns the length of the area written, END included.
    pub fn finish(self) -> Result<usize> {
        let slot = self.buf.get_mut(self.pos).ok_or(Error)?;
        *slot = END;
        Ok(self.pos + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_pad_end_truncated() {
        let area = [0, 0, 53, 1, 1, 0, 12, 2, b'h', b'i', 255, 99, 99];
        let v: Vec<_> = OptionsIter::new(&area).collect();
        assert_eq!(
            v,
            vec![
                Ok(DhcpOption {
                    kind: 53,
                    data: &[1]
                }),
                Ok(DhcpOption {
                    kind: 12,
                    data: b"hi"
                })
            ]
        );
        let mut it = OptionsIter::new(&area);
        it.by_ref().for_each(drop);
        assert!(it.saw_end());
        assert_eq!(OptionsIter::validate(&[53, 1, 1]), Ok(()));
        assert_eq!(OptionsIter::validate(&[53, 2, 1]), Err(Error));
        assert_eq!(OptionsIter::validate(&[53]), Err(Error));
        let v: Vec<_> = OptionsIter::new(&[12, 5, 1]).collect();
        assert_eq!(v, vec![Err(Error)]);
    }

    #[test]
    fn writer_splits_and_runs_out() {
        let long = [7u8; 300];
        let mut buf = [0u8; 320];
        let mut w = OptionWriter::new(&mut buf);
        w.emit(12, &long).unwrap();
        assert_eq!(w.len(), 304);
        assert_eq!(w.emit(15, &[1; 20]), Err(Error));
        w.emit(15, &[1; 13]).unwrap();
        assert_eq!(w.emit(1, &[]), Err(Error));
        let n = w.finish().unwrap();
        assert_eq!(n, 320);
        assert_eq!(&buf[..2], &[12, 255]);
        assert_eq!(&buf[257..259], &[12, 45]);
        assert_eq!(buf[319], END);
        assert_eq!(OptionWriter::new(&mut []).finish(), Err(Error));
        assert_eq!(OptionWriter::new(&mut [0]).emit(1, &[]), Err(Error));
    }
}
