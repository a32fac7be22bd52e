//! The compact frame: header compression for the common case (the Protocol
//! Accelerator's wire format).
//!
//! A data cast in an installed view whose every layer header is that
//! layer's common case goes out as
//!
//! ```text
//!  0          4                8
//!  +----------+----------------+---------
//!  |  cookie  | kind:2 | seq:30| payload
//!  +----------+----------------+---------
//! ```
//!
//! Eight bytes instead of the 20-byte `com` header plus every layer's
//! header. The cookie stands for everything constant in a view: group,
//! stack, view and sender. Every member derives the cookies of a view from
//! what the view's installation told it ([`cookie`]), so a cookie is known
//! to all members from the moment the view is installed and no table is
//! exchanged. A cookie never starts with the `com` magic, so the first two
//! bytes tell the formats apart. The per-message field is bit-packed: two
//! bits of kind and 30 bits of the sender's cast sequence number (a cast
//! numbered 2^30 or more in one view goes in the full format).
//!
//! The layers' other header fields are implied: a compact frame stands for
//! `nak` CAST `seq` followed by the tag bytes each layer above `nak` puts on
//! a data cast in its common case (the stack's *template*).
//!
//! Kind 1 is a packed frame: after the 8 bytes, one or more entries
//! `len:u16, payload[len]` filling the frame exactly; entry `i` is the
//! cast numbered `seq + i`. Kinds 2 and 3 are reserved.

use super::{com, WireError};
use crate::event::{fnv1a, Rank, FNV_OFFSET};

/// Compact header length.
pub const LEN: usize = 8;
/// Per-entry overhead in a packed frame.
pub const ENTRY_LEN: usize = 2;
/// Casts numbered at or above this go in the full format.
pub const SEQ_LIMIT: u64 = 1 << 30;

const KIND_ONE: u32 = 0;
const KIND_PACKED: u32 = 1;

/// The cookie of `sender`'s frames in the view tagged `view` of `group`
/// running stack `stack`.
pub fn cookie(group: u32, stack: u16, view: u32, sender: Rank) -> u32 {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&group.to_be_bytes());
    b[4..6].copy_from_slice(&stack.to_be_bytes());
    b[6..10].copy_from_slice(&view.to_be_bytes());
    b[10..12].copy_from_slice(&sender.to_be_bytes());
    let h = fnv1a(FNV_OFFSET, &b);
    let c = (h ^ (h >> 32)) as u32;
    if (c >> 16) as u16 == com::MAGIC {
        c ^ 0x8000_0000
    } else {
        c
    }
}

/// Whether `frame` is in the compact format (it does not start with the
/// `com` magic). Says nothing of whether it is well formed.
#[inline]
pub fn is_compact(frame: &[u8]) -> bool {
    frame.len() >= 2 && frame[..2] != com::MAGIC.to_be_bytes()
}

/// A compact header as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compact {
    /// The sender's cookie.
    pub cookie: u32,
    /// Sequence number of the (first) cast.
    pub seq: u64,
    /// Entries follow (a packed frame).
    pub packed: bool,
}

impl Compact {
    /// Parses the first [`LEN`] bytes; for a packed frame, checks that
    /// the entries fill the frame exactly.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<Compact, WireError> {
        let Some(h) = frame.get(..LEN) else {
            return Err(WireError::Truncated);
        };
        let cookie = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let w = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let packed = match w >> 30 {
            KIND_ONE => false,
            KIND_PACKED => true,
            _ => return Err(WireError::Reserved),
        };
        let c = Compact {
            cookie,
            seq: (w & (SEQ_LIMIT as u32 - 1)) as u64,
            packed,
        };
        if packed {
            let mut n = 0u64;
            for e in Entries::new(&frame[LEN..]) {
                e?;
                n += 1;
            }
            if n == 0 {
                return Err(WireError::Truncated);
            }
            if c.seq + n > SEQ_LIMIT {
                return Err(WireError::BadField("packed sequence numbers"));
            }
        }
        Ok(c)
    }

    /// Writes the header into `out` (exactly [`LEN`] bytes). `seq` must be
    /// below [`SEQ_LIMIT`].
    pub fn emit(&self, out: &mut [u8]) {
        debug_assert!(self.seq < SEQ_LIMIT);
        let kind = if self.packed { KIND_PACKED } else { KIND_ONE };
        out[0..4].copy_from_slice(&self.cookie.to_be_bytes());
        let w = (kind << 30) | (self.seq as u32 & (SEQ_LIMIT as u32 - 1));
        out[4..8].copy_from_slice(&w.to_be_bytes());
    }
}

/// The entries of a packed frame's body: (offset of the payload in the
/// body, payload length).
#[derive(Clone)]
pub struct Entries<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Entries<'a> {
    /// Entries of `body` (the frame after its compact header).
    pub fn new(body: &'a [u8]) -> Entries<'a> {
        Entries { body, at: 0 }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<(usize, usize), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.body.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let Some(l) = rest.get(..ENTRY_LEN) else {
            self.at = self.body.len();
            return Some(Err(WireError::Truncated));
        };
        let len = u16::from_be_bytes([l[0], l[1]]) as usize;
        let off = self.at + ENTRY_LEN;
        if off + len > self.body.len() {
            self.at = self.body.len();
            return Some(Err(WireError::Truncated));
        }
        self.at = off + len;
        Some(Ok((off, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_never_look_like_the_magic_and_differ_by_field() {
        let mut seen = std::collections::HashSet::new();
        for v in 0..64u32 {
            for r in 0..16 {
                let c = cookie(7, 3, v.wrapping_mul(0x9e37_79b9), r);
                assert!(is_compact(&c.to_be_bytes()));
                seen.insert(c);
            }
        }
        assert_eq!(seen.len(), 64 * 16);
        assert_ne!(cookie(1, 2, 3, 4), cookie(2, 2, 3, 4));
        assert_ne!(cookie(1, 2, 3, 4), cookie(1, 3, 3, 4));
    }

    #[test]
    fn header_round_trips_and_rejects_reserved_kinds() {
        let c = Compact {
            cookie: 0x1234_5678,
            seq: SEQ_LIMIT - 1,
            packed: false,
        };
        let mut b = [0u8; LEN];
        c.emit(&mut b);
        assert_eq!(Compact::parse(&b), Ok(c));
        b[4] |= 0x80;
        assert_eq!(Compact::parse(&b), Err(WireError::Reserved));
        assert_eq!(Compact::parse(&b[..7]), Err(WireError::Truncated));
    }

    #[test]
    fn packed_entries_must_fill_the_frame() {
        let c = Compact {
            cookie: 1,
            seq: 5,
            packed: true,
        };
        let mut f = vec![0u8; LEN];
        c.emit(&mut f);
        assert_eq!(Compact::parse(&f), Err(WireError::Truncated));
        f.extend_from_slice(&[0, 3, b'a', b'b', b'c', 0, 0]);
        assert_eq!(Compact::parse(&f), Ok(c));
        let e: Vec<_> = Entries::new(&f[LEN..]).collect();
        assert_eq!(e, vec![Ok((2, 3)), Ok((7, 0))]);
        f.push(9);
        assert_eq!(Compact::parse(&f), Err(WireError::Truncated));
        f.pop();
        f[LEN + 1] = 9;
        assert_eq!(Compact::parse(&f), Err(WireError::Truncated));
    }
}
