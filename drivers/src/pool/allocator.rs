//! One thread's way of taking many buffers: [`Allocator`].
//!
//! Every slot in use holds a count on the pool (`PoolRef::hold`: the state
//! lives while a buffer does), taken with an atomic addition when the slot
//! is taken. An application casting millions of small messages a second
//! pays that addition on every buffer, and on x86 a locked operation waits
//! for the stores before it (the previous message's copy into a frame the
//! receiver reads) to drain: measured, it was a tenth of a packed sender's
//! time. An `Allocator` takes the counts [`CREDITS`] at a time and hands
//! them to the buffers it takes, one by one, with no atomic operation;
//! what it has not handed out goes back when it drops. The counts are the
//! ones `Pool::alloc` takes, only taken earlier, so every rule of the pool
//! holds unchanged (a slot's last handle gives its count back as always).

use super::msg::PoolRef;
use super::{Msg, Pool};

/// Counts an [`Allocator`] takes on the pool at once.
pub const CREDITS: usize = 64;

/// Takes buffers from a pool for one user at a time (`&mut self`), counting
/// them on the pool in batches; see the module documentation. The pool's
/// state lives at least as long as the allocator.
pub struct Allocator {
    pool: Pool,
    /// Counts taken on the pool and not yet handed to a buffer.
    credits: usize,
}

impl Pool {
    /// An allocator on this pool, for a thread that takes many buffers.
    pub fn allocator(&self) -> Allocator {
        Allocator {
            pool: self.clone(),
            credits: 0,
        }
    }
}

impl Allocator {
    /// Takes an empty buffer with full headroom, as [`Pool::alloc`] does,
    /// or `None` when every slot is in use.
    #[inline]
    pub fn alloc(&mut self) -> Option<Msg> {
        let inner = &self.pool.inner;
        let head = inner.cfg.headroom;
        let slot = inner.take(head)?;
        let pool = PoolRef::of(inner);
        if self.credits == 0 {
            // `self.pool` is a counted reference: the state is alive.
            pool.hold_n(CREDITS);
            self.credits = CREDITS;
        }
        self.credits -= 1;
        // The slot's count is one of the credits, handed over here.
        Some(Msg::from_slot(pool, slot, head, head))
    }

    /// The pool it takes from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Counts taken and not yet handed to a buffer.
    pub fn credits(&self) -> usize {
        self.credits
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        if self.credits > 0 {
            // SAFETY: the credits were taken by `hold_n` and never handed
            // to a slot; `self.pool` still keeps the state alive while the
            // counts go back, and nothing here uses the pointer after.
            unsafe { PoolRef::of(&self.pool.inner).unhold(self.credits) }
        }
    }
}

impl std::fmt::Debug for Allocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Allocator")
            .field("credits", &self.credits)
            .finish()
    }
}
