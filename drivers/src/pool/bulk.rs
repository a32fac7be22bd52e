//! References in bulk: one atomic operation on a slot's count for many
//! handles on it.
//!
//! A packed frame carries a few dozen messages; a receiver makes a window
//! on it for each (for the application) and keeps another for repair, and
//! later drops them all, one after the other. Counting each handle alone
//! costs an atomic read-modify-write per handle on the frame's slot, which
//! is most of what unpacking costs. [`Msg::share_bulk`] takes `n`
//! references with one addition and hands them out as windows; a
//! [`Releaser`] (or [`release_all`]) gives back a run of handles on the
//! same slot with one subtraction, and the slots that run frees go back
//! onto the free list as one chain, with one subtraction from the pool's
//! count of slots in use. The counts are the same as handle by handle, so
//! every other rule of the pool holds unchanged.

use super::free::Chain;
use super::msg::{release_n, PoolRef};
use super::Msg;

/// References on one single-segment message, taken together
/// ([`Msg::share_bulk`]), to be handed out as windows on it. Those not
/// handed out are given back when this drops.
pub struct Shares {
    pool: PoolRef,
    slot: u32,
    head: u32,
    tail: u32,
    left: u32,
}

// SAFETY: like a `Msg`, a `Shares` holds counted references on a slot
// and touches the pool only through atomics.
unsafe impl Send for Shares {}

impl Msg {
    /// Takes `n` more references on this message with one atomic
    /// operation; [`Shares::window`] turns them into handles. `None` for a
    /// message of several segments.
    #[inline]
    pub fn share_bulk(&self, n: u32) -> Option<Shares> {
        if self.nsegs() != 1 {
            return None;
        }
        let slot = self.slot();
        if n > 0 {
            // As `share`: we hold a reference, so the slot stays.
            self.pool.retain(slot, n);
        }
        let head = self.offset();
        Some(Shares {
            pool: self.pool,
            slot,
            head,
            tail: head + self.len() as u32,
            left: n,
        })
    }

    /// Whether `other` is a handle on the same bytes (same pool, slots and
    /// window).
    #[inline]
    pub fn same_window(&self, other: &Msg) -> bool {
        self.pool == other.pool
            && self.slot() == other.slot()
            && self.offset() == other.offset()
            && self.len() == other.len()
            && self.nsegs() == other.nsegs()
    }
}

impl Shares {
    /// A handle on bytes `[off, off + len)` of the message, using one of
    /// the references; `None` when none is left or the range is not in the
    /// message.
    #[inline]
    pub fn window(&mut self, off: usize, len: usize) -> Option<Msg> {
        let size = (self.tail - self.head) as usize;
        if self.left == 0 || off > size || len > size - off {
            return None;
        }
        self.left -= 1;
        let h = self.head + off as u32;
        Some(Msg::from_slot(self.pool, self.slot, h, h + len as u32))
    }

    /// References not handed out yet.
    pub fn left(&self) -> u32 {
        self.left
    }
}

impl Drop for Shares {
    fn drop(&mut self) {
        if self.left > 0 {
            release_n(self.pool, self.slot, self.left);
        }
    }
}

/// Drops every message of `msgs` through a [`Releaser`].
#[inline]
pub fn release_all<I: IntoIterator<Item = Msg>>(msgs: I) {
    let mut r = Releaser::new();
    for m in msgs {
        r.push(m);
    }
}

/// Drops messages handed to it one by one, giving back the references of
/// a run of consecutive single-segment handles on the same slot with one
/// atomic operation (windows on one packed frame come in such runs), and
/// putting the slots that became free back on their free list together,
/// with their counts on the pool (one operation each per run of slots of
/// one pool, where one at a time costs two per slot). Everything is given
/// back when it drops.
pub struct Releaser {
    run: Option<(PoolRef, u32, u32)>,
    freed: Freed,
}

// SAFETY: it holds references on slots, as a `Msg` does, and touches the
// pool only through atomics.
unsafe impl Send for Releaser {}

impl Default for Releaser {
    fn default() -> Self {
        Releaser::new()
    }
}

impl Releaser {
    /// Nothing to release yet.
    #[inline]
    pub fn new() -> Releaser {
        Releaser {
            run: None,
            freed: Freed::new(),
        }
    }

    /// Drops `m` (its reference is given back with its run's).
    #[inline]
    pub fn push(&mut self, m: Msg) {
        if m.nsegs() != 1 {
            drop(m);
            return;
        }
        let (pool, slot) = (m.pool, m.slot());
        // The handle's reference now counts in `run`; it is given back
        // below (a handle holds nothing else).
        std::mem::forget(m);
        match &mut self.run {
            Some((p, s, n)) if *p == pool && *s == slot => *n += 1,
            _ => {
                if let Some((p, s, n)) = self.run.replace((pool, slot, 1)) {
                    self.freed.release(p, s, n);
                }
            }
        }
    }
}

impl Drop for Releaser {
    #[inline]
    fn drop(&mut self) {
        if let Some((p, s, n)) = self.run.take() {
            self.freed.release(p, s, n);
        }
        self.freed.flush();
    }
}

/// Slots that lost their last references in a `Releaser`, not yet back
/// on their pool's free list; all of one pool.
struct Freed {
    pool: Option<PoolRef>,
    chain: Chain,
    /// Slots freed (local or foreign): their counts on the pool.
    n: usize,
}

impl Freed {
    fn new() -> Freed {
        Freed {
            pool: None,
            chain: Chain::new(),
            n: 0,
        }
    }

    /// Drops `n` references on `slot` of `pool`.
    #[inline]
    fn release(&mut self, pool: PoolRef, slot: u32, n: u32) {
        if self.pool != Some(pool) {
            self.flush();
            self.pool = Some(pool);
        }
        if pool.release(slot, n, &mut self.chain) {
            self.n += 1;
        }
    }

    /// Puts the gathered slots back and gives back their counts; after
    /// this the pool may be gone.
    fn flush(&mut self) {
        if let Some(p) = self.pool.take() {
            p.push_chain(&self.chain);
            self.chain = Chain::new();
            if self.n > 0 {
                // SAFETY: each of the `n` slots had its count since its
                // first reference and lost its last reference above (the
                // local ones are on the free list now); `p` is not used
                // again.
                unsafe { p.unhold(std::mem::take(&mut self.n)) };
            }
        }
    }
}

impl Drop for Freed {
    fn drop(&mut self) {
        self.flush();
    }
}
