//! Windows cut from one buffer, framed again as a whole.
//!
//! An application that writes many small messages back to back into one
//! buffer and hands each on as a window (tutti's `Packer`) has already laid
//! out a packed frame: the bytes between the windows are the entries'
//! lengths. [`Msg::span`] makes one handle on the lot, so the frame goes
//! out as it lies instead of being copied message by message into
//! another buffer.
//!
//! Reading the bytes between and in front of the windows is safe because
//! nobody can write them any more: a slot's bytes are written by its only
//! handle (`reserve`, which needs the count to be one: we hold a second),
//! or in front of a window through `push`, which first claims the bytes
//! below the slot's claim mark and never above it. A span starts at that
//! mark, so every byte it covers is at or above it, and its own `push` of
//! a header in front is the next claim.

use std::sync::atomic::Ordering;

use super::Msg;

impl Msg {
    /// End of a single-segment handle's window in its slot.
    #[inline]
    fn end(&self) -> usize {
        self.offset() as usize + self.len()
    }

    /// Whether `next`'s window begins `gap` bytes after this one's ends, in
    /// the same slot (both single-segment handles of one pool).
    #[inline]
    pub fn precedes(&self, next: &Msg, gap: usize) -> bool {
        self.nsegs() == 1
            && next.nsegs() == 1
            && self.pool == next.pool
            && self.slot() == next.slot()
            && self.end() + gap == next.offset() as usize
    }

    /// A new handle on this message's slot from `before` bytes in front
    /// of its window to the end of `last`'s window (one more count on the
    /// slot). `None` unless both are single-segment handles on the same
    /// slot, `last`'s window does not end before this one's, and the span's
    /// first byte is the slot's claim mark: nothing in it can be written
    /// any more, and a header can be put in front of it without a copy
    /// (see the module documentation).
    pub fn span(&self, before: usize, last: &Msg) -> Option<Msg> {
        if self.nsegs() != 1
            || last.nsegs() != 1
            || self.pool != last.pool
            || self.slot() != last.slot()
            || last.end() < self.end()
            || before > self.offset() as usize
        {
            return None;
        }
        let slot = self.slot();
        let head = self.offset() - before as u32;
        // Acquire pairs with the claim's lowering in `push`, ordering the
        // bytes written there before our reads.
        if self.pool.meta(slot).claim.load(Ordering::Acquire) != head {
            return None;
        }
        // We hold a reference, so the slot stays; one more for the span.
        self.pool.retain(slot, 1);
        Some(Msg::from_slot(self.pool, slot, head, last.end() as u32))
    }

    /// Bytes `reserve` can still add to the message (in its last slot).
    pub fn room(&self) -> usize {
        let cfg = &self.pool.cfg;
        let limit = cfg.slot_size - cfg.tailroom;
        limit.saturating_sub(self.last_window().1) as usize
    }

    /// Whether `last` lies in this message's slot, its window ending at or
    /// after this one's end (both single-segment handles): what
    /// [`Msg::behind`] and [`Msg::extend_to`] need.
    #[inline]
    fn ahead(&self, last: &Msg) -> bool {
        self.nsegs() == 1
            && last.nsegs() == 1
            && self.pool == last.pool
            && self.slot() == last.slot()
            && last.offset() as usize >= self.end()
    }

    /// The slot's bytes from the end of this window to the end of
    /// `last`'s, which lies behind it in the same slot; `None` otherwise.
    /// Nobody can write them while both handles exist (see the module
    /// documentation).
    #[inline]
    pub fn behind(&self, last: &Msg) -> Option<&[u8]> {
        if !self.ahead(last) {
            return None;
        }
        let (from, to) = (self.end(), last.end());
        let p = self.pool.slot_ptr(self.slot());
        // SAFETY: [from, to) is inside the slot (`last`'s window ends in
        // it), which stays mapped while we hold a reference; no handle can
        // write those bytes while `last` and we hold two (`reserve` needs
        // the only one, and `push` writes below the claim mark, which is
        // at or below every handle's start).
        Some(unsafe { std::slice::from_raw_parts(p.add(from), to - from) })
    }

    /// Grows this window over the slot's bytes up to the end of `last`'s
    /// window, which lies behind it in the same slot: no count taken, no
    /// byte moved (see [`Msg::behind`]). False, unchanged, otherwise.
    #[inline]
    pub fn extend_to(&mut self, last: &Msg) -> bool {
        if !self.ahead(last) {
            return false;
        }
        let grown = Msg::from_slot(self.pool, self.slot(), self.offset(), last.end() as u32);
        // The grown handle takes over this one's reference.
        std::mem::forget(std::mem::replace(self, grown));
        true
    }
}
