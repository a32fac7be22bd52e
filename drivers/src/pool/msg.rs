//! `Msg`: a handle on bytes in a registered pool.
//!
//! A message is a window `[head, tail)` in one slot, or a chain of such
//! windows across several slots for payloads larger than one slot. Layers
//! push headers into the first slot's headroom and pop them off again; no
//! byte of the payload moves. Handles are reference counted per slot:
//! [`Msg::share`] makes another handle on the same bytes (how a retransmit
//! buffer keeps a frame that is also on its way to the wire).

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Inner, Pool, F_CHAINED, NONE};

/// A handle's way to its pool's shared state. Not a counted reference:
/// the slots with references are counted on the pool (`Inner::out`, one
/// each: taken when a slot gets its first reference, given back when it
/// loses its last, see [`PoolRef::hold`]), and while that count is not
/// zero it holds one count on the pool's `Arc`. So the state outlives
/// every handle without an atomic operation on one shared counter per
/// `share` and per drop, and slots freed together give back their counts
/// together ([`PoolRef::unhold`] with `n`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolRef(NonNull<Inner>);

impl PoolRef {
    pub(crate) fn of(a: &Arc<Inner>) -> PoolRef {
        PoolRef(NonNull::from(&**a))
    }

    /// Counts a slot that just got its first reference.
    ///
    /// The caller holds a counted reference while it calls this (a
    /// [`Pool`] handle, or a reference on another slot of the pool): so
    /// when the count goes from zero to one, the `Arc` it increments is
    /// alive, and a concurrent `unhold` taking the count to zero cannot
    /// drop the state under it.
    #[inline]
    pub(crate) fn hold(self) {
        self.hold_n(1)
    }

    /// `hold` for `n` slots at once (an [`Allocator`](super::Allocator)
    /// takes its buffers' counts in advance); the same caller rule.
    #[inline]
    pub(crate) fn hold_n(self, n: usize) {
        if self.out.fetch_add(n, Ordering::Relaxed) == 0 {
            // SAFETY: the pointer came from a live `Arc` (`of`), kept alive
            // by the caller's counted reference (see above).
            unsafe { Arc::increment_strong_count(self.0.as_ptr()) }
        }
    }

    /// Gives back the counts of `n` slots that just lost their last
    /// references.
    ///
    /// # Safety
    /// The `n` counts must have been taken by [`PoolRef::hold`] and not
    /// given back yet, and nothing may use this pointer afterwards unless
    /// another count keeps the state alive.
    #[inline]
    pub(crate) unsafe fn unhold(self, n: usize) {
        // AcqRel: whatever the other slots' last users did to the state
        // happens before the `Arc`'s count drops (and maybe the state with
        // it); the `Arc`'s own orderings carry it from there.
        if self.out.fetch_sub(n, Ordering::AcqRel) == n {
            // SAFETY: the count went to zero here: the `Arc` count the
            // slots held together is ours to give back.
            unsafe { Arc::decrement_strong_count(self.0.as_ptr()) }
        }
    }

    /// A counted reference, for a [`Pool`] handle.
    pub(crate) fn arc(self) -> Arc<Inner> {
        // SAFETY: the caller holds a reference on a slot (it has a `Msg`),
        // so the slots' count keeps the `Arc` alive; the new count is the
        // returned `Arc`'s own.
        unsafe {
            Arc::increment_strong_count(self.0.as_ptr());
            Arc::from_raw(self.0.as_ptr())
        }
    }
}

impl Deref for PoolRef {
    type Target = Inner;

    #[inline]
    fn deref(&self) -> &Inner {
        // SAFETY: whoever holds a `PoolRef` holds references on slots of
        // the pool, whose counts keep the state alive (see the type docs).
        unsafe { self.0.as_ref() }
    }
}

/// Why an operation on a message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// The pool had no free slot.
    NoBuffer,
    /// Not enough headroom in front of the message for the header.
    NoHeadroom,
    /// The operation needs the only handle on the bytes it writes.
    Shared,
    /// Fewer bytes in the first segment than asked for.
    Short,
    /// The slot has no room left behind the payload.
    NoRoom,
    /// The bytes belong to another process and are mapped read-only.
    ReadOnly,
}

impl fmt::Display for MsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsgError::NoBuffer => "buffer pool exhausted",
            MsgError::NoHeadroom => "not enough headroom for header",
            MsgError::Shared => "buffer is shared; this write needs the only handle",
            MsgError::Short => "message shorter than requested",
            MsgError::NoRoom => "no room left in slot",
            MsgError::ReadOnly => "buffer is another process's, read-only",
        })
    }
}

impl std::error::Error for MsgError {}

/// A handle on a message in a pool. See the module docs.
pub struct Msg {
    pub(crate) pool: PoolRef,
    first: u32,
    last: u32,
    /// Window of the first segment (other segments keep theirs in meta).
    head: u32,
    tail: u32,
    /// Segments in the chain; 0 only transiently, for a handle whose slots
    /// were handed elsewhere (Drop then releases nothing).
    nsegs: u32,
    len: usize,
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Msg")
            .field("slot", &self.first)
            .field("head", &self.head)
            .field("len", &self.len)
            .field("segs", &self.nsegs)
            .finish()
    }
}

// SAFETY: the pool state is `Send` and `Sync` (its `Arc` is); a handle
// touches it only through atomics and through windows it owns, as an
// `Arc<Inner>` field would.
unsafe impl Send for Msg {}
// SAFETY: as above; `&Msg` only reads.
unsafe impl Sync for Msg {}

impl Drop for Msg {
    /// One slot (nearly every message) costs one decrement where the
    /// handle drops; freeing the slot, and chains, are out of line.
    #[inline]
    fn drop(&mut self) {
        if self.nsegs == 1 {
            release(self.pool, self.first);
        } else {
            self.drop_chain();
        }
    }
}

impl Msg {
    /// `drop` for any number of slots (none, for a message whose chain
    /// was handed on).
    #[inline(never)]
    fn drop_chain(&mut self) {
        let mut cur = self.first;
        for _ in 0..self.nsegs {
            // Read the link before releasing: once released, the slot may
            // be reused and its meta reset.
            let next = self.pool.meta(cur).next.load(Ordering::Relaxed);
            release(self.pool, cur);
            cur = next;
        }
    }
}

/// Drops one reference on `slot`; when it was the last, frees the slot and
/// gives back its count on the pool (after which `pool` may be gone,
/// unless other slots still count).
#[inline]
pub(crate) fn release(pool: PoolRef, slot: u32) {
    release_n(pool, slot, 1)
}

/// Drops `n` references on `slot` at once (see `release`): one decrement
/// where the handles drop, the freeing out of line.
#[inline]
pub(crate) fn release_n(pool: PoolRef, slot: u32, n: u32) {
    if pool.drop_refs(slot, n) {
        last_ref(pool, slot);
    }
}

/// The last reference on `slot` went: frees it and gives back its count on
/// the pool.
#[inline(never)]
fn last_ref(pool: PoolRef, slot: u32) {
    pool.freed(slot, None);
    // SAFETY: the slot had its count since its first reference (`hold` in
    // `Msg::fresh` / `Pool::adopt`, or an allocator's credit), and lost its
    // last now.
    unsafe { pool.unhold(1) }
}

impl Msg {
    /// A handle on a slot that just got its first reference.
    #[inline]
    pub(crate) fn fresh(pool: PoolRef, slot: u32, head: u32, tail: u32) -> Msg {
        pool.hold();
        Msg::from_slot(pool, slot, head, tail)
    }

    /// A handle on a slot whose reference (and count) it takes over.
    #[inline]
    pub(crate) fn from_slot(pool: PoolRef, slot: u32, head: u32, tail: u32) -> Msg {
        Msg {
            pool,
            first: slot,
            last: slot,
            head,
            tail,
            nsegs: 1,
            len: (tail - head) as usize,
        }
    }

    /// Total payload bytes (all segments).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of slots the message spans.
    #[inline]
    pub fn nsegs(&self) -> usize {
        self.nsegs as usize
    }

    /// Slot index of the first segment (for driver descriptors).
    #[inline]
    pub fn slot(&self) -> u32 {
        self.first
    }

    /// Offset of the first byte inside the first slot.
    #[inline]
    pub fn offset(&self) -> u32 {
        self.head
    }

    /// Bytes free in front of the message for headers.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// The pool this message lives in.
    pub fn pool(&self) -> Pool {
        Pool {
            inner: self.pool.arc(),
        }
    }

    /// Whether this handle is the only one on its first slot.
    #[inline]
    pub fn is_unique(&self) -> bool {
        self.pool.meta(self.first).refs.load(Ordering::Acquire) == 1
    }

    /// Bytes of the first segment: where headers are.
    #[inline]
    pub fn front(&self) -> &[u8] {
        let p = self.pool.slot_ptr(self.first);
        // SAFETY: [head, tail) lies inside the slot (invariant of every
        // handle), and nobody writes inside a live handle's window.
        unsafe {
            std::slice::from_raw_parts(p.add(self.head as usize), (self.tail - self.head) as usize)
        }
    }

    /// The whole message when it is one segment (every frame is).
    #[inline]
    pub fn contiguous(&self) -> Option<&[u8]> {
        if self.nsegs == 1 {
            Some(self.front())
        } else {
            None
        }
    }

    /// Iterates over the segments' bytes.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            msg: self,
            cur: self.first,
            left: self.nsegs,
            first: true,
        }
    }

    /// Copies the payload into a new vector (tests, slow paths).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for s in self.segments() {
            v.extend_from_slice(s);
        }
        v
    }

    /// Removes `n` bytes from the front (a header that has been read).
    #[inline]
    pub fn advance(&mut self, n: usize) -> Result<(), MsgError> {
        if n > (self.tail - self.head) as usize {
            return Err(MsgError::Short);
        }
        self.head += n as u32;
        self.len -= n;
        Ok(())
    }

    /// Makes room for an `n`-byte header in front and returns it to be
    /// written. Never copies when this handle owns the slot alone or when
    /// no other handle has claimed the headroom; otherwise the first
    /// segment is copied into a fresh slot first (copy-on-write).
    #[inline]
    pub fn push(&mut self, n: usize) -> Result<&mut [u8], MsgError> {
        if n > self.head as usize {
            return Err(MsgError::NoHeadroom);
        }
        if !self.pool.writable {
            return Err(MsgError::ReadOnly);
        }
        let new_head = self.head - n as u32;
        let meta = self.pool.meta(self.first);
        if meta.refs.load(Ordering::Acquire) == 1 {
            // Sole owner: nobody else can touch the claim; no atomic RMW.
            if new_head < meta.claim.load(Ordering::Relaxed) {
                meta.claim.store(new_head, Ordering::Relaxed);
            }
        } else if meta
            .claim
            .compare_exchange(self.head, new_head, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            self.cow_first()?;
            self.pool
                .meta(self.first)
                .claim
                .fetch_min(new_head, Ordering::Relaxed);
        }
        self.head = new_head;
        self.len += n;
        let p = self.pool.slot_ptr(self.first);
        // SAFETY: [new_head, new_head + n) is inside the slot (n <= head).
        // Either we are the slot's only handle, or the claim CAS proved no
        // handle ever covered these bytes, so no one else reads or writes
        // them while we hold the returned borrow of `self`.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.add(new_head as usize), n) })
    }

    /// Replaces the first segment by a private copy (same offsets).
    fn cow_first(&mut self) -> Result<(), MsgError> {
        let slot = self.pool.take(self.head).ok_or(MsgError::NoBuffer)?;
        self.pool.hold();
        let src = self.pool.slot_ptr(self.first);
        let dst = self.pool.slot_ptr(slot);
        // SAFETY: `slot` is fresh (we own it alone); the source window is a
        // live handle's window, which nobody writes; both ranges lie inside
        // their slots and different slots never overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.add(self.head as usize),
                dst.add(self.head as usize),
                (self.tail - self.head) as usize,
            )
        };
        let m = self.pool.meta(slot);
        if self.nsegs > 1 {
            let next = self.pool.meta(self.first).next.load(Ordering::Relaxed);
            m.next.store(next, Ordering::Relaxed);
        }
        // The new slot counts: the state outlives this.
        release(self.pool, self.first);
        if self.last == self.first {
            self.last = slot;
        }
        self.first = slot;
        self.pool.cow.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Slot of the last segment.
    #[inline]
    pub(crate) fn last_slot(&self) -> u32 {
        self.last
    }

    /// Window of the last segment.
    #[inline]
    pub(crate) fn last_window(&self) -> (u32, u32) {
        if self.last == self.first {
            (self.head, self.tail)
        } else {
            let m = self.pool.meta(self.last);
            (
                m.head.load(Ordering::Relaxed),
                m.tail.load(Ordering::Relaxed),
            )
        }
    }

    #[inline]
    fn set_last_tail(&mut self, tail: u32) {
        if self.last == self.first {
            self.tail = tail;
        } else {
            self.pool
                .meta(self.last)
                .tail
                .store(tail, Ordering::Relaxed);
        }
    }

    /// Extends the last segment by `n` bytes and returns them to be written
    /// (zero-copy send: the application writes its payload in place).
    #[inline]
    pub fn reserve(&mut self, n: usize) -> Result<&mut [u8], MsgError> {
        if !self.pool.writable {
            return Err(MsgError::ReadOnly);
        }
        if self.pool.meta(self.last).refs.load(Ordering::Acquire) != 1 {
            return Err(MsgError::Shared);
        }
        let limit = self.pool.cfg.slot_size - self.pool.cfg.tailroom;
        let (_, tail) = self.last_window();
        if (limit - tail.min(limit)) < n as u32 || n > u32::MAX as usize {
            return Err(MsgError::NoRoom);
        }
        self.set_last_tail(tail + n as u32);
        self.len += n;
        let p = self.pool.slot_ptr(self.last);
        // SAFETY: [tail, tail + n) is inside the slot's payload area (checked
        // against limit) and we are the last slot's only handle.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.add(tail as usize), n) })
    }

    /// Bytes [`Msg::reserve`] can still add to the message (in its last
    /// slot).
    pub fn room(&self) -> usize {
        let limit = self.pool.cfg.slot_size - self.pool.cfg.tailroom;
        (limit - self.last_window().1.min(limit)) as usize
    }

    /// Appends a copy of `bytes`, chaining new slots from the same pool when
    /// the last one is full. On `NoBuffer` the bytes that fit were appended.
    pub fn append(&mut self, mut bytes: &[u8]) -> Result<(), MsgError> {
        let limit = self.pool.cfg.slot_size - self.pool.cfg.tailroom;
        while !bytes.is_empty() {
            let (_, tail) = self.last_window();
            let room = limit.saturating_sub(tail) as usize;
            if room == 0 {
                self.grow()?;
                continue;
            }
            let n = room.min(bytes.len());
            let dst = self.reserve(n)?;
            dst.copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Links a fresh empty slot (full headroom) behind the last segment.
    fn grow(&mut self) -> Result<(), MsgError> {
        let head = self.pool.cfg.headroom;
        let slot = self.pool.take(head).ok_or(MsgError::NoBuffer)?;
        self.pool.hold();
        let m = self.pool.meta(slot);
        m.flags.store(F_CHAINED, Ordering::Relaxed);
        if self
            .pool
            .meta(self.last)
            .next
            .compare_exchange(NONE, slot, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            release(self.pool, slot);
            return Err(MsgError::Shared);
        }
        self.last = slot;
        self.nsegs += 1;
        Ok(())
    }

    /// Another handle on the same bytes. Costs one atomic increment per
    /// segment; copies nothing.
    #[inline(always)]
    pub fn share(&self) -> Msg {
        // One segment, the common case: one increment, no walk.
        if self.nsegs == 1 {
            self.pool.retain(self.first, 1);
        } else {
            self.retain_chain();
        }
        Msg {
            pool: self.pool,
            first: self.first,
            last: self.last,
            head: self.head,
            tail: self.tail,
            nsegs: self.nsegs,
            len: self.len,
        }
    }

    /// `share`'s count on every segment of a chain (or none, for a handle
    /// whose slots were handed elsewhere).
    #[cold]
    fn retain_chain(&self) {
        let mut cur = self.first;
        for _ in 0..self.nsegs {
            self.pool.retain(cur, 1);
            cur = self.pool.meta(cur).next.load(Ordering::Relaxed);
        }
    }

    /// A private copy with the same segment layout (each segment keeps its
    /// offsets, so the copy has the same headroom as the original).
    pub fn copy_exact(&self) -> Result<Msg, MsgError> {
        let mut out: Option<Msg> = None;
        let mut cur = self.first;
        for i in 0..self.nsegs {
            let (h, t) = if i == 0 {
                (self.head, self.tail)
            } else {
                let m = self.pool.meta(cur);
                (
                    m.head.load(Ordering::Relaxed),
                    m.tail.load(Ordering::Relaxed),
                )
            };
            let slot = self.pool.take(h).ok_or(MsgError::NoBuffer)?;
            // SAFETY: `slot` is fresh; the source window belongs to a live
            // handle (never written); both ranges are inside their slots.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.pool.slot_ptr(cur).add(h as usize),
                    self.pool.slot_ptr(slot).add(h as usize),
                    (t - h) as usize,
                )
            };
            let seg = Msg::fresh(self.pool, slot, h, t);
            match out.as_mut() {
                None => out = Some(seg),
                Some(m) => {
                    if let Err(seg) = m.link(seg) {
                        drop(seg);
                        return Err(MsgError::Shared);
                    }
                }
            }
            cur = self.pool.meta(cur).next.load(Ordering::Relaxed);
        }
        out.ok_or(MsgError::Short)
    }

    /// A private single-segment copy in `pool`, placed behind `pool`'s
    /// headroom (or as far back as the slot allows), so the copy has room
    /// for headers whatever frame it came from. Fails with `NoRoom` when
    /// the message spans several slots or exceeds `pool`'s slot size.
    pub fn copy_into(&self, pool: &Pool) -> Result<Msg, MsgError> {
        let cfg = &pool.inner.cfg;
        let len = self.tail - self.head;
        if self.nsegs != 1 || len > cfg.slot_size {
            return Err(MsgError::NoRoom);
        }
        let at = cfg.headroom.min(cfg.slot_size - len);
        let slot = pool.inner.take(at).ok_or(MsgError::NoBuffer)?;
        // SAFETY: `slot` is fresh; the source window belongs to a live handle
        // (never written); at + len <= slot_size keeps the copy in the slot.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.pool.slot_ptr(self.first).add(self.head as usize),
                pool.inner.slot_ptr(slot).add(at as usize),
                len as usize,
            )
        };
        Ok(Msg::fresh(PoolRef::of(&pool.inner), slot, at, at + len))
    }

    /// Appends `seg`'s segments behind this message's last one without
    /// copying their bytes (zero-copy reassembly). A segment already used
    /// as a middle segment of another chain is copied instead. Returns the
    /// segment back only if this message's last slot was linked onward by
    /// another handle sharing it (the caller then owns both unchanged).
    pub fn link(&mut self, seg: Msg) -> Result<(), Msg> {
        if self.pool != seg.pool {
            // A segment from another pool: copy its bytes into ours.
            let bytes = seg.to_vec();
            return self.append(&bytes).map_err(|_| seg);
        }
        if seg.nsegs != 1 {
            let mut segs = seg.split();
            for s in segs.by_ref() {
                self.link(s)?;
            }
            return Ok(());
        }
        if self.nsegs == 1
            && self.pool.meta(self.first).next.load(Ordering::Relaxed) != NONE
            && self.cow_first().is_err()
        {
            return Err(seg);
        }
        let seg = self.adopt(seg)?;
        let slot = seg.first;
        if self
            .pool
            .meta(self.last)
            .next
            .compare_exchange(NONE, slot, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(seg);
        }
        self.last = slot;
        self.nsegs += 1;
        self.len += seg.len;
        // The chain now holds seg's reference.
        let mut seg = seg;
        seg.nsegs = 0;
        Ok(())
    }

    /// Prepares single-segment `seg` to become a non-first segment: marks
    /// its slot chained and records its window in meta, or copies it when
    /// the slot's meta is already in use by another chain. Gives `seg`
    /// back when a copy was needed and the pool had no buffer for it.
    fn adopt(&self, seg: Msg) -> Result<Msg, Msg> {
        let m = self.pool.meta(seg.first);
        let free_meta = m
            .flags
            .compare_exchange(0, F_CHAINED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if free_meta && m.next.load(Ordering::Relaxed) == NONE {
            m.head.store(seg.head, Ordering::Relaxed);
            m.tail.store(seg.tail, Ordering::Relaxed);
            return Ok(seg);
        }
        if free_meta {
            m.flags.store(0, Ordering::Relaxed);
        }
        let copy = seg.copy_exact().map_err(|_| seg)?;
        let cm = self.pool.meta(copy.first);
        cm.flags.store(F_CHAINED, Ordering::Relaxed);
        cm.head.store(copy.head, Ordering::Relaxed);
        cm.tail.store(copy.tail, Ordering::Relaxed);
        Ok(copy)
    }

    /// Splits the message into single-segment messages, one per slot,
    /// without copying (how frag cuts a large message into frames).
    pub fn split(mut self) -> IntoSegments {
        let it = IntoSegments {
            pool: self.pool,
            cur: self.first,
            left: self.nsegs,
            first: Some((self.head, self.tail)),
        };
        self.nsegs = 0;
        it
    }
}

/// Iterator over a message's segments (see [`Msg::segments`]).
pub struct Segments<'a> {
    msg: &'a Msg,
    cur: u32,
    left: u32,
    first: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let pool = &self.msg.pool;
        let (h, t) = if self.first {
            self.first = false;
            (self.msg.head, self.msg.tail)
        } else {
            let m = pool.meta(self.cur);
            (
                m.head.load(Ordering::Relaxed),
                m.tail.load(Ordering::Relaxed),
            )
        };
        let p = pool.slot_ptr(self.cur);
        // SAFETY: the window of a segment of a live handle lies inside its
        // slot and is never written while the handle (borrowed for 'a) lives.
        let s = unsafe { std::slice::from_raw_parts(p.add(h as usize), (t - h) as usize) };
        self.left -= 1;
        if self.left > 0 {
            self.cur = pool.meta(self.cur).next.load(Ordering::Relaxed);
        }
        Some(s)
    }
}

/// Owning iterator over a message's segments (see [`Msg::split`]).
pub struct IntoSegments {
    /// Valid while slots remain (they count).
    pool: PoolRef,
    cur: u32,
    left: u32,
    first: Option<(u32, u32)>,
}

impl Iterator for IntoSegments {
    type Item = Msg;

    fn next(&mut self) -> Option<Msg> {
        if self.left == 0 {
            return None;
        }
        let slot = self.cur;
        let m = self.pool.meta(slot);
        let (h, t) = match self.first.take() {
            Some(w) => w,
            None => (
                m.head.load(Ordering::Relaxed),
                m.tail.load(Ordering::Relaxed),
            ),
        };
        self.left -= 1;
        let next = m.next.load(Ordering::Relaxed);
        if self.left > 0 {
            self.cur = next;
        }
        if m.refs.load(Ordering::Acquire) == 1 {
            // Sole owner: the slot leaves the chain entirely.
            m.next.store(NONE, Ordering::Relaxed);
            m.flags.store(0, Ordering::Relaxed);
        }
        // The reference the chain held moves into the new handle.
        Some(Msg::from_slot(self.pool, slot, h, t))
    }
}

impl Drop for IntoSegments {
    fn drop(&mut self) {
        for seg in self.by_ref() {
            drop(seg);
        }
    }
}

impl Msg {
    /// The whole slot, from offset 0, for a device to write a received
    /// frame into (then [`Msg::set_frame`]). Needs the only handle on a
    /// single-segment message in writable memory.
    pub fn slot_mut(&mut self) -> Result<&mut [u8], MsgError> {
        if !self.pool.writable {
            return Err(MsgError::ReadOnly);
        }
        if self.nsegs != 1 || !self.is_unique() {
            return Err(MsgError::Shared);
        }
        let p = self.pool.slot_ptr(self.first);
        // SAFETY: we are the slot's only handle (checked), the memory is
        // writable, and the slice covers exactly the slot.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, self.pool.cfg.slot_size as usize) })
    }

    /// Sets the window to the first `len` bytes of the slot (a frame a
    /// device wrote at offset 0). Same conditions as [`Msg::slot_mut`].
    pub fn set_frame(&mut self, len: usize) -> Result<(), MsgError> {
        if self.nsegs != 1 || !self.is_unique() {
            return Err(MsgError::Shared);
        }
        if len > self.pool.cfg.slot_size as usize {
            return Err(MsgError::NoRoom);
        }
        self.head = 0;
        self.tail = len as u32;
        self.len = len;
        self.pool.meta(self.first).claim.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the window to `[head, tail)` of the slot (a frame a device wrote
    /// at offset `head`). Same conditions as [`Msg::slot_mut`].
    pub fn set_window(&mut self, head: usize, tail: usize) -> Result<(), MsgError> {
        if self.nsegs != 1 || !self.is_unique() {
            return Err(MsgError::Shared);
        }
        if head > tail || tail > self.pool.cfg.slot_size as usize {
            return Err(MsgError::NoRoom);
        }
        self.head = head as u32;
        self.tail = tail as u32;
        self.len = tail - head;
        self.pool
            .meta(self.first)
            .claim
            .store(head as u32, Ordering::Relaxed);
        Ok(())
    }

    /// Shortens the message to its first `len` bytes (single segment only).
    #[inline]
    pub fn truncate(&mut self, len: usize) -> Result<(), MsgError> {
        if self.nsegs != 1 {
            return Err(MsgError::Shared);
        }
        if len < self.len {
            self.tail = self.head + len as u32;
            self.len = len;
        }
        Ok(())
    }
}
