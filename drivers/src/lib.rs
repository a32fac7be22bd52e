//! tutti-drivers: registered memory and the transports under a tutti stack.
//!
//! This crate owns everything that touches memory the network (or another
//! process) reads: the registered buffer [`Pool`] and the [`Msg`] handle that
//! protocol layers push their headers into without copying. Drivers (shm,
//! io_uring UDP, plain UDP, verbs) live here as well, one module each.
//!
//! Dependency direction: `tutti` depends on this crate, never the reverse.

#[cfg(test)]
mod conformance;
pub mod driver;
pub mod pool;
pub mod shm;
pub mod udp;
pub mod uring;

pub use driver::{Driver, DriverError, DriverStats, PeerId, To, Tx, Waker};
pub use pool::{
    release_all, Allocator, Msg, MsgError, Pool, PoolConfig, PoolError, PoolStats, Releaser,
    Shares, SlotSink,
};
