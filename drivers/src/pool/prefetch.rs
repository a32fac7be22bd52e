//! Getting a buffer's cache lines ready before it is written.
//!
//! A slot that went to another process and came back (a frame a receiver
//! read) has its lines in that core's cache; the first write to each line
//! must take it back (a read-for-ownership), and a run of such writes
//! stalls the writer once its store buffer fills, each line's round trip
//! after the last. Prefetching the lines for writing when the buffer is
//! taken starts those transfers together, long before the bytes come.

use super::Msg;

impl Msg {
    /// Asks the processor to fetch for writing the cache lines of the
    /// next `n` bytes behind the message (where [`Msg::reserve`] writes),
    /// within the slot. A hint only: nothing is read or written, and on
    /// other architectures it does nothing.
    #[inline]
    pub fn prefetch_room(&self, n: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            let cfg = &self.pool.cfg;
            let (_, tail) = self.last_window();
            let end = (tail as usize)
                .saturating_add(n)
                .min((cfg.slot_size - cfg.tailroom) as usize);
            let base = self.pool.slot_ptr(self.last_slot()) as usize;
            let mut at = (base + tail as usize) & !63;
            while at < base + end {
                // SAFETY: a prefetch is a hint that never faults and
                // changes no memory; the address is inside the slot anyway.
                unsafe { _mm_prefetch::<_MM_HINT_ET0>(at as *const i8) };
                at += 64;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = n;
    }
}
