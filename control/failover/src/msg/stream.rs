//! The TCP stream framer: whole messages out of the peer link's byte stream.

use super::{MAX_MESSAGE_LEN, MIN_MESSAGE_LEN};

/// Why a byte stream cannot be framed. The link must be dropped (`failover.c:453-458`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message length {0} outside 12..=2048")]
    BadLength(u16),
}

/// Cuts the peer link's TCP byte stream into whole messages.
///
/// Feed it what the socket gave ([`StreamDecoder::feed`]) and call
/// [`StreamDecoder::next_frame`] until it returns `Ok(None)`. A frame is the whole message,
/// header included, ready for [`Repr::parse_bytes`]. After an error the decoder stays failed;
/// drop the link.
///
/// [`Repr::parse_bytes`]: super::Repr::parse_bytes
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out, removed on the next call.
    consumed: usize,
    failed: Option<FrameError>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes held that are not yet a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.compact();
        if let Some(e) = self.failed {
            return Err(e);
        }
        let Some(&[a, b]) = self.buf.get(0..2) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([a, b]);
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            self.failed = Some(FrameError::BadLength(len));
            self.buf.clear();
            return Err(FrameError::BadLength(len));
        }
        let n = usize::from(len);
        if self.buf.len() < n {
            return Ok(None);
        }
        self.consumed = n;
        Ok(self.buf.get(..n))
    }
}
