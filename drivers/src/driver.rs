//! The one interface every transport implements.
//!
//! A driver owns registered memory (its [`Pool`]s), posts frames in
//! batches, returns received frames in batches, and can park the polling
//! thread until something arrives. Frames are [`Msg`]s: a driver never
//! copies a frame it can hand to the hardware (or the peer process) in
//! place. Received frames are `Msg`s too, in memory the driver chose (its
//! receive pool, or a peer's segment mapped read-only); dropping one gives
//! the buffer back.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::pool::{Msg, Pool};

/// A peer known to a driver (index into its peer table).
pub type PeerId = u32;

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    /// Every peer added to the driver.
    All,
    /// One peer.
    Peer(PeerId),
}

/// A frame to transmit.
#[derive(Debug)]
pub struct Tx {
    /// Destination.
    pub to: To,
    /// The frame (one segment).
    pub frame: Msg,
}

/// [`Driver::send_ref`] for a driver that needs a handle of its own:
/// shares the frame onto `q` and sends.
pub(crate) fn share_and_send<D: Driver + ?Sized>(
    d: &mut D,
    to: To,
    frame: &Msg,
    q: &mut VecDeque<Tx>,
) -> Result<usize, DriverError> {
    q.push_back(Tx {
        to,
        frame: frame.share(),
    });
    d.send(q)
}

/// What went wrong in a driver.
#[derive(Debug)]
pub enum DriverError {
    /// A system call failed.
    Io(io::Error),
    /// This machine or kernel cannot run the driver; the text says why.
    Unsupported(String),
    /// A peer address that cannot be used.
    BadAddress(String),
    /// The endpoint name is taken by a live process.
    NameInUse(String),
    /// A configuration that cannot work.
    Config(String),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io(e) => write!(f, "i/o error: {e}"),
            DriverError::Unsupported(s) => write!(f, "unsupported here: {s}"),
            DriverError::BadAddress(s) => write!(f, "bad peer address: {s}"),
            DriverError::NameInUse(s) => write!(f, "endpoint name in use: {s}"),
            DriverError::Config(s) => write!(f, "bad driver config: {s}"),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<io::Error> for DriverError {
    fn from(e: io::Error) -> Self {
        DriverError::Io(e)
    }
}

/// Counters every driver keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Frames posted (one per destination).
    pub tx_frames: u64,
    /// Bytes posted.
    pub tx_bytes: u64,
    /// Frames not posted because the peer or the device had no room
    /// (peer ring full, socket buffer full); the protocol above repairs.
    pub tx_full: u64,
    /// Frames copied into registered memory because they were elsewhere.
    pub tx_copied: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Received descriptors or datagrams refused (out of range, unknown
    /// sender, truncated): the driver's own drop counter.
    pub rx_bad: u64,
    /// Frames lost because no receive buffer was free.
    pub rx_no_buffer: u64,
    /// Peers found dead and cleaned up.
    pub peers_dead: u64,
    /// Peers found by the id on their frames (processes this endpoint
    /// never added: joiners).
    pub peers_discovered: u64,
}

/// Wakes a parked driver from another thread.
pub trait Waker: Send + Sync {
    /// Makes a concurrent or next `park` return at once.
    fn wake(&self);
}

/// A transport.
pub trait Driver: Send {
    /// Short name: "shm", "udp", "uring".
    fn kind(&self) -> &'static str;

    /// This endpoint's address, in the form peers pass to `add_peer`.
    fn local_addr(&self) -> String;

    /// Adds a peer by address; returns its id.
    fn add_peer(&mut self, addr: &str) -> Result<PeerId, DriverError>;

    /// Peers this driver knows (`To::All` reaches all of them); ids are
    /// `0..peer_count()`.
    fn peer_count(&self) -> usize;

    /// Registered memory for frames this endpoint sends (application
    /// payloads and the layers' data).
    fn pool(&self) -> &Pool;

    /// Registered memory for the layers' own control messages.
    fn ctl_pool(&self) -> &Pool;

    /// Largest frame, bytes.
    fn max_frame(&self) -> usize;

    /// Posts frames from the front of `q` in one batch. Frames a peer has
    /// no room for are counted in `tx_full` and dropped; frames the driver
    /// as a whole cannot take now stay in `q`. Returns frames taken.
    fn send(&mut self, q: &mut VecDeque<Tx>) -> Result<usize, DriverError>;

    /// Sends one frame to `to` without taking the caller's handle: the
    /// driver takes the references it needs itself (`shm`: the lent count
    /// of each receiver, and no count on the handle), so the caller keeps
    /// the frame without counting a second handle first. `q` is the
    /// caller's transmit queue: what waits in it goes first, as with
    /// `send`. The default shares the frame onto `q` and sends.
    fn send_ref(
        &mut self,
        to: To,
        frame: &Msg,
        q: &mut VecDeque<Tx>,
    ) -> Result<usize, DriverError> {
        share_and_send(self, to, frame, q)
    }

    /// Appends up to `max` received frames to `out`; returns how many.
    fn recv(&mut self, out: &mut Vec<Msg>, max: usize) -> Result<usize, DriverError>;

    /// Blocks until a frame may have arrived, the waker was called, or
    /// `timeout` passed.
    fn park(&mut self, timeout: Duration) -> Result<(), DriverError>;

    /// Handle that wakes a parked `park` from other threads.
    fn waker(&self) -> Arc<dyn Waker>;

    /// Housekeeping the polling thread runs now and then: returned
    /// buffers, dead peers.
    fn maintain(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Counters.
    fn stats(&self) -> DriverStats;

    /// A line on the driver's inner state (diagnostics: queues, peers).
    fn describe(&self) -> String {
        String::new()
    }
}
