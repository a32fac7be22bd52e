//! tutti: a process-group transport.
//!
//! Process groups with agreed views and reliable multicast, built as
//! stacks of small micro-protocol layers (Horus / Ensemble style) over
//! zero-copy buffers. This crate is the protocol core: it performs no I/O
//! and reads no clock (time is passed in), so the same stacks run under the
//! deterministic simulator ([`sim`]), in a polling thread, or inline in an
//! application thread.
//!
//! Start at [`stack::Stack`].

pub mod engine;
pub mod event;
#[doc(hidden)]
pub mod fuzz;
pub mod layer;
pub mod layers;
pub mod secure;
pub mod sim;
pub mod stack;
pub mod wire;

pub use engine::{Core, DriverConfig, Endpoint, Event, Group, GroupSpec, Idle, Packer};
pub use event::{Dest, Down, EndpointId, Rank, Time, Up, View, ViewId};
pub use stack::{build, GroupStack, SendError, SendErrorKind, Spec, Stack, StackConfig};
pub use tutti_drivers::{Msg, Pool, PoolConfig};
