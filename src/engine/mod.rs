//! The engine: polling threads, application queues, timers, idling.
//!
//! [`Core`] is one round of work over a driver and its groups, usable
//! inline. [`Endpoint`] runs a `Core` in a polling thread (pinned to a
//! core when asked), with lock-free queues to and from the application
//! and an idle strategy that spins, then yields, then parks on the
//! driver's doorbell, so that several endpoints on a 2-core machine all
//! keep making progress.

mod clock;
mod core;
mod packer;
mod routes;
mod thread;
pub mod wheel;

pub use self::core::{fnv64, Core, EngineDrops, Event, GroupIx, GroupSpec, JoinError, Request};
pub use self::packer::Packer;
pub use self::thread::{DriverConfig, Endpoint, EndpointBuilder, EndpointError, Group, Idle};
