//! The threaded endpoint: a polling thread owning a `Core`, and `Group`
//! handles the application uses from any thread.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use tutti_drivers::shm::{ShmConfig, ShmDriver};
use tutti_drivers::udp::{UdpConfig, UdpDriver};
use tutti_drivers::uring::{UringConfig, UringDriver};
use tutti_drivers::{Driver, DriverError, DriverStats, Msg, Pool, Waker};

use super::core::{Core, Event, GroupIx, GroupSpec, JoinError, Request};
use super::packer::Packer;
use crate::event::{Down, Rank};
use crate::layer::{Drops, Stats};
use crate::stack::{SendError, SendErrorKind};

/// Which transport, and how to set it up. The driver is opened in the
/// polling thread (io_uring binds a ring to the thread that drives it).
#[derive(Clone, Debug)]
pub enum DriverConfig {
    /// Shared memory between processes on this host.
    Shm(ShmConfig),
    /// Plain UDP sockets.
    Udp(UdpConfig),
    /// UDP through io_uring.
    Uring(UringConfig),
}

impl DriverConfig {
    /// Shared memory endpoint `name` in `dir`.
    pub fn shm(dir: impl Into<PathBuf>, name: &str) -> DriverConfig {
        DriverConfig::Shm(ShmConfig {
            dir: dir.into(),
            name: name.into(),
            ..ShmConfig::default()
        })
    }

    /// Opens the driver.
    pub fn open(&self) -> Result<Box<dyn Driver>, DriverError> {
        Ok(match self {
            DriverConfig::Shm(c) => Box::new(ShmDriver::open(c.clone())?),
            DriverConfig::Udp(c) => Box::new(UdpDriver::open(c.clone())?),
            DriverConfig::Uring(c) => Box::new(UringDriver::open(c.clone())?),
        })
    }
}

/// What the polling thread does when there is no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Never sleep (lowest latency; owns a core).
    Spin,
    /// Spin `spins` rounds, yield `yields` rounds, then park on the
    /// driver's doorbell for at most `park_max` (or until the next timer).
    Adaptive {
        /// Empty rounds spent spinning.
        spins: u32,
        /// Empty rounds spent yielding after that.
        yields: u32,
        /// Longest park.
        park_max: Duration,
    },
}

impl Default for Idle {
    fn default() -> Self {
        Idle::Adaptive {
            spins: 2000,
            yields: 100,
            park_max: Duration::from_millis(10),
        }
    }
}

/// Why an endpoint could not start or a group could not be joined.
#[derive(Debug)]
pub enum EndpointError {
    /// The driver could not open.
    Driver(DriverError),
    /// Joining failed.
    Join(JoinError),
    /// The polling thread is gone.
    Stopped,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Driver(e) => write!(f, "{e}"),
            EndpointError::Join(e) => write!(f, "{e}"),
            EndpointError::Stopped => f.write_str("the endpoint's polling thread has stopped"),
        }
    }
}

impl std::error::Error for EndpointError {}

/// Builds an [`Endpoint`].
pub struct EndpointBuilder {
    driver: Option<DriverConfig>,
    core: Option<usize>,
    idle: Idle,
    name: String,
}

impl EndpointBuilder {
    /// The transport.
    pub fn driver(mut self, d: DriverConfig) -> Self {
        self.driver = Some(d);
        self
    }

    /// Pin the polling thread to this CPU core.
    pub fn core(mut self, core: usize) -> Self {
        self.core = Some(core);
        self
    }

    /// Idle strategy of the polling thread.
    pub fn idle(mut self, idle: Idle) -> Self {
        self.idle = idle;
        self
    }

    /// Name of the polling thread.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the polling thread and opens the driver in it.
    pub fn build(self) -> Result<Endpoint, EndpointError> {
        let cfg = self
            .driver
            .ok_or_else(|| EndpointError::Driver(DriverError::Config("no driver chosen".into())))?;
        Endpoint::start(cfg, self.core, self.idle, self.name)
    }
}

const QUEUE: usize = 8192;

struct GroupShared {
    stats: Mutex<(Drops, Stats)>,
    submit: ArrayQueue<Request>,
    events: ArrayQueue<Event>,
    app_waiting: AtomicBool,
    bell: (Mutex<()>, Condvar),
    closed: AtomicBool,
}

struct EpShared {
    commands: Mutex<VecDeque<Command>>,
    stop: AtomicBool,
    parked: AtomicBool,
    waker: Arc<dyn Waker>,
    driver_stats: Mutex<DriverStats>,
    rounds: AtomicU64,
}

impl EpShared {
    fn kick(&self) {
        // SeqCst pairs with the engine's store of `parked` before its last
        // look at the queues: either it sees our request or we see it parked.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

enum Command {
    Join(
        GroupSpec,
        Arc<GroupShared>,
        mpsc::Sender<Result<GroupIx, JoinError>>,
    ),
    Leave(GroupIx),
    Dump(GroupIx, mpsc::Sender<String>),
}

/// An endpoint with its own polling thread. Dropping it stops the thread.
pub struct Endpoint {
    shared: Arc<EpShared>,
    thread: Option<JoinHandle<()>>,
    pool: Pool,
    ctl: Pool,
    addr: String,
    kind: &'static str,
}

struct Ready {
    pool: Pool,
    ctl: Pool,
    addr: String,
    kind: &'static str,
    waker: Arc<dyn Waker>,
}

impl Endpoint {
    /// A builder.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder {
            driver: None,
            core: None,
            idle: Idle::default(),
            name: "tutti-poll".into(),
        }
    }

    fn start(
        cfg: DriverConfig,
        core: Option<usize>,
        idle: Idle,
        name: String,
    ) -> Result<Endpoint, EndpointError> {
        let (tx, rx) = mpsc::channel::<Result<(Ready, Arc<EpShared>), DriverError>>();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: c });
                }
                let driver = match cfg.open() {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let core = Core::new(driver);
                let waker = core.waker();
                let shared = Arc::new(EpShared {
                    commands: Mutex::new(VecDeque::new()),
                    stop: AtomicBool::new(false),
                    parked: AtomicBool::new(false),
                    waker: waker.clone(),
                    driver_stats: Mutex::new(DriverStats::default()),
                    rounds: AtomicU64::new(0),
                });
                let ready = Ready {
                    pool: core.pool().clone(),
                    ctl: core.ctl_pool().clone(),
                    addr: core.driver().local_addr(),
                    kind: core.driver().kind(),
                    waker,
                };
                if tx.send(Ok((ready, shared.clone()))).is_err() {
                    return;
                }
                run(core, shared, idle);
            })
            .map_err(|e| EndpointError::Driver(e.into()))?;
        match rx.recv() {
            Ok(Ok((ready, shared))) => {
                let _ = &ready.waker;
                Ok(Endpoint {
                    shared,
                    thread: Some(thread),
                    pool: ready.pool,
                    ctl: ready.ctl,
                    addr: ready.addr,
                    kind: ready.kind,
                })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(EndpointError::Driver(e))
            }
            Err(_) => Err(EndpointError::Stopped),
        }
    }

    /// This endpoint's driver address (what peers list as a member).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The driver kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Registered buffers for messages to send (zero-copy: take one, write
    /// into it, cast it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Driver counters (refreshed by the polling thread).
    pub fn driver_stats(&self) -> DriverStats {
        self.shared
            .driver_stats
            .lock()
            .map(|s| *s)
            .unwrap_or_default()
    }

    /// Joins a group with a static view.
    pub fn join(&self, spec: GroupSpec) -> Result<Group, EndpointError> {
        let gs = Arc::new(GroupShared {
            stats: Mutex::new((Drops::default(), Stats::default())),
            submit: ArrayQueue::new(QUEUE),
            events: ArrayQueue::new(QUEUE),
            app_waiting: AtomicBool::new(false),
            bell: (Mutex::new(()), Condvar::new()),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        self.shared
            .commands
            .lock()
            .map_err(|_| EndpointError::Stopped)?
            .push_back(Command::Join(spec, gs.clone(), tx));
        self.shared.waker.wake();
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(ix)) => Ok(Group {
                ix,
                shared: gs,
                ep: self.shared.clone(),
                pool: self.pool.clone(),
                ctl: self.ctl.clone(),
            }),
            Ok(Err(e)) => Err(EndpointError::Join(e)),
            Err(_) => Err(EndpointError::Stopped),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A joined group, usable from any thread (one receiving thread at a time).
pub struct Group {
    ix: GroupIx,
    shared: Arc<GroupShared>,
    ep: Arc<EpShared>,
    pool: Pool,
    /// The driver's control buffers, where packed frames are built.
    ctl: Pool,
}

impl Group {
    /// A buffer to write a message into. A thread that takes many takes
    /// them through its own allocator (`endpoint.pool().allocator()`, see
    /// [`tutti_drivers::Allocator`]): no atomic operation per buffer for
    /// the pool's count.
    pub fn alloc(&self) -> Option<Msg> {
        self.pool.alloc()
    }

    /// A frame to write casts into in place (see [`crate::Packer`]), to
    /// cast with [`Group::cast_packer`]. `None` when every frame buffer is
    /// in use (see [`Core::packer`] on how long a frame is held).
    pub fn packer(&self) -> Option<Packer> {
        self.ctl.alloc().map(Packer::new)
    }

    /// Multicasts every cast written into `p`, in order, as one request:
    /// the polling thread takes them down together, and they go out in
    /// the frame they were written in where the stack's fast path takes
    /// them (else copied, as any cast). Refused, the packer comes back
    /// unsent: `WouldBlock` when the queue to the polling thread is full,
    /// `NoView` once the group is closed.
    pub fn cast_packer(&self, p: Packer) -> Result<(), (SendErrorKind, Packer)> {
        match self.push(Request::Packed(p)) {
            Err((kind, Request::Packed(p))) => Err((kind, p)),
            // Taken (what was refused is what was pushed).
            _ => Ok(()),
        }
    }

    /// A message holding a copy of `bytes` (chained when large).
    pub fn message(&self, bytes: &[u8]) -> Option<Msg> {
        self.pool.alloc_copy(bytes).ok()
    }

    /// Hands `r` to the polling thread; refused, it comes back, with
    /// `NoView` once the group is closed, `WouldBlock` while the queue is
    /// full.
    fn push(&self, r: Request) -> Result<(), (SendErrorKind, Request)> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err((SendErrorKind::NoView, r));
        }
        self.shared
            .submit
            .push(r)
            .map_err(|r| (SendErrorKind::WouldBlock, r))?;
        self.ep.kick();
        Ok(())
    }

    /// `push` for a message's request: a refused message comes back; a
    /// refused down event is dropped.
    fn submit(&self, r: Request) -> Result<(), SendError> {
        match self.push(r) {
            Err((kind, Request::Cast(msg) | Request::Send(_, msg))) => Err(SendError { kind, msg }),
            _ => Ok(()),
        }
    }

    /// Multicasts `msg` (reliable, FIFO). `WouldBlock` hands the message
    /// back when the queue to the polling thread is full.
    pub fn cast(&self, msg: Msg) -> Result<(), SendError> {
        self.submit(Request::Cast(msg))
    }

    /// Sends `msg` to the member of rank `dst`.
    pub fn send(&self, dst: Rank, msg: Msg) -> Result<(), SendError> {
        self.submit(Request::Send(dst, msg))
    }

    /// Acknowledges processing (application-level stability).
    pub fn ack(&self, src: Rank, seq: u64) {
        let _ = self.submit(Request::Down(Down::Ack { src, seq }));
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.shared.events.pop()
    }

    /// The next event, waiting up to `timeout` for one.
    pub fn recv(&self, timeout: Duration) -> Option<Event> {
        if let Some(e) = self.shared.events.pop() {
            return Some(e);
        }
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &self.shared.bell;
        loop {
            self.shared.app_waiting.store(true, Ordering::SeqCst);
            // Pairs with the polling thread's fence after it pushes events.
            std::sync::atomic::fence(Ordering::SeqCst);
            let guard = lock.lock().ok()?;
            if let Some(e) = self.shared.events.pop() {
                self.shared.app_waiting.store(false, Ordering::SeqCst);
                return Some(e);
            }
            let now = Instant::now();
            if now >= deadline {
                self.shared.app_waiting.store(false, Ordering::SeqCst);
                return None;
            }
            let _ = cv.wait_timeout(guard, deadline - now);
        }
    }

    /// The stack's drop counters and activity (refreshed by the polling
    /// thread every 50 ms).
    pub fn stats(&self) -> (Drops, Stats) {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Every layer's state, one line each (diagnostics); empty if the
    /// polling thread does not answer within a second.
    pub fn dump(&self) -> String {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut c) = self.ep.commands.lock() {
            c.push_back(Command::Dump(self.ix, tx));
        }
        self.ep.waker.wake();
        rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
    }

    /// Answers `Event::Block` (with `GmsConfig::app_block_ok` set): this
    /// member sends nothing more in the current view.
    pub fn block_ok(&self) {
        let _ = self.submit(Request::Down(Down::BlockOk));
    }

    /// Answers `Event::GetState` (with `GmsConfig::app_state` set): the
    /// application's state as of that event, for a joiner.
    pub fn give_state(&self, state: &[u8]) {
        let _ = self.submit(Request::Down(Down::State(state.into())));
    }

    /// Leaves the group. With membership (`vsync`) the others install a
    /// view without this member and `Event::Exit` follows here once they
    /// have; wait for it with `recv` before dropping the group. Without
    /// membership this endpoint just stops taking part (the others keep
    /// the old view).
    pub fn leave(&self) {
        let _ = self.submit(Request::Down(Down::Leave));
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Ok(mut c) = self.ep.commands.lock() {
            c.push_back(Command::Leave(self.ix));
        }
        self.ep.waker.wake();
    }
}

struct Joined {
    ix: GroupIx,
    shared: Arc<GroupShared>,
    /// Events the application has no room for yet.
    overflow: VecDeque<Event>,
    live: bool,
}

fn run(mut core: Core, shared: Arc<EpShared>, idle: Idle) {
    let mut groups: Vec<Joined> = Vec::new();
    let mut empty_rounds: u32 = 0;
    let mut last_stats = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let mut work = 0usize;
        if let Ok(mut cmds) = shared.commands.try_lock() {
            while let Some(c) = cmds.pop_front() {
                work += 1;
                match c {
                    Command::Join(spec, gs, reply) => {
                        let r = core.join(&spec);
                        if let Ok(ix) = r {
                            groups.push(Joined {
                                ix,
                                shared: gs,
                                overflow: VecDeque::new(),
                                live: true,
                            });
                        }
                        let _ = reply.send(r);
                    }
                    Command::Leave(ix) => {
                        if let Some(j) = groups.iter_mut().find(|j| j.ix == ix) {
                            // What the application submitted before it
                            // dropped the group still goes out.
                            while let Some(r) = j.shared.submit.pop() {
                                core.submit(j.ix, r);
                            }
                            j.live = false;
                            j.overflow.clear();
                        }
                    }
                    Command::Dump(ix, reply) => {
                        let _ = reply.send(format!(
                            "{}polling thread: {} rounds, {} empty in a row\n",
                            core.dump(ix),
                            shared.rounds.load(Ordering::Relaxed),
                            empty_rounds
                        ));
                    }
                }
            }
        }
        for j in groups.iter().filter(|j| j.live) {
            while let Some(r) = j.shared.submit.pop() {
                core.submit(j.ix, r);
                work += 1;
            }
        }
        match core.poll() {
            Ok(w) => work += w,
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
        for j in groups.iter_mut() {
            let mut delivered = false;
            while let Some(e) = core.next_event(j.ix) {
                if j.live {
                    j.overflow.push_back(e);
                }
            }
            while let Some(e) = j.overflow.pop_front() {
                if let Err(e) = j.shared.events.push(e) {
                    j.overflow.push_front(e);
                    break;
                }
                delivered = true;
            }
            // SeqCst fence between the pushes above and the load of
            // `app_waiting` pairs with the application's fence between its
            // store of `app_waiting` and its look at the queue (Dekker):
            // either it sees our event or we see it waiting. Only the
            // application clears the flag: clearing it here raced with an
            // application that had already taken the event and was about
            // to wait again, which then slept through the next event.
            if delivered {
                std::sync::atomic::fence(Ordering::SeqCst);
                if j.shared.app_waiting.load(Ordering::SeqCst) {
                    // Under the lock: the application checks the queue and
                    // starts waiting under it, so the notice cannot fall in
                    // between.
                    let (lock, cv) = &j.shared.bell;
                    let _held = lock.lock();
                    cv.notify_all();
                }
            }
        }
        shared.rounds.fetch_add(1, Ordering::Relaxed);
        if last_stats.elapsed() > Duration::from_millis(50) {
            last_stats = Instant::now();
            if let Ok(mut s) = shared.driver_stats.lock() {
                *s = core.driver_stats();
            }
            publish_stats(&core, &groups);
        }
        if work > 0 {
            empty_rounds = 0;
            continue;
        }
        empty_rounds = empty_rounds.saturating_add(1);
        match idle {
            Idle::Spin => std::hint::spin_loop(),
            Idle::Adaptive {
                spins,
                yields,
                park_max,
            } => {
                if empty_rounds <= spins {
                    std::hint::spin_loop();
                } else if empty_rounds <= spins + yields {
                    std::thread::yield_now();
                } else {
                    shared.parked.store(true, Ordering::SeqCst);
                    std::sync::atomic::fence(Ordering::SeqCst);
                    let pending = groups.iter().any(|j| !j.shared.submit.is_empty())
                        || shared
                            .commands
                            .lock()
                            .map(|c| !c.is_empty())
                            .unwrap_or(false)
                        || shared.stop.load(Ordering::SeqCst);
                    if !pending {
                        let _ = core.park(park_max);
                    }
                    shared.parked.store(false, Ordering::SeqCst);
                }
            }
        }
    }
    // Stopping: what the application submitted before it dropped the
    // endpoint still goes out (once; there is nobody left to repair it).
    for j in groups.iter().filter(|j| j.live) {
        while let Some(r) = j.shared.submit.pop() {
            core.submit(j.ix, r);
        }
    }
    let t = Instant::now();
    while groups.iter().any(|j| core.backlog(j.ix) > 0) && t.elapsed() < STOP_FLUSH {
        if core.poll().is_err() {
            break;
        }
    }
    let _ = core.poll();
    if let Ok(mut s) = shared.driver_stats.lock() {
        *s = core.driver_stats();
    }
    publish_stats(&core, &groups);
}

/// Longest a stopping endpoint spends sending what was submitted.
const STOP_FLUSH: Duration = Duration::from_millis(100);

fn publish_stats(core: &Core, groups: &[Joined]) {
    for j in groups {
        if let (Some(st), Ok(mut s)) = (core.group_stats(j.ix), j.shared.stats.lock()) {
            *s = st;
        }
    }
}
