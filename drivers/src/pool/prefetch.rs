//! Cache-line hints for buffers that move between cores.
//!
//! A slot that went to another process and came back (a frame a receiver
//! read) has its lines in that core's cache; the first write to each line
//! must take it back (a read-for-ownership), and a run of such writes
//! stalls the writer once its store buffer fills, each line's round trip
//! after the last. Prefetching the lines for writing when the buffer is
//! taken starts those transfers together, long before the bytes come.
//!
//! The other way round, a frame just written sits in the writer's private
//! caches, and every line the receiver reads is a snoop of the writer's
//! core. Demoting the lines to the shared cache once the frame is out
//! serves the receiver from there, and the writer's core is not disturbed
//! while it writes the next frame.

use super::Msg;

/// The start of each cache line that `[from, to)` touches.
#[cfg(target_arch = "x86_64")]
#[inline]
fn lines(from: usize, to: usize) -> impl Iterator<Item = usize> {
    ((from & !63)..to).step_by(64)
}

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
            for at in lines(base + tail as usize, base + end) {
                // SAFETY: a prefetch is a hint that never faults and
                // changes no memory; the address is inside the slot anyway.
                unsafe { _mm_prefetch::<_MM_HINT_ET0>(at as *const i8) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = n;
    }

    /// Asks the processor to move the cache lines of the message's first
    /// segment (every frame's only one) from this core's private caches to
    /// the shared cache (`CLDEMOTE`), for a frame another core reads next.
    /// A hint only: nothing is read or written, a processor without the
    /// instruction takes it as a no-op, and on other architectures it does
    /// nothing.
    #[inline]
    pub fn demote(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            let bytes = self.front();
            let start = bytes.as_ptr() as usize;
            for at in lines(start, start + bytes.len()) {
                // SAFETY: CLDEMOTE is a hint that never faults and changes
                // no memory (its encoding is a no-op hint where it is not
                // implemented); the address is inside the window anyway.
                unsafe {
                    std::arch::asm!(
                        "cldemote [{0}]",
                        in(reg) at,
                        options(nostack, preserves_flags, readonly)
                    )
                };
            }
        }
    }
}
