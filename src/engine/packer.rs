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

use tutti_drivers::Msg;

use crate::wire::fast::{self, Entries};

/// A frame being filled with casts in place; see the module
/// documentation. From [`crate::Core::packer`].
#[derive(Debug)]
pub struct Packer {
    frame: Msg,
    n: u32,
}

impl Packer {
    /// A packer writing into `frame`, an empty buffer with headroom for a
    /// frame header (a fresh one from a pool).
    pub fn new(frame: Msg) -> Packer {
        Packer { frame, n: 0 }
    }

    /// Room for one more cast of `len` bytes, to be written now: `None`
    /// when the frame has no room left for it (or `len` is over 65 535
    /// bytes, the most an entry holds). Bytes not written are zero or
    /// stale: write them all.
    pub fn cast(&mut self, len: usize) -> Option<&mut [u8]> {
        let l = u16::try_from(len).ok()?;
        // What `com` packs into one frame: the frame's header counts
        // against the buffer's capacity there, so here too (the same
        // casts make the same frames either way).
        if fast::ENTRY_LEN + len + fast::LEN > self.frame.room() {
            return None;
        }
        let b = self.frame.reserve(fast::ENTRY_LEN + len).ok()?;
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
        let Some(mut sh) = self.frame.share_bulk(self.n) else {
            return 0;
        };
        let mut n = 0;
        for e in Entries::new(self.frame.front()) {
            // Written by `cast` above: every entry parses and has its
            // handle.
            let Ok((off, len)) = e else {
                break;
            };
            let Some(w) = sh.window(off, len) else {
                break;
            };
            out.push_back(w);
            n += 1;
        }
        n
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
    }
}
