//! Headers of the `nak` layer (reliable FIFO multicast and point-to-point).
//!
//! Every message passing through `nak` carries one of these, first byte the
//! type:
//!
//! | type | name    | fields (after the type byte)                         |
//! |------|---------|------------------------------------------------------|
//! | 0    | CAST    | seq u64                                              |
//! | 1    | SEND    | seq u64                                              |
//! | 2    | RAW     | (none: unsequenced message of a layer above)         |
//! | 3    | RETRANS | orig u16, seq u64 (a cast of `orig`, sent again)     |
//! | 4    | NAK     | stream u8, orig u16, n u8, then n × (from u64, to u64) |
//! | 5    | STATUS  | stream u8, next u64 (sender's next sequence number)  |
//! | 6    | ACK     | next u64 (point-to-point cumulative ack)             |
//! | 7    | LOST    | stream u8, orig u16, from u64, to u64                |
//!
//! Ranges are half-open `[from, to)`, ascending and disjoint.

use super::{Reader, WireError, Writer};

/// Most ranges one NAK may carry.
pub const MAX_RANGES: usize = 32;

const T_CAST: u8 = 0;
const T_SEND: u8 = 1;
const T_RAW: u8 = 2;
const T_RETRANS: u8 = 3;
const T_NAK: u8 = 4;
const T_STATUS: u8 = 5;
const T_ACK: u8 = 6;
const T_LOST: u8 = 7;

/// Which sequence space a control message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The multicasts of a sender.
    Cast,
    /// The point-to-point channel between two members.
    Send,
}

impl Stream {
    fn parse(b: u8) -> Result<Stream, WireError> {
        match b {
            0 => Ok(Stream::Cast),
            1 => Ok(Stream::Send),
            _ => Err(WireError::BadField("nak stream")),
        }
    }

    fn code(self) -> u8 {
        match self {
            Stream::Cast => 0,
            Stream::Send => 1,
        }
    }
}

/// A `nak` header as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NakHdr {
    /// Sequenced multicast.
    Cast {
        /// Sequence number.
        seq: u64,
    },
    /// Sequenced point-to-point message.
    Send {
        /// Sequence number.
        seq: u64,
    },
    /// Unsequenced message of a layer above.
    Raw,
    /// A multicast of `orig`, retransmitted point-to-point.
    Retrans {
        /// Original sender.
        orig: u16,
        /// Its sequence number.
        seq: u64,
    },
    /// Negative acknowledgement; `n` ranges follow (see [`parse_ranges`]).
    Nak {
        /// Sequence space.
        stream: Stream,
        /// Original sender of the missing messages.
        orig: u16,
        /// Number of ranges.
        n: u8,
    },
    /// Sender's next sequence number, for tail-loss detection.
    Status {
        /// Sequence space.
        stream: Stream,
        /// Next sequence number the sender will use.
        next: u64,
    },
    /// Cumulative acknowledgement of a point-to-point channel.
    Ack {
        /// Next sequence number the receiver expects.
        next: u64,
    },
    /// The requested messages are gone for good.
    Lost {
        /// Sequence space.
        stream: Stream,
        /// Original sender.
        orig: u16,
        /// First lost.
        from: u64,
        /// One past the last lost.
        to: u64,
    },
}

impl NakHdr {
    /// Encoded length (without NAK ranges).
    pub fn len(&self) -> usize {
        match self {
            NakHdr::Cast { .. } | NakHdr::Send { .. } | NakHdr::Ack { .. } => 9,
            NakHdr::Raw => 1,
            NakHdr::Retrans { .. } => 11,
            NakHdr::Nak { .. } => 5,
            NakHdr::Status { .. } => 10,
            NakHdr::Lost { .. } => 20,
        }
    }

    /// Never empty; here for clippy's `len` without `is_empty` lint.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses the header at the start of `bytes`; returns it and its length.
    pub fn parse(bytes: &[u8]) -> Result<(NakHdr, usize), WireError> {
        let mut r = Reader::new(bytes);
        let h = match r.u8()? {
            T_CAST => NakHdr::Cast { seq: r.u64()? },
            T_SEND => NakHdr::Send { seq: r.u64()? },
            T_RAW => NakHdr::Raw,
            T_RETRANS => NakHdr::Retrans {
                orig: r.u16()?,
                seq: r.u64()?,
            },
            T_NAK => {
                let stream = Stream::parse(r.u8()?)?;
                let orig = r.u16()?;
                let n = r.u8()?;
                if n == 0 || n as usize > MAX_RANGES {
                    return Err(WireError::BadField("nak range count"));
                }
                NakHdr::Nak { stream, orig, n }
            }
            T_STATUS => NakHdr::Status {
                stream: Stream::parse(r.u8()?)?,
                next: r.u64()?,
            },
            T_ACK => NakHdr::Ack { next: r.u64()? },
            T_LOST => {
                let stream = Stream::parse(r.u8()?)?;
                let orig = r.u16()?;
                let from = r.u64()?;
                let to = r.u64()?;
                if from >= to {
                    return Err(WireError::BadField("lost range"));
                }
                NakHdr::Lost {
                    stream,
                    orig,
                    from,
                    to,
                }
            }
            t => return Err(WireError::UnknownTag(t)),
        };
        Ok((h, r.pos()))
    }

    /// Writes the header into `out` (exactly [`NakHdr::len`] bytes).
    pub fn emit(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match *self {
            NakHdr::Cast { seq } => {
                w.u8(T_CAST);
                w.u64(seq);
            }
            NakHdr::Send { seq } => {
                w.u8(T_SEND);
                w.u64(seq);
            }
            NakHdr::Raw => w.u8(T_RAW),
            NakHdr::Retrans { orig, seq } => {
                w.u8(T_RETRANS);
                w.u16(orig);
                w.u64(seq);
            }
            NakHdr::Nak { stream, orig, n } => {
                w.u8(T_NAK);
                w.u8(stream.code());
                w.u16(orig);
                w.u8(n);
            }
            NakHdr::Status { stream, next } => {
                w.u8(T_STATUS);
                w.u8(stream.code());
                w.u64(next);
            }
            NakHdr::Ack { next } => {
                w.u8(T_ACK);
                w.u64(next);
            }
            NakHdr::Lost {
                stream,
                orig,
                from,
                to,
            } => {
                w.u8(T_LOST);
                w.u8(stream.code());
                w.u16(orig);
                w.u64(from);
                w.u64(to);
            }
        }
    }
}

/// Parses the `n` ranges that follow a NAK header; checks that each is
/// non-empty, that they ascend without overlap, and that nothing follows.
pub fn parse_ranges(body: &[u8], n: u8) -> Result<RangeList, WireError> {
    let mut r = Reader::new(body);
    let mut out = RangeList::default();
    let mut prev_end = 0u64;
    for i in 0..n as usize {
        let from = r.u64()?;
        let to = r.u64()?;
        if from >= to || (i > 0 && from < prev_end) {
            return Err(WireError::BadField("nak ranges"));
        }
        out.push(from, to);
        prev_end = to;
    }
    r.finish()?;
    Ok(out)
}

/// Encoded length of `n` ranges.
pub fn ranges_len(n: usize) -> usize {
    n * 16
}

/// Writes ranges into `out` (exactly [`ranges_len`] bytes).
pub fn emit_ranges(ranges: &RangeList, out: &mut [u8]) {
    let mut w = Writer::new(out);
    for &(from, to) in ranges.as_slice() {
        w.u64(from);
        w.u64(to);
    }
}

/// Up to [`MAX_RANGES`] half-open ranges, inline (no heap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeList {
    n: usize,
    r: [(u64, u64); MAX_RANGES],
}

impl RangeList {
    /// Adds a range; returns false when full.
    pub fn push(&mut self, from: u64, to: u64) -> bool {
        if self.n == MAX_RANGES {
            return false;
        }
        self.r[self.n] = (from, to);
        self.n += 1;
        true
    }

    /// The ranges.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.r[..self.n]
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether no more fit.
    pub fn is_full(&self) -> bool {
        self.n == MAX_RANGES
    }

    /// Keeps only the first `n` ranges.
    pub fn truncate(&mut self, n: usize) {
        self.n = self.n.min(n);
    }
}
