//! Header of the `frag` layer.
//!
//! | type | name   | fields                          |
//! |------|--------|---------------------------------|
//! | 0    | WHOLE  | (none: an unfragmented message) |
//! | 1    | FIRST  | total u64 (whole message bytes) |
//! | 2    | MIDDLE | (none)                          |
//! | 3    | LAST   | (none)                          |
//!
//! Fragments of one message follow each other on a reliable FIFO stream,
//! so they need no message id: FIRST opens a reassembly, LAST closes it.

use super::{Reader, WireError, Writer};

/// A `frag` header as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragHdr {
    /// Not fragmented.
    Whole,
    /// First fragment of a message of `total` bytes.
    First {
        /// Bytes of the whole message.
        total: u64,
    },
    /// A fragment between the first and the last.
    Middle,
    /// Last fragment.
    Last,
}

impl FragHdr {
    /// Encoded length.
    pub fn len(&self) -> usize {
        match self {
            FragHdr::First { .. } => 9,
            _ => 1,
        }
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses the header at the start of `bytes`; returns it and its length.
    pub fn parse(bytes: &[u8]) -> Result<(FragHdr, usize), WireError> {
        let mut r = Reader::new(bytes);
        let h = match r.u8()? {
            0 => FragHdr::Whole,
            1 => FragHdr::First { total: r.u64()? },
            2 => FragHdr::Middle,
            3 => FragHdr::Last,
            t => return Err(WireError::UnknownTag(t)),
        };
        Ok((h, r.pos()))
    }

    /// Writes the header into `out` (exactly [`FragHdr::len`] bytes).
    pub fn emit(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match *self {
            FragHdr::Whole => w.u8(0),
            FragHdr::First { total } => {
                w.u8(1);
                w.u64(total);
            }
            FragHdr::Middle => w.u8(2),
            FragHdr::Last => w.u8(3),
        }
    }
}
