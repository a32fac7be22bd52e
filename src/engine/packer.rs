//! Casts written in place into the frame that carries them: [`Packer`].
//!
//! A batch of small casts (`Core::cast_batch`) is packed into one frame:
//! each payload is copied from the application's buffer into a frame the
//! bottom layer (`com`) builds. A `Packer` turns that round: the
//! application writes each payload straight into a frame laid out as a
//! packed frame's entries (a 2-byte length, then the bytes), and
//! [`Packer::finish`] hands out one window per cast, counted with one
//! atomic operation. The windows are ordinary messages: cast as a batch,
//! they take every layer's path as any other casts, and where they reach
//! `com` still back to back, their frame goes out as it lies (see
//! `Msg::span`), with no buffer to take and no byte to copy per cast.
//! Where anything else happens to them (the window closes, a view
//! changes, a layer takes the full path), they are copied as any message
//! would be: nothing depends on the frame going out whole.
//!
//! Aeron's `tryClaim` is the same idea for a log buffer.

use std::collections::VecDeque;

use tutti_drivers::{Msg, Shares};

use crate::wire::fast::{self, Entries};

/// A frame being filled with casts in place; see the module
/// documentation. From [`crate::Core::packer`].
#[derive(Debug)]
pub struct Packer {
    frame: Msg,
    /// Bytes the frame held before the first cast (not casts).
    skip: usize,
    n: u32,
    /// Bytes entries may still take: what `com` packs into one frame (the
    /// frame's header counts against the buffer's capacity there, so here
    /// too: the same casts make the same frames either way).
    left: usize,
}

impl Packer {
    /// A packer writing into `frame`, a buffer with headroom for a frame
    /// header (a fresh one from a pool; casts go behind whatever it
    /// holds, which is not cast, and a buffer of several segments takes
    /// none).
    pub fn new(frame: Msg) -> Packer {
        let left = if frame.nsegs() == 1 {
            frame.room().saturating_sub(fast::LEN)
        } else {
            0
        };
        Packer {
            skip: frame.len(),
            frame,
            n: 0,
            left,
        }
    }

    /// Room for one more cast of `len` bytes, to be written now: `None`
    /// when the frame has no room left for it (or `len` is over 65 535
    /// bytes, the most an entry holds). Bytes not written are zero or
    /// stale: write them all.
    pub fn cast(&mut self, len: usize) -> Option<&mut [u8]> {
        let l = u16::try_from(len).ok()?;
        let add = fast::ENTRY_LEN + len;
        if add > self.left {
            return None;
        }
        let b = self.frame.reserve(add).ok()?;
        self.left -= add;
        let (head, body) = b.split_at_mut(fast::ENTRY_LEN);
        head.copy_from_slice(&l.to_be_bytes());
        self.n += 1;
        Some(body)
    }

    /// Casts written so far.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Whether no cast was written.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// One message per cast written, in order, onto the back of `out`
    /// (windows on the frame, which goes when the last of them does);
    /// returns how many. Cast them with `Core::cast_batch`.
    pub fn finish(self, out: &mut VecDeque<Msg>) -> usize {
        let before = out.len();
        out.extend(self.into_casts());
        out.len() - before
    }

    /// The casts written, in order, as [`Packer::finish`] hands them out.
    pub fn into_casts(self) -> Casts {
        Casts {
            shares: self.frame.share_bulk(self.n),
            at: self.skip,
            frame: self.frame,
        }
    }
}

/// The casts of a [`Packer`], one window each, in order
/// ([`Packer::into_casts`]).
pub struct Casts {
    /// One reference per cast, counted at once (`None`: none to hand out).
    shares: Option<Shares>,
    frame: Msg,
    /// Offset in the frame of the next cast's entry.
    at: usize,
}

impl Iterator for Casts {
    type Item = Msg;

    fn next(&mut self) -> Option<Msg> {
        let sh = self.shares.as_mut()?;
        let rest = self.frame.front().get(self.at..)?;
        // Written by `Packer::cast`: every entry parses.
        let (off, len) = Entries::new(rest).next()?.ok()?;
        let w = sh.window(self.at + off, len)?;
        self.at += off + len;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_drivers::{Pool, PoolConfig};

    #[test]
    fn casts_are_entries_and_come_out_as_windows_on_the_frame() {
        let pool = Pool::new(PoolConfig {
            slots: 2,
            slot_size: 256,
            headroom: 64,
            tailroom: 16,
        })
        .unwrap();
        let mut p = Packer::new(pool.alloc().unwrap());
        assert!(p.is_empty());
        assert!(p.cast(70_000).is_none(), "over an entry's 16 bits");
        p.cast(3).unwrap().copy_from_slice(b"abc");
        p.cast(0).unwrap();
        // 176 bytes of capacity, 8 of them the frame header's: 5 + 2 taken.
        let left = 176 - fast::LEN - 5 - 2;
        assert!(
            p.cast(left - fast::ENTRY_LEN + 1).is_none(),
            "one byte over"
        );
        p.cast(left - fast::ENTRY_LEN).unwrap().fill(7);
        assert!(p.cast(0).is_none(), "full");
        assert_eq!(p.len(), 3);
        let mut q = VecDeque::new();
        assert_eq!(p.finish(&mut q), 3);
        let lens: Vec<usize> = q.iter().map(Msg::len).collect();
        assert_eq!(lens, [3, 0, left - fast::ENTRY_LEN]);
        assert_eq!(q[0].front(), b"abc");
        assert!(q[2].front().iter().all(|b| *b == 7));
        assert!(q[0].precedes(&q[1], fast::ENTRY_LEN));
        assert_eq!(pool.free_slots(), 1, "the frame is held by its casts");
        q.clear();
        assert_eq!(pool.free_slots(), 2);
        // Behind what a buffer held: that is not cast.
        let mut m = pool.alloc().unwrap();
        m.reserve(3).unwrap().copy_from_slice(b"old");
        let mut p = Packer::new(m);
        p.cast(2).unwrap().copy_from_slice(b"hi");
        assert_eq!(p.finish(&mut q), 1);
        assert_eq!(q[0].front(), b"hi");
        // A chain takes none.
        q.clear();
        let mut m = pool.alloc().unwrap();
        m.append(&[1; 300]).unwrap();
        assert_eq!(m.nsegs(), 2);
        let mut p = Packer::new(m);
        assert!(p.cast(1).is_none());
        assert_eq!(p.finish(&mut q), 0);
    }
}
