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

    /// Whether `other` is a single-segment handle on the same slot as this
    /// single-segment one.
    #[inline]
    fn same_slot(&self, other: &Msg) -> bool {
        self.nsegs() == 1
            && other.nsegs() == 1
            && self.pool == other.pool
            && self.slot() == other.slot()
    }

    /// Whether `next`'s window begins `gap` bytes after this one's ends, in
    /// the same slot (both single-segment handles of one pool).
    #[inline]
    pub fn precedes(&self, next: &Msg, gap: usize) -> bool {
        self.same_slot(next) && self.end() + gap == next.offset() as usize
    }

    /// A new handle on this single-segment message's window and the
    /// `before` bytes in front of it (one more count on the slot), when
    /// those start at the slot's claim mark: nothing in the span can be
    /// written any more, and a header can be put in front of it without
    /// a copy (see the module documentation). `None` otherwise. It grows
    /// over the windows behind it with [`Msg::extend_to`].
    pub fn span(&self, before: usize) -> Option<Msg> {
        if self.nsegs() != 1 || before > self.offset() as usize {
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
        Some(Msg::from_slot(self.pool, slot, head, self.end() as u32))
    }

    /// The slot's bytes from the end of this window to the end of
    /// `last`'s, which lies behind it in the same slot; `None` otherwise.
    /// Nobody can write them while both handles exist (see the module
    /// documentation).
    #[inline]
    pub fn behind(&self, last: &Msg) -> Option<&[u8]> {
        if !(self.same_slot(last) && last.offset() as usize >= self.end()) {
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
        if self.behind(last).is_none() {
            return false;
        }
        let grown = Msg::from_slot(self.pool, self.slot(), self.offset(), last.end() as u32);
        // The grown handle takes over this one's reference.
        std::mem::forget(std::mem::replace(self, grown));
        true
    }
}
