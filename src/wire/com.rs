//! The frame header that `com` puts in front of every frame.
//!
//! ```text
//!  0      2       3       4               8       10      12      14      16              20
//!  +------+-------+-------+---------------+-------+-------+-------+-------+---------------+
//!  |magic |version| flags |   group id    | stack |  src  |  dst  | rsvd  |  view ltime   |
//!  +------+-------+-------+---------------+-------+-------+-------+-------+---------------+
//! ```
//! flags bit 0: 0 = multicast, 1 = point-to-point; bit 1: membership
//! control outside any view (then bit 0 is clear, `src` and `dst` are
//! 0xFFFF and `view` is 0: the payload names the endpoints). The other
//! bits are reserved and must be zero, as must `rsvd`. `dst` is 0xFFFF on a
//! multicast. `stack` is a hash of the stack spec: members running
//! different stacks cannot understand each other's headers.

use super::{Reader, WireError, Writer};

/// "tu".
pub const MAGIC: u16 = 0x7475;
/// Wire version this build speaks.
/// 2: data casts lost the redundant tags of `stable`, `gms` and `xfer`,
/// and common-case casts go in the compact format (`wire::fast`).
pub const VERSION: u8 = 2;
/// Header length in bytes.
pub const LEN: usize = 20;
/// `dst` of a multicast.
pub const DST_ALL: u16 = 0xFFFF;

const FLAG_P2P: u8 = 1;
const FLAG_CTL: u8 = 2;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const GROUP: Range<usize> = 4..8;
    pub const STACK: Range<usize> = 8..10;
    pub const SRC: Range<usize> = 10..12;
    pub const DST: Range<usize> = 12..14;
    pub const RESERVED: Range<usize> = 14..16;
    pub const VIEW: Range<usize> = 16..20;
}

// The header layout is part of the wire contract: keep it fixed.
const _: () = assert!(field::VIEW.end == LEN);

/// A checked view of a frame header at the start of `T`.
#[derive(Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buf: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks length, magic, version and reserved bits; after this no
    /// accessor can fail.
    pub fn new_checked(buf: T) -> Result<Frame<T>, WireError> {
        let b = buf.as_ref();
        if b.len() < LEN {
            return Err(WireError::Truncated);
        }
        if be16(&b[field::MAGIC]) != MAGIC {
            return Err(WireError::BadMagic);
        }
        if b[field::VERSION] != VERSION {
            return Err(WireError::BadVersion);
        }
        if b[field::FLAGS] & !(FLAG_P2P | FLAG_CTL) != 0 || be16(&b[field::RESERVED]) != 0 {
            return Err(WireError::Reserved);
        }
        Ok(Frame { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Point-to-point (true) or multicast (false).
    pub fn is_p2p(&self) -> bool {
        self.b()[field::FLAGS] & FLAG_P2P != 0
    }

    /// Membership control outside any view.
    pub fn is_ctl(&self) -> bool {
        self.b()[field::FLAGS] & FLAG_CTL != 0
    }

    /// Group id.
    pub fn group(&self) -> u32 {
        be32(&self.b()[field::GROUP])
    }

    /// Stack id.
    pub fn stack(&self) -> u16 {
        be16(&self.b()[field::STACK])
    }

    /// Sender rank.
    pub fn src(&self) -> u16 {
        be16(&self.b()[field::SRC])
    }

    /// Destination rank, or [`DST_ALL`].
    pub fn dst(&self) -> u16 {
        be16(&self.b()[field::DST])
    }

    /// View logical time (low 32 bits).
    pub fn view(&self) -> u32 {
        be32(&self.b()[field::VIEW])
    }
}

/// A frame header as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComRepr {
    /// Point-to-point rather than multicast.
    pub p2p: bool,
    /// Membership control outside any view (`src`, `dst` are [`DST_ALL`],
    /// `view` is 0).
    pub ctl: bool,
    /// Group id.
    pub group: u32,
    /// Stack id.
    pub stack: u16,
    /// Sender rank.
    pub src: u16,
    /// Destination rank ([`DST_ALL`] for multicast).
    pub dst: u16,
    /// View logical time.
    pub view: u32,
}

impl ComRepr {
    /// Parses the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<ComRepr, WireError> {
        let f = Frame::new_checked(bytes)?;
        let r = ComRepr {
            p2p: f.is_p2p(),
            ctl: f.is_ctl(),
            group: f.group(),
            stack: f.stack(),
            src: f.src(),
            dst: f.dst(),
            view: f.view(),
        };
        if r.ctl {
            if r.p2p || r.src != DST_ALL || r.dst != DST_ALL || r.view != 0 {
                return Err(WireError::BadField("control frame with view fields"));
            }
            return Ok(r);
        }
        if r.p2p == (r.dst == DST_ALL) {
            return Err(WireError::BadField("destination does not match frame kind"));
        }
        if r.src == DST_ALL {
            return Err(WireError::BadField("source rank"));
        }
        Ok(r)
    }

    /// A control frame's header.
    pub fn control(group: u32, stack: u16) -> ComRepr {
        ComRepr {
            p2p: false,
            ctl: true,
            group,
            stack,
            src: DST_ALL,
            dst: DST_ALL,
            view: 0,
        }
    }

    /// Writes the header into `out`, which is exactly [`LEN`] bytes.
    pub fn emit(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        w.u16(MAGIC);
        w.u8(VERSION);
        w.u8(if self.p2p { FLAG_P2P } else { 0 } | if self.ctl { FLAG_CTL } else { 0 });
        w.u32(self.group);
        w.u16(self.stack);
        w.u16(self.src);
        w.u16(self.dst);
        w.u16(0);
        w.u32(self.view);
    }
}

/// Reads just the sender rank of a frame that passed [`Frame::new_checked`]
/// (used by drivers that demultiplex before the stack).
pub fn peek_src(bytes: &[u8]) -> Option<u16> {
    let mut r = Reader::new(bytes);
    r.bytes(field::SRC.start).ok()?;
    r.u16().ok()
}
