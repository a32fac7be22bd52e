//! Registered buffer pool: one memory region cut into fixed-size slots.
//!
//! The region is mapped once (memmap2, anonymous or file-backed) and never
//! grows; this is the U-Net "communication segment". Each slot is
//! `slot_size` bytes: `headroom` bytes in front where layers push headers,
//! the payload, and `tailroom` bytes behind it for trailers (AEAD tags).
//! Free slots sit on a bounded lock-free free list; taking and returning a
//! slot allocates nothing on the heap.
//!
//! Per-slot bookkeeping (reference count, chain link, header claim) lives in
//! a side table outside the region, so a peer that can write the region
//! (a shm receiver mapping it, a buggy NIC) cannot corrupt it.
//!
//! Ownership rules, which the `unsafe` code in this module relies on:
//! - a slot with `refs == 0` is on the free list and no [`Msg`] covers it;
//! - bytes inside the window `[head, tail)` of any live handle are never
//!   written while that handle lives;
//! - bytes in front of a handle's `head` may be written by that handle only
//!   if it is the slot's sole owner (`refs == 1`) or if it wins the slot's
//!   *claim*: the lowest offset any handle ever covered, which only moves
//!   down, by compare-and-swap (see [`Msg::push`]);
//! - bytes behind `tail` are written only by a sole owner.

mod allocator;
mod bulk;
mod free;
mod msg;
mod prefetch;
mod span;

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::MmapMut;

use free::{Chain, FreeList};

pub use allocator::{Allocator, CREDITS};
pub use bulk::{release_all, Releaser, Shares};
use msg::PoolRef;
pub use msg::{Msg, MsgError, Segments};

/// Where a slot of a *foreign* pool goes when the last local handle on it
/// drops: back to the process that owns the memory (for shm, a push onto
/// the owner's return ring). Called from whatever thread drops the handle.
pub trait SlotSink: Send + Sync {
    /// Slot `slot`, lent to us `lent` times, is free again on our side.
    fn give_back(&self, slot: u32, lent: u32);
}

/// Who owns the slots.
enum Home {
    /// This process: free slots are on the local free list.
    Local(FreeList),
    /// Another process owns the memory and lends slots to us.
    Foreign {
        sink: Box<dyn SlotSink>,
        held: AtomicU32,
    },
}

/// Keeps a mapping alive for as long as the pool lives.
enum Mapping {
    Rw(#[allow(dead_code)] MmapMut),
    Ro(#[allow(dead_code)] memmap2::Mmap),
}

/// Marks "no slot" in chain links.
pub(crate) const NONE: u32 = u32::MAX;
/// Flag bit: this slot's `head`/`tail` meta describe it as a non-first
/// segment of some chain (so another chain must not reuse them).
pub(crate) const F_CHAINED: u32 = 1;

/// Shape of a pool. Validated by [`Pool::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of slots. At most 2^31.
    pub slots: u32,
    /// Bytes per slot, headroom and tailroom included. Also the largest
    /// frame a slot can carry.
    pub slot_size: u32,
    /// Bytes reserved in front of the payload for headers.
    pub headroom: u32,
    /// Bytes reserved behind the payload for trailers.
    pub tailroom: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            slots: 4096,
            slot_size: 2048,
            headroom: 128,
            tailroom: 32,
        }
    }
}

impl PoolConfig {
    /// Payload bytes one slot holds after headroom and tailroom.
    pub fn capacity(&self) -> u32 {
        self.slot_size - self.headroom - self.tailroom
    }

    /// Why this configuration cannot work, if it cannot.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.slots == 0 {
            return Some("a pool needs at least one slot");
        }
        if self.slots > (1 << 31) {
            return Some("a pool holds at most 2^31 slots");
        }
        if self.slot_size < 64 {
            return Some("slot_size must be at least 64 bytes");
        }
        if self.slot_size > (1 << 30) {
            return Some("slot_size must be at most 1 GiB");
        }
        if self.slot_size % 8 != 0 {
            return Some("slot_size must be a multiple of 8");
        }
        if u64::from(self.headroom) + u64::from(self.tailroom) + 16 > u64::from(self.slot_size) {
            return Some("headroom + tailroom leave less than 16 payload bytes per slot");
        }
        if (self.slots as u64)
            .checked_mul(self.slot_size as u64)
            .is_none()
            || (self.slots as u64) * (self.slot_size as u64) > (1u64 << 40)
        {
            return Some("region larger than 1 TiB");
        }
        None
    }
}

/// Why a pool could not be made.
#[derive(Debug)]
pub enum PoolError {
    /// The configuration is refused; the text says why.
    Config(&'static str),
    /// Mapping the region failed.
    Map(std::io::Error),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Config(why) => write!(f, "bad pool config: {why}"),
            PoolError::Map(e) => write!(f, "cannot map pool region: {e}"),
        }
    }
}

impl std::error::Error for PoolError {}

/// Counters a pool keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Slots handed out and not yet returned.
    pub in_use: u32,
    /// Allocation attempts that found the pool empty.
    pub exhausted: u64,
    /// Copy-on-write copies made because a shared slot's headroom was taken.
    pub cow_copies: u64,
}

/// 32 bytes, aligned: two to a cache line, none across two, and found by a
/// shift (a handle's share and drop index it).
#[repr(align(32))]
pub(crate) struct SlotMeta {
    /// Live handles covering this slot.
    pub(crate) refs: AtomicU32,
    /// Next slot of the chain this slot is a segment of, or NONE.
    pub(crate) next: AtomicU32,
    /// Window of this slot when it is a non-first segment of a chain.
    pub(crate) head: AtomicU32,
    pub(crate) tail: AtomicU32,
    pub(crate) flags: AtomicU32,
    /// Lowest offset any handle has covered (see module docs).
    pub(crate) claim: AtomicU32,
    /// Foreign pools: times the owner lent us this slot since it was last
    /// given back.
    pub(crate) lent: AtomicU32,
}

pub(crate) struct Inner {
    /// Keeps the region mapped; accessed only through `base`.
    _map: Mapping,
    pub(crate) base: *mut u8,
    pub(crate) cfg: PoolConfig,
    pub(crate) meta: Box<[SlotMeta]>,
    home: Home,
    /// False for a foreign region mapped read-only: every write is refused.
    pub(crate) writable: bool,
    exhausted: AtomicU64,
    pub(crate) cow: AtomicU64,
    /// Slots with references (see `msg::PoolRef`).
    pub(crate) out: AtomicUsize,
}

// SAFETY: `base` points into `_map`, which lives as long as `Inner`. All
// mutation of slot bytes follows the ownership rules in the module docs
// (sole owner or won claim), and all bookkeeping is atomic, so sharing
// `Inner` between threads cannot produce a data race.
unsafe impl Send for Inner {}
// SAFETY: see `Send` above.
unsafe impl Sync for Inner {}

impl Inner {
    #[inline]
    pub(crate) fn meta(&self, slot: u32) -> &SlotMeta {
        &self.meta[slot as usize]
    }

    /// Pointer to the first byte of `slot`.
    #[inline]
    pub(crate) fn slot_ptr(&self, slot: u32) -> *mut u8 {
        debug_assert!(slot < self.cfg.slots);
        // SAFETY: slot < slots, so the offset stays inside the mapped region
        // of slots * slot_size bytes.
        unsafe { self.base.add(slot as usize * self.cfg.slot_size as usize) }
    }

    #[inline]
    pub(crate) fn take(&self, head: u32) -> Option<u32> {
        let Home::Local(free) = &self.home else {
            // Nothing to take from memory someone else owns.
            return None;
        };
        match free.pop() {
            Some(slot) => {
                let m = self.meta(slot);
                // Relaxed is enough for the fields: the free-list pop above
                // synchronises with the push in `release` (acquire/release
                // on the list head).
                m.next.store(NONE, Ordering::Relaxed);
                m.flags.store(0, Ordering::Relaxed);
                m.claim.store(head, Ordering::Relaxed);
                m.head.store(head, Ordering::Relaxed);
                m.tail.store(head, Ordering::Relaxed);
                m.refs.store(1, Ordering::Release);
                Some(slot)
            }
            None => {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Drops `n` references to `slot`; frees it onto `chain` when they
    /// were the last, and then returns true (the caller pushes the chain
    /// onto the free list, then gives back the slots' counts on the pool).
    #[inline]
    pub(crate) fn release(&self, slot: u32, n: u32, chain: &mut Chain) -> bool {
        if self.drop_refs(slot, n) {
            self.freed(slot, Some(chain));
            return true;
        }
        false
    }

    /// Drops `n` references to `slot`; true when they were the last (the
    /// caller frees it: `freed`).
    #[inline]
    pub(crate) fn drop_refs(&self, slot: u32, n: u32) -> bool {
        // Release: our writes to the slot happen before whoever takes it next.
        let was = self.meta(slot).refs.fetch_sub(n, Ordering::Release);
        debug_assert!(was >= n, "slot {slot}: {n} references dropped, {was} held");
        was == n
    }

    /// Frees `slot`, whose last reference was just dropped
    /// (`drop_refs`): onto `chain` when given, else straight onto the free
    /// list (a foreign pool's slot goes back to its owner either way).
    #[inline]
    pub(crate) fn freed(&self, slot: u32, chain: Option<&mut Chain>) {
        // Acquire pairs with the other handles' Release decrements.
        std::sync::atomic::fence(Ordering::Acquire);
        match &self.home {
            Home::Local(free) => match chain {
                Some(c) => c.add(free, slot),
                None => free.push(slot),
            },
            Home::Foreign { sink, held } => {
                held.fetch_sub(1, Ordering::Relaxed);
                let lent = self.meta(slot).lent.swap(0, Ordering::Relaxed);
                sink.give_back(slot, lent);
            }
        }
    }

    /// Puts the slots of `chain` (see `release`) back on the free list,
    /// in one operation. Nothing for a foreign pool.
    #[inline]
    pub(crate) fn push_chain(&self, chain: &Chain) {
        if let Home::Local(free) = &self.home {
            free.push_chain(chain);
        }
    }

    /// Takes `n` more references on `slot` (Relaxed: the caller holds one
    /// already, or the slot is its own, so it cannot be freed meanwhile).
    #[inline]
    pub(crate) fn retain(&self, slot: u32, n: u32) {
        self.meta(slot).refs.fetch_add(n, Ordering::Relaxed);
    }
}

/// Length of the region `cfg` describes at `offset` in `file`, checked
/// against the configuration and the file's real length.
fn region_len(file: &std::fs::File, offset: u64, cfg: &PoolConfig) -> Result<usize, PoolError> {
    if let Some(why) = cfg.invalid() {
        return Err(PoolError::Config(why));
    }
    let len = cfg.slots as u64 * cfg.slot_size as u64;
    let have = file.metadata().map_err(PoolError::Map)?.len();
    if offset.checked_add(len).is_none_or(|end| end > have) {
        return Err(PoolError::Config("region extends past the end of its file"));
    }
    Ok(len as usize)
}

/// A registered buffer pool. Cloning is cheap (a reference count) and every
/// clone is the same pool.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("cfg", &self.inner.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pool {
    /// A pool over anonymous memory.
    pub fn new(cfg: PoolConfig) -> Result<Pool, PoolError> {
        if let Some(why) = cfg.invalid() {
            return Err(PoolError::Config(why));
        }
        let len = cfg.slots as usize * cfg.slot_size as usize;
        let map = MmapMut::map_anon(len).map_err(PoolError::Map)?;
        Ok(Self::local(map, cfg))
    }

    /// A pool over the region of `cfg.slots * cfg.slot_size` bytes at
    /// `offset` (page aligned) in `file`, which must already be that long.
    /// Other processes may map the same region read-only to read frames in
    /// place ([`Pool::foreign`]).
    pub fn in_file(file: &std::fs::File, offset: u64, cfg: PoolConfig) -> Result<Pool, PoolError> {
        let len = region_len(file, offset, &cfg)?;
        // SAFETY: a shared mapping of a file this process created and owns;
        // other processes map it read-only, so nothing writes these bytes
        // behind our back.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map_mut(file)
        }
        .map_err(PoolError::Map)?;
        Ok(Self::local(map, cfg))
    }

    fn local(mut map: MmapMut, cfg: PoolConfig) -> Pool {
        let base = map.as_mut_ptr();
        let home = Home::Local(FreeList::full(cfg.slots));
        Self::assemble(Mapping::Rw(map), base, cfg, home, true)
    }

    /// A pool over a region of `cfg.slots * cfg.slot_size` bytes at `offset`
    /// in another process's pool file, mapped read-only. It hands out
    /// nothing ([`Pool::alloc`] is always `None`); [`Pool::adopt`] wraps
    /// slots the owner lends us, and `sink` gets each back when our last
    /// handle on it drops.
    pub fn foreign(
        file: &std::fs::File,
        offset: u64,
        cfg: PoolConfig,
        sink: Box<dyn SlotSink>,
    ) -> Result<Pool, PoolError> {
        if let Some(why) = cfg.invalid() {
            return Err(PoolError::Config(why));
        }
        let len = cfg.slots as usize * cfg.slot_size as usize;
        let have = file.metadata().map_err(PoolError::Map)?.len();
        if offset.checked_add(len as u64).is_none_or(|end| end > have) {
            return Err(PoolError::Config(
                "foreign region extends past the end of its file",
            ));
        }
        // SAFETY: a read-only shared mapping. The owner writes frames into
        // it while we map it; we only ever read bytes of slots the owner has
        // lent us, as plain bytes, and validate everything we read, so a
        // misbehaving owner can give us garbage but not memory unsafety.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map(file)
        }
        .map_err(PoolError::Map)?;
        let base = map.as_ptr() as *mut u8;
        let home = Home::Foreign {
            sink,
            held: AtomicU32::new(0),
        };
        Ok(Self::assemble(Mapping::Ro(map), base, cfg, home, false))
    }

    fn assemble(map: Mapping, base: *mut u8, cfg: PoolConfig, home: Home, writable: bool) -> Pool {
        let meta: Box<[SlotMeta]> = (0..cfg.slots)
            .map(|_| SlotMeta {
                refs: AtomicU32::new(0),
                next: AtomicU32::new(NONE),
                head: AtomicU32::new(0),
                tail: AtomicU32::new(0),
                flags: AtomicU32::new(0),
                claim: AtomicU32::new(0),
                lent: AtomicU32::new(0),
            })
            .collect();
        Pool {
            inner: Arc::new(Inner {
                _map: map,
                base,
                cfg,
                meta,
                home,
                writable,
                exhausted: AtomicU64::new(0),
                cow: AtomicU64::new(0),
                out: AtomicUsize::new(0),
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// Payload bytes one slot holds.
    pub fn capacity(&self) -> usize {
        self.inner.cfg.capacity() as usize
    }

    /// Takes an empty buffer with full headroom, or `None` when every slot
    /// is in use.
    #[inline]
    pub fn alloc(&self) -> Option<Msg> {
        let head = self.inner.cfg.headroom;
        let slot = self.inner.take(head)?;
        Some(Msg::fresh(PoolRef::of(&self.inner), slot, head, head))
    }

    /// Takes a buffer holding a copy of `frame` at offset 0 (no headroom):
    /// how a receive path lands a frame read from the network. `None` when
    /// the pool is empty or the frame is larger than a slot.
    pub fn alloc_frame(&self, frame: &[u8]) -> Option<Msg> {
        if frame.len() > self.inner.cfg.slot_size as usize {
            return None;
        }
        let slot = self.inner.take(0)?;
        let ptr = self.inner.slot_ptr(slot);
        // SAFETY: the slot was just taken from the free list, so we are its
        // only owner; frame.len() <= slot_size keeps the copy in the slot.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), ptr, frame.len()) };
        Some(Msg::fresh(
            PoolRef::of(&self.inner),
            slot,
            0,
            frame.len() as u32,
        ))
    }

    /// A buffer holding a copy of `payload`, chained over several slots if
    /// it does not fit in one.
    pub fn alloc_copy(&self, payload: &[u8]) -> Result<Msg, MsgError> {
        let mut m = self.alloc().ok_or(MsgError::NoBuffer)?;
        m.append(payload)?;
        Ok(m)
    }

    /// Slots free right now (for a foreign pool: slots we hold no handle
    /// on). For a local pool this counts the slots no handle covers, one
    /// by one (no running count is kept: it would cost two atomic
    /// operations per buffer); exact when nothing is taken or given back
    /// meanwhile.
    pub fn free_slots(&self) -> usize {
        match &self.inner.home {
            Home::Local(_) => self
                .inner
                .meta
                .iter()
                .filter(|m| m.refs.load(Ordering::Relaxed) == 0)
                .count(),
            Home::Foreign { held, .. } => {
                (self.inner.cfg.slots - held.load(Ordering::Relaxed)) as usize
            }
        }
    }

    /// Wraps slot `slot` of a foreign pool, which its owner lent us with a
    /// frame at `[offset, offset + len)`. Refuses (None) a slot or window
    /// outside the region, or a local pool.
    #[inline]
    pub fn adopt(&self, slot: u32, offset: u32, len: u32) -> Option<Msg> {
        let Home::Foreign { held, .. } = &self.inner.home else {
            return None;
        };
        let cfg = &self.inner.cfg;
        let end = offset.checked_add(len)?;
        if slot >= cfg.slots || end > cfg.slot_size {
            return None;
        }
        let m = self.inner.meta(slot);
        m.lent.fetch_add(1, Ordering::Relaxed);
        let first = m.refs.fetch_add(1, Ordering::AcqRel) == 0;
        if first {
            // First handle on it: fresh bookkeeping.
            held.fetch_add(1, Ordering::Relaxed);
            m.next.store(NONE, Ordering::Relaxed);
            m.flags.store(0, Ordering::Relaxed);
            m.claim.store(offset, Ordering::Relaxed);
        }
        if first {
            Some(Msg::fresh(PoolRef::of(&self.inner), slot, offset, end))
        } else {
            Some(Msg::from_slot(PoolRef::of(&self.inner), slot, offset, end))
        }
    }

    /// Whether this pool maps memory another process owns.
    pub fn is_foreign(&self) -> bool {
        matches!(self.inner.home, Home::Foreign { .. })
    }

    /// Takes `n` more references on `slot` on behalf of remote holders (a
    /// driver lending the slot to `n` peers). Each must be matched by one
    /// [`Pool::release_lent`].
    #[inline]
    pub fn retain_lent(&self, slot: u32, n: u32) -> bool {
        if slot >= self.inner.cfg.slots || !matches!(self.inner.home, Home::Local(_)) {
            return false;
        }
        self.inner.retain(slot, n);
        true
    }

    /// Drops one reference taken by [`Pool::retain_lent`]. The caller must
    /// track what it lent: releasing more than it took frees a slot still
    /// in use.
    #[inline]
    pub fn release_lent(&self, slot: u32) {
        if slot < self.inner.cfg.slots {
            msg::release(PoolRef::of(&self.inner), slot);
        }
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            in_use: self.inner.cfg.slots - self.free_slots() as u32,
            exhausted: self.inner.exhausted.load(Ordering::Relaxed),
            cow_copies: self.inner.cow.load(Ordering::Relaxed),
        }
    }

    /// Whether `msg` lives in this pool.
    #[inline]
    pub fn owns(&self, msg: &Msg) -> bool {
        PoolRef::of(&self.inner) == msg.pool
    }

    /// Start of the region and its length, for registering it with a NIC
    /// or describing it to a peer process.
    pub fn region(&self) -> (*const u8, usize) {
        (
            self.inner.base as *const u8,
            self.inner.cfg.slots as usize * self.inner.cfg.slot_size as usize,
        )
    }
}

#[cfg(test)]
mod tests;
