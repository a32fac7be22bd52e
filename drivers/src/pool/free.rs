//! The free list: a lock-free LIFO stack of slot indices (Treiber stack).
//!
//! LIFO on purpose: the buffer freed last is the one taken next, so the
//! slots in use stay few and hot in cache, where a FIFO would walk the
//! whole region and miss on every message. The head packs the top index
//! with a generation tag that every successful update bumps, so a stale
//! compare-and-swap (the ABA problem) fails instead of corrupting the list.
//! Links live in a side array of atomics, so reading a link of a slot that
//! another thread just took is harmless: that thread's update changed the
//! tag and our CAS will fail.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const EMPTY: u32 = u32::MAX;

pub(crate) struct FreeList {
    /// (tag << 32) | top index.
    head: AtomicU64,
    links: Box<[AtomicU32]>,
}

#[inline]
fn pack(tag: u32, idx: u32) -> u64 {
    ((tag as u64) << 32) | idx as u64
}

#[inline]
fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

impl FreeList {
    /// A list holding every index below `n`, lowest on top.
    pub(crate) fn full(n: u32) -> FreeList {
        let links: Box<[AtomicU32]> = (0..n)
            .map(|i| AtomicU32::new(if i + 1 < n { i + 1 } else { EMPTY }))
            .collect();
        FreeList {
            head: AtomicU64::new(pack(0, if n > 0 { 0 } else { EMPTY })),
            links,
        }
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<u32> {
        // Acquire pairs with the Release of the push that put `top` there,
        // so its link (and the slot's last writes) are visible.
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let (tag, top) = unpack(cur);
            if top == EMPTY {
                return None;
            }
            let next = self.links[top as usize].load(Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                cur,
                pack(tag.wrapping_add(1), next),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(top),
                Err(now) => cur = now,
            }
        }
    }

    #[inline]
    pub(crate) fn push(&self, idx: u32) {
        let mut cur = self.head.load(Ordering::Relaxed);
        loop {
            let (tag, top) = unpack(cur);
            self.links[idx as usize].store(top, Ordering::Relaxed);
            // Release: the link above and the slot's contents are published
            // before the slot can be popped (pairs with pop's Acquire).
            match self.head.compare_exchange_weak(
                cur,
                pack(tag.wrapping_add(1), idx),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Pushes every index of `chain` at once (one compare-and-swap).
    #[inline]
    pub(crate) fn push_chain(&self, chain: &Chain) {
        if chain.len == 0 {
            return;
        }
        let mut cur = self.head.load(Ordering::Relaxed);
        loop {
            let (tag, top) = unpack(cur);
            self.links[chain.last as usize].store(top, Ordering::Relaxed);
            // Release, as `push`: the chain's links and the slots' contents
            // are published with the head.
            match self.head.compare_exchange_weak(
                cur,
                pack(tag.wrapping_add(1), chain.first),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Indices on the list, by walking it (tests only: no count is kept,
    /// which would cost two more atomic operations per slot's use).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let (_, mut at) = unpack(self.head.load(Ordering::Acquire));
        let mut n = 0;
        while at != EMPTY {
            n += 1;
            at = self.links[at as usize].load(Ordering::Relaxed);
        }
        n
    }
}

/// Free indices gathered to go onto a list together
/// ([`FreeList::push_chain`]): linked through the list's own links, which
/// nobody reads for an index that is not on the list.
#[derive(Debug)]
pub(crate) struct Chain {
    first: u32,
    last: u32,
    pub(crate) len: usize,
}

impl Chain {
    pub(crate) fn new() -> Chain {
        Chain {
            first: EMPTY,
            last: EMPTY,
            len: 0,
        }
    }

    /// Adds free index `idx` (linked through `list`'s links).
    #[inline]
    pub(crate) fn add(&mut self, list: &FreeList, idx: u32) {
        if self.len == 0 {
            self.last = idx;
        } else {
            list.links[idx as usize].store(self.first, Ordering::Relaxed);
        }
        self.first = idx;
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lifo_order_and_exhaustion() {
        let f = FreeList::full(3);
        assert_eq!(f.pop(), Some(0));
        assert_eq!(f.pop(), Some(1));
        f.push(0);
        assert_eq!(f.pop(), Some(0), "last freed is first taken");
        assert_eq!(f.pop(), Some(2));
        assert_eq!(f.pop(), None);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn threads_never_share_an_index() {
        let f = Arc::new(FreeList::full(64));
        let owned = Arc::new((0..64).map(|_| AtomicU32::new(0)).collect::<Vec<_>>());
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let (f, owned) = (f.clone(), owned.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(i) = f.pop() {
                            assert_eq!(owned[i as usize].fetch_add(1, Ordering::SeqCst), 0);
                            owned[i as usize].fetch_sub(1, Ordering::SeqCst);
                            f.push(i);
                        }
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(f.len(), 64);
        let mut seen: Vec<u32> = std::iter::from_fn(|| f.pop()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..64).collect::<Vec<_>>());
    }
}
