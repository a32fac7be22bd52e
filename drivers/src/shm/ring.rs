//! A bounded multi-producer, single-consumer ring of fixed-size records
//! in shared memory (Vyukov's bounded queue with a sequence number per
//! cell). Producers in any process claim a cell by compare-and-swap on the
//! tail, fill it, and publish it by storing the cell's sequence number;
//! the one consumer reads published cells in order.
//!
//! Only plain data lives here: `#[repr(C)]` atomics, no pointers. The
//! ring is a view (`Ring`) over memory that a mapping keeps alive; the
//! owner of that mapping guarantees the memory outlives the view.

use std::sync::atomic::{AtomicU64, Ordering};

/// One record: three 64-bit words.
pub type Record = [u64; 3];

/// Ring header, one cache line per index so producers and the consumer do
/// not false-share.
#[repr(C)]
pub struct RingHeader {
    tail: AtomicU64,
    _pad0: [u64; 7],
    head: AtomicU64,
    _pad1: [u64; 7],
    cap: AtomicU64,
    _pad2: [u64; 7],
}

#[repr(C)]
struct Cell {
    seq: AtomicU64,
    w: [AtomicU64; 3],
}

/// Bytes a ring of `cap` cells occupies.
pub const fn ring_bytes(cap: u64) -> u64 {
    std::mem::size_of::<RingHeader>() as u64 + cap * std::mem::size_of::<Cell>() as u64
}

/// A view of a ring in shared memory.
#[derive(Clone, Copy)]
pub struct Ring {
    hdr: *const RingHeader,
    cells: *const Cell,
    mask: u64,
}

// SAFETY: a Ring only reaches its memory through atomics, which are safe to
// use from any thread (and any process); the mapping's owner keeps the
// memory alive for the view's lifetime (see `Ring::at`).
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Formats a fresh ring of `cap` cells (a power of two) at `base`.
    ///
    /// # Safety
    /// `base` must point to `ring_bytes(cap)` writable bytes, 64-byte
    /// aligned, that nobody else uses yet and that outlive every view.
    pub unsafe fn init(base: *mut u8, cap: u64) -> Ring {
        debug_assert!(cap.is_power_of_two());
        let hdr = base as *mut RingHeader;
        // SAFETY: the caller gives us exclusive, aligned, large enough memory.
        unsafe {
            (*hdr).tail.store(0, Ordering::Relaxed);
            (*hdr).head.store(0, Ordering::Relaxed);
            (*hdr).cap.store(cap, Ordering::Relaxed);
            let cells = base.add(std::mem::size_of::<RingHeader>()) as *mut Cell;
            for i in 0..cap {
                (*cells.add(i as usize)).seq.store(i, Ordering::Relaxed);
            }
            Ring::at(base, cap)
        }
    }

    /// A view of a ring formatted by `init` at `base` with `cap` cells.
    ///
    /// # Safety
    /// `base` must point to `ring_bytes(cap)` bytes of a live mapping,
    /// 64-byte aligned, holding a ring formatted with this `cap`, and the
    /// mapping must outlive the view and every copy of it.
    pub unsafe fn at(base: *mut u8, cap: u64) -> Ring {
        Ring {
            hdr: base as *const RingHeader,
            // SAFETY: inside the caller's region.
            cells: unsafe { base.add(std::mem::size_of::<RingHeader>()) } as *const Cell,
            mask: cap - 1,
        }
    }

    fn hdr(&self) -> &RingHeader {
        // SAFETY: valid for the view's lifetime (constructor contract).
        unsafe { &*self.hdr }
    }

    fn cell(&self, pos: u64) -> &Cell {
        // SAFETY: masked index < cap; memory valid (constructor contract).
        unsafe { &*self.cells.add((pos & self.mask) as usize) }
    }

    /// Appends a record; false when the ring is full.
    pub fn push(&self, r: Record) -> bool {
        let tail = &self.hdr().tail;
        let mut pos = tail.load(Ordering::Relaxed);
        loop {
            let cell = self.cell(pos);
            // Acquire pairs with the consumer's Release when it freed the cell.
            let seq = cell.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as i64;
            if diff == 0 {
                match tail.compare_exchange_weak(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => {
                        for (w, v) in cell.w.iter().zip(r) {
                            w.store(v, Ordering::Relaxed);
                        }
                        // Release: the record (and the frame it describes)
                        // is visible before the cell reads as published.
                        cell.seq.store(pos + 1, Ordering::Release);
                        return true;
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                return false;
            } else {
                pos = tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the next record, if one is published. Single consumer only.
    pub fn pop(&self) -> Option<Record> {
        let head = &self.hdr().head;
        let pos = head.load(Ordering::Relaxed);
        let cell = self.cell(pos);
        // Acquire pairs with the producer's Release publish.
        if cell.seq.load(Ordering::Acquire) != pos + 1 {
            return None;
        }
        let mut r = [0u64; 3];
        for (v, w) in r.iter_mut().zip(cell.w.iter()) {
            *v = w.load(Ordering::Relaxed);
        }
        // Release: we are done reading before producers may reuse the cell.
        cell.seq.store(pos + self.mask + 1, Ordering::Release);
        head.store(pos + 1, Ordering::Relaxed);
        Some(r)
    }

    /// Whether a published record is waiting.
    pub fn ready(&self) -> bool {
        let pos = self.hdr().head.load(Ordering::Relaxed);
        self.cell(pos).seq.load(Ordering::Acquire) == pos + 1
    }

    /// A producer has claimed the head cell but not published it yet
    /// (slow, or dead between claim and publish).
    pub fn stalled(&self) -> bool {
        let h = self.hdr();
        let pos = h.head.load(Ordering::Relaxed);
        h.tail.load(Ordering::Relaxed) > pos && !self.ready()
    }

    /// Skips a head cell whose producer died before publishing it. Only
    /// call when `stalled()` and that producer is known dead: a live slow
    /// producer would later publish into a cell already passed.
    pub fn skip_stalled(&self) {
        let pos = self.hdr().head.load(Ordering::Relaxed);
        self.cell(pos)
            .seq
            .store(pos + self.mask + 1, Ordering::Release);
        self.hdr().head.store(pos + 1, Ordering::Relaxed);
    }

    /// Records waiting or being written.
    pub fn len(&self) -> u64 {
        let h = self.hdr();
        h.tail
            .load(Ordering::Relaxed)
            .saturating_sub(h.head.load(Ordering::Relaxed))
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity recorded in the ring's header (untrusted for a peer's ring:
    /// compare with the layout before use).
    pub fn cap_in_header(base: *const u8) -> u64 {
        // SAFETY: callers pass a pointer to at least a RingHeader of a live
        // mapping (checked against the mapping length by the caller).
        unsafe { (*(base as *const RingHeader)).cap.load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(cap: u64) -> (Vec<u64>, Ring) {
        let mut v = vec![0u64; (ring_bytes(cap) / 8) as usize + 8];
        let p = v.as_mut_ptr() as usize;
        let aligned = (p + 63) & !63;
        // SAFETY: the vector is large enough (8 extra words for alignment)
        // and outlives the ring in each test.
        let r = unsafe { Ring::init(aligned as *mut u8, cap) };
        (v, r)
    }

    #[test]
    fn fifo_full_and_wraparound() {
        let (_m, r) = mem(4);
        for i in 0..4 {
            assert!(r.push([i, i + 1, i + 2]));
        }
        assert!(!r.push([9, 9, 9]), "full");
        for round in 0..10u64 {
            assert_eq!(r.pop(), Some([round, round + 1, round + 2]));
            assert!(r.push([round + 4, round + 5, round + 6]));
        }
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn many_producers_one_consumer() {
        let (_m, r) = mem(64);
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        while !r.push([p, i, p ^ i]) {
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; 3];
        let mut got = 0;
        while got < 30_000 {
            if let Some([p, i, x]) = r.pop() {
                assert_eq!(x, p ^ i);
                assert_eq!(next[p as usize], i, "per-producer order");
                next[p as usize] += 1;
                got += 1;
            }
        }
        for t in producers {
            t.join().unwrap();
        }
        assert!(r.is_empty());
    }
}
