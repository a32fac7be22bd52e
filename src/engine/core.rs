//! The engine core: one driver, the groups joined on it, a timer wheel.
//! `poll()` does one round of work (receive, timers, transmit) and says
//! how much it did; it never blocks. The threaded endpoint runs it in a
//! pinned polling thread; an application that wants no thread hop at all
//! drives it inline from its own thread (U-Net style).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tutti_drivers::{Allocator, Driver, DriverError, DriverStats, Msg, PeerId, Pool, To, Tx};

use crate::event::{Addr, Dest, Down, EndpointId, JoinReq, Rank, Time, Up, View, ViewId};
use crate::layer::{Drops, Stats};
use crate::stack::{build, GroupStack, SendError, SendErrorKind, StackConfig};
use crate::wire::{com, fast};

use super::clock::Clock;
use super::packer::Packer;
use super::routes::Routes;
use super::wheel::TimerWheel;

/// What the application gets from a group: the up events of its stack.
/// `Stack::poll_event` already leaves out the internal ones (`Recv`,
/// `Progress`, raw layer messages), so only the application's variants
/// (`Cast`, `Send`, `View`, `Block`, `Stable`, `Suspect`, `Exit`, `Lost`)
/// ever arrive here.
pub type Event = Up;

/// A group to join with a static view (membership from configuration).
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// Group name (frames carry a hash of it).
    pub name: String,
    /// Stack spec or preset.
    pub stack: String,
    /// Driver addresses of the members, in rank order; this endpoint's
    /// own address must be among them.
    pub members: Vec<String>,
    /// Layer parameters (the group id is derived from `name`).
    pub config: StackConfig,
    /// Use the compiled (static) composition when one exists for `stack`.
    pub prefer_static: bool,
}

impl GroupSpec {
    /// A spec with default layer parameters.
    pub fn new(name: &str, stack: &str, members: Vec<String>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            stack: stack.into(),
            members,
            config: StackConfig::default(),
            prefer_static: true,
        }
    }
}

/// Why joining failed.
#[derive(Debug)]
pub enum JoinError {
    /// Bad stack spec.
    Spec(crate::stack::SpecError),
    /// The member list is unusable; the text says why.
    Members(String),
    /// The driver refused a peer address.
    Driver(DriverError),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Spec(e) => write!(f, "{e}"),
            JoinError::Members(s) => write!(f, "bad member list: {s}"),
            JoinError::Driver(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JoinError {}

/// FNV-1a, for group ids and endpoint ids derived from names.
pub fn fnv64(s: &str) -> u64 {
    crate::event::fnv1a(crate::event::FNV_OFFSET, s.as_bytes())
}

/// A request the application made of a group.
#[derive(Debug)]
pub enum Request {
    /// Multicast.
    Cast(Msg),
    /// Point-to-point.
    Send(Rank, Msg),
    /// Any other down event.
    Down(Down),
    /// Multicasts of a frame written in place, in order (see [`Packer`]):
    /// as many casts as it holds, which go down together.
    Packed(Packer),
}

struct Slot {
    gid: u32,
    /// The stack's spec id (compact cookies hash it).
    sid: u16,
    stack: Box<dyn GroupStack>,
    routes: Routes,
    events: VecDeque<Event>,
    backlog: VecDeque<Request>,
    /// Casts the stack accepted since the current view was installed
    /// at its bottom (sequence numbers start again in every view).
    casts: u64,
    /// A frame went into the stack since the last poll: a delivery may
    /// have left post-processing ([`crate::Stack::post`]).
    received: bool,
}

/// Frames the engine itself refused before any stack saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineDrops {
    /// Not a tutti frame or too short to name a group.
    pub bad_frame: u64,
    /// For a group this endpoint has not joined.
    pub unknown_group: u64,
    /// Membership control to an address the driver refused.
    pub bad_address: u64,
}

/// The engine core. See the module docs.
pub struct Core {
    driver: Box<dyn Driver>,
    clk: Clock,
    groups: Vec<Slot>,
    wheel: TimerWheel,
    rx: Vec<Msg>,
    txq: VecDeque<Tx>,
    expired: Vec<u32>,
    drops: EngineDrops,
    last_maintain: Time,
    /// Time read at the start of the last `poll` that read it.
    clock: Time,
    /// Polls in a row that found nothing to do.
    idle: u32,
    /// Distinguishes this incarnation of the endpoint.
    nonce: u64,
    /// The application's buffers ([`Core::alloc`]).
    alloc: Allocator,
}

/// A cast through `s`'s stack, its fast path's frame handed to the driver
/// before the stack makes the own delivery (when the routes are current:
/// after a view change the frame waits for `flush`), the delivery put
/// straight on the group's event queue. Returns whether the stack has
/// output for `flush`.
#[inline]
fn cast_now(
    s: &mut Slot,
    now: Time,
    msg: Msg,
    driver: &mut dyn Driver,
    txq: &mut VecDeque<Tx>,
) -> Result<bool, SendError> {
    let routes = &s.routes;
    let gen = s.stack.views_gen();
    let all = routes.npeers == driver.peer_count();
    let mut send = |frame: &Msg| {
        // Made in the current view (the generations agree): to all, unless
        // frames wait before it.
        if gen != routes.gen || !all || !txq.is_empty() {
            return false;
        }
        // Taken either way: what the driver cannot post now stays in `txq`.
        let _ = driver.send_ref(To::All, frame, txq);
        true
    };
    s.stack.cast_to(now, msg, &mut send, &mut s.events)
}

fn incarnation_nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    fnv64(&format!("{}:{t}", std::process::id()))
}

/// How often the driver's housekeeping runs, ns.
const MAINTAIN_NS: u64 = 1_000_000;

/// On a run of idle polls, the clock is read on every this many.
const IDLE_CLOCK_EVERY: u32 = 8;

/// Identifies a joined group inside one `Core`.
pub type GroupIx = usize;

impl Core {
    /// A core over `driver`.
    pub fn new(driver: Box<dyn Driver>) -> Core {
        Core {
            alloc: driver.pool().allocator(),
            driver,
            clk: Clock::new(),
            groups: Vec::new(),
            wheel: TimerWheel::new(100_000, 1024),
            rx: Vec::with_capacity(64),
            txq: VecDeque::with_capacity(256),
            expired: Vec::new(),
            drops: EngineDrops::default(),
            last_maintain: Time(0),
            clock: Time(0),
            idle: 0,
            nonce: incarnation_nonce(),
        }
    }

    /// Time since this core started.
    #[inline]
    pub fn now(&self) -> Time {
        self.clk.precise()
    }

    /// The driver.
    pub fn driver(&self) -> &dyn Driver {
        self.driver.as_ref()
    }

    /// Buffers for frames this endpoint sends.
    pub fn pool(&self) -> &Pool {
        self.driver.pool()
    }

    /// The driver's control buffers: the layers' own messages, packed
    /// frames, [`Core::packer`]'s frames.
    pub fn ctl_pool(&self) -> &Pool {
        self.driver.ctl_pool()
    }

    /// A buffer to write a message into: [`Pool::alloc`] on [`Core::pool`],
    /// with the pool's count of buffers in use taken for many buffers at
    /// once (a [`tutti_drivers::Allocator`]): no atomic operation per
    /// buffer for it. `None` when every buffer is in use.
    #[inline]
    pub fn alloc(&mut self) -> Option<Msg> {
        self.alloc.alloc()
    }

    /// A frame to write a batch of casts into in place (a [`Packer`]),
    /// from the driver's control buffers, where packed frames are built:
    /// its casts, finished and cast with [`Core::cast_batch`], go out in
    /// it with no copy (see [`Packer`]). `None` when every control buffer
    /// is in use. A frame holds one of the buffers the layers' own
    /// messages need until its casts are stable and their deliveries
    /// dropped: an application that keeps its own deliveries for long
    /// keeps those buffers (copy what it keeps, or cast buffers of its
    /// own with [`Core::alloc`]).
    pub fn packer(&self) -> Option<Packer> {
        self.ctl_pool().alloc().map(Packer::new)
    }

    /// Joins a group. With a membership layer in the stack (`gms`, as in
    /// the `vsync` preset) `spec.members` are contacts: the group is found
    /// through them (or founded) and views come and go; without one they
    /// are the static view, in rank order.
    pub fn join(&mut self, spec: &GroupSpec) -> Result<GroupIx, JoinError> {
        let parsed = crate::stack::Spec::parse(&spec.stack).map_err(JoinError::Spec)?;
        if parsed.provides(crate::layer::Prop::Membership) {
            return self.join_dynamic(spec);
        }
        let me = self.driver.local_addr();
        let n = spec.members.len();
        if n == 0 || n > crate::event::MAX_MEMBERS {
            return Err(JoinError::Members(format!("{n} members")));
        }
        let rank = spec.members.iter().position(|m| *m == me).ok_or_else(|| {
            JoinError::Members(format!("this endpoint ({me}) is not in {:?}", spec.members))
        })?;
        let mut peers = Vec::with_capacity(n);
        for (i, m) in spec.members.iter().enumerate() {
            peers.push(if i == rank {
                None
            } else {
                Some(self.driver.add_peer(m).map_err(JoinError::Driver)?)
            });
        }
        let (gid, mut stack) = self.build_stack(spec)?;
        let ids: Vec<EndpointId> = spec.members.iter().map(|m| fnv64(m)).collect();
        let view = View::new(
            ViewId {
                ltime: 1,
                coord: ids[0],
            },
            ids,
            rank as Rank,
        )
        .map_err(|e| JoinError::Members(e.into()))?;
        let tag = view.id.tag();
        self.clock = self.clk.now();
        stack.install_view(self.clock, view);
        Ok(self.add_slot(gid, stack, tag, peers))
    }

    /// The stack for `spec`, and its group id.
    fn build_stack(&self, spec: &GroupSpec) -> Result<(u32, Box<dyn GroupStack>), JoinError> {
        let mut cfg = spec.config.clone();
        cfg.group = fnv64(&spec.name) as u32;
        let stack = build(
            &spec.stack,
            &cfg,
            self.driver.ctl_pool().clone(),
            spec.prefer_static,
        )
        .map_err(JoinError::Spec)?;
        Ok((cfg.group, stack))
    }

    /// Adds a joined group and runs its first output.
    fn add_slot(
        &mut self,
        gid: u32,
        stack: Box<dyn GroupStack>,
        tag: u32,
        peers: Vec<Option<PeerId>>,
    ) -> GroupIx {
        self.groups.push(Slot {
            gid,
            sid: stack.spec().id(),
            stack,
            routes: Routes {
                tag,
                peers,
                older: VecDeque::new(),
                cookies: Vec::new(),
                older_cookies: Vec::new(),
                gen: 0,
                npeers: 0,
            },
            events: VecDeque::new(),
            backlog: VecDeque::new(),
            casts: 0,
            received: false,
        });
        self.recount_peers();
        let g = self.groups.len() - 1;
        self.flush(g);
        g
    }

    fn join_dynamic(&mut self, spec: &GroupSpec) -> Result<GroupIx, JoinError> {
        let me = self.driver.local_addr();
        let (gid, mut stack) = self.build_stack(spec)?;
        let now = self.clk.now();
        self.clock = now;
        stack.join(
            now,
            JoinReq {
                me: self.incarnation(&me),
                addr: Addr::from(me.as_str()),
                contacts: spec
                    .members
                    .iter()
                    .map(|m| Addr::from(m.as_str()))
                    .collect(),
            },
        );
        Ok(self.add_slot(gid, stack, 0, Vec::new()))
    }

    /// This endpoint's id in groups with membership: its address and an
    /// incarnation (a restarted process at the same address is a new
    /// member).
    pub fn incarnation(&self, addr: &str) -> EndpointId {
        fnv64(addr) ^ self.nonce.rotate_left(23)
    }

    /// Counts the distinct driver peers of each group's current view
    /// (driver peer ids are dense and a view has no duplicate members).
    fn recount_peers(&mut self) {
        for s in &mut self.groups {
            s.routes.npeers = s.routes.peers.iter().flatten().count();
        }
    }

    /// Multicasts in group `g` (inline use). The stack sees the time the
    /// last `poll` read (timers only run in `poll`, so a fresher clock read
    /// per message would buy nothing and cost a third of a small cast).
    pub fn cast(&mut self, g: GroupIx, msg: Msg) -> Result<(), SendError> {
        let now = self.clock;
        let Some(s) = self.groups.get_mut(g) else {
            return Err(SendError {
                kind: SendErrorKind::NoView,
                msg,
            });
        };
        let pending = cast_now(s, now, msg, self.driver.as_mut(), &mut self.txq)?;
        s.casts += 1;
        if pending {
            self.flush(g);
        }
        self.transmit();
        Ok(())
    }

    /// Multicasts the messages of `msgs` in group `g` as one batch (inline
    /// use): on the fast path consecutive casts are packed into shared
    /// frames, one driver send for the lot. Takes messages from the front
    /// until the stack refuses one for back-pressure (it stays in `msgs`)
    /// or `msgs` is empty; returns how many it took. A message refused for
    /// good (too large) ends the batch with its error.
    pub fn cast_batch(&mut self, g: GroupIx, msgs: &mut VecDeque<Msg>) -> Result<usize, SendError> {
        let now = self.clock;
        let Some(s) = self.groups.get_mut(g) else {
            // As `cast` answers: the first message comes back with the error.
            return match msgs.pop_front() {
                Some(msg) => Err(SendError {
                    kind: SendErrorKind::NoView,
                    msg,
                }),
                None => Ok(0),
            };
        };
        let (n, res) = match s.stack.cast_batch(now, msgs) {
            Ok(n) => (n, Ok(())),
            Err((n, e)) => (n, Err(e)),
        };
        s.casts += n as u64;
        self.flush(g);
        self.transmit();
        res.map(|()| n)
    }

    /// Sends to `dst` in group `g` (inline use; time as for `cast`).
    pub fn send(&mut self, g: GroupIx, dst: Rank, msg: Msg) -> Result<(), SendError> {
        let now = self.clock;
        let Some(s) = self.groups.get_mut(g) else {
            return Err(SendError {
                kind: SendErrorKind::NoView,
                msg,
            });
        };
        s.stack.send(now, dst, msg)?;
        self.flush(g);
        self.transmit();
        Ok(())
    }

    /// Queues a request; it is carried out when the stack takes it (the
    /// threaded endpoint's path: back-pressure waits here).
    pub fn submit(&mut self, g: GroupIx, r: Request) {
        if let Some(s) = self.groups.get_mut(g) {
            match r {
                Request::Packed(p) => s.backlog.extend(p.into_casts().map(Request::Cast)),
                r => s.backlog.push_back(r),
            }
        }
    }

    /// Next event of group `g`.
    pub fn next_event(&mut self, g: GroupIx) -> Option<Event> {
        self.groups.get_mut(g)?.events.pop_front()
    }

    /// How many casts this member has made in group `g`'s current view
    /// (its next sequence number, outside a flush: casts made while the
    /// view changes may be numbered in the next one).
    pub fn casts_sent(&self, g: GroupIx) -> Option<u64> {
        self.groups.get(g).map(|s| s.casts)
    }

    /// Requests not yet taken by group `g`'s stack.
    pub fn backlog(&self, g: GroupIx) -> usize {
        self.groups.get(g).map_or(0, |s| s.backlog.len())
    }

    /// Drops and activity of group `g`'s stack.
    pub fn group_stats(&self, g: GroupIx) -> Option<(Drops, Stats)> {
        self.groups
            .get(g)
            .map(|s| (s.stack.drops().clone(), *s.stack.stats()))
    }

    /// Every layer's state in group `g`, one line each (diagnostics).
    pub fn dump(&self, g: GroupIx) -> String {
        self.groups.get(g).map_or(String::new(), |s| {
            format!(
                "{}engine: now {} timer {:?} wheel {:?} backlog {} drops {:?}\ndriver: {:?}\n{}\n",
                s.stack.dump(),
                self.now(),
                s.stack.poll_timeout(),
                self.wheel.due_of(g as u32),
                s.backlog.len(),
                s.stack.drops().nonzero().collect::<Vec<_>>(),
                self.driver.stats(),
                self.driver.describe()
            )
        })
    }

    /// Frames refused before any stack.
    pub fn drops(&self) -> EngineDrops {
        self.drops
    }

    /// Driver counters.
    pub fn driver_stats(&self) -> DriverStats {
        self.driver.stats()
    }

    /// Earliest timer of any group.
    pub fn next_deadline(&self) -> Option<Time> {
        self.wheel.next()
    }

    /// Blocks until something may have arrived, the waker was rung, the
    /// next timer is due, or `max` passed.
    pub fn park(&mut self, max: Duration) -> Result<(), DriverError> {
        let mut t = max;
        if let Some(d) = self.wheel.next() {
            t = t.min(Duration::from_nanos(d.since(self.now())));
        }
        if t.is_zero() {
            return Ok(());
        }
        self.driver.park(t)
    }

    /// Wakes a parked `park` from another thread.
    pub fn waker(&self) -> Arc<dyn tutti_drivers::Waker> {
        self.driver.waker()
    }

    fn demux(&self, frame: &Msg) -> Option<usize> {
        if self.groups.len() == 1 {
            return Some(0);
        }
        let b = frame.front();
        if fast::is_compact(b) {
            let c = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
            return self.groups.iter().position(|s| s.routes.knows(c));
        }
        if b.len() < com::LEN || b[..2] != com::MAGIC.to_be_bytes() {
            return None;
        }
        let gid = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        self.groups.iter().position(|s| s.gid == gid)
    }

    /// Moves group `g`'s events to its event queue and its output to the
    /// transmit queue; re-arms its timer. Events go first: a view they
    /// announce must be known before the frames made in it are routed.
    #[inline]
    fn flush(&mut self, g: GroupIx) {
        let s = &mut self.groups[g];
        let out = s.stack.output(&mut s.events);
        let r = &mut s.routes;
        let mut remap = false;
        if out.views_gen != r.gen {
            s.casts = 0;
            remap = r.update(out.views_gen, out.views, s.gid, s.sid, self.driver.as_mut());
        }
        while let Some((dst, frame)) = out.tx.pop_front() {
            let peers = r.of(&frame);
            match dst {
                Dest::All if peers.is_none() && r.npeers == self.driver.peer_count() => {
                    self.txq.push_back(Tx { to: To::All, frame })
                }
                Dest::All => {
                    for p in peers.unwrap_or(&r.peers).iter().flatten() {
                        self.txq.push_back(Tx {
                            to: To::Peer(*p),
                            frame: frame.share(),
                        });
                    }
                }
                Dest::Rank(d) => {
                    if let Some(Some(p)) = peers.unwrap_or(&r.peers).get(d as usize) {
                        self.txq.push_back(Tx {
                            to: To::Peer(*p),
                            frame,
                        });
                    }
                }
                Dest::Addr(a) => match self.driver.add_peer(&a) {
                    Ok(p) => self.txq.push_back(Tx {
                        to: To::Peer(p),
                        frame,
                    }),
                    Err(_) => self.drops.bad_address += 1,
                },
            }
        }
        match out.timer {
            Some(Some(t)) => self.wheel.schedule(g as u32, t),
            Some(None) => self.wheel.cancel(g as u32),
            None => {}
        }
        if remap {
            self.recount_peers();
        }
    }

    /// Hands queued frames to the driver at once (inline casts do not wait
    /// for the next `poll`: that would add a poll round to every message's
    /// latency). A driver error here is not lost: the frames stay queued
    /// and the next `poll` reports it.
    #[inline]
    fn transmit(&mut self) {
        if !self.txq.is_empty() {
            let _ = self.driver.send(&mut self.txq);
        }
    }

    /// One round of work; returns how much was done (0: idle).
    ///
    /// On a run of idle polls the clock is read on every
    /// `IDLE_CLOCK_EVERY`th only: a frame arriving then, or a timer coming
    /// due, sees a time at most that many idle polls old (well under a
    /// microsecond, against timers of milliseconds), and the poll that
    /// would notice the frame comes round sooner.
    pub fn poll(&mut self) -> Result<usize, DriverError> {
        let mut work = 0;
        let now = if self.idle % IDLE_CLOCK_EVERY == 0 {
            let t = self.clk.now();
            self.clock = t;
            t
        } else {
            self.clock
        };
        // Requests that wait for their stack's window.
        for g in 0..self.groups.len() {
            let s = &mut self.groups[g];
            let mut moved = false;
            let mut pending = false;
            // Requests that backed up go as one batch: casts are packed.
            let batch = s.backlog.len() > 1;
            if batch {
                s.stack.begin_batch();
            }
            while let Some(r) = s.backlog.pop_front() {
                let res = match r {
                    Request::Cast(m) => {
                        // Alone, a cast's frame goes out at once (as inline).
                        let r = if batch {
                            s.stack.cast(now, m).map(|()| true)
                        } else {
                            cast_now(s, now, m, self.driver.as_mut(), &mut self.txq)
                        };
                        match r {
                            Ok(p) => {
                                s.casts += 1;
                                Ok(p)
                            }
                            Err(e) => Err(Request::Cast(e.msg)),
                        }
                    }
                    Request::Send(d, m) => s
                        .stack
                        .send(now, d, m)
                        .map(|()| true)
                        .map_err(|e| Request::Send(d, e.msg)),
                    Request::Down(d) => {
                        s.stack.handle_down(now, d);
                        Ok(true)
                    }
                    // Made casts by `submit`; taken apart here all the
                    // same, in order, should one come this way.
                    Request::Packed(p) => {
                        for (i, m) in p.into_casts().enumerate() {
                            s.backlog.insert(i, Request::Cast(m));
                        }
                        Ok(false)
                    }
                };
                match res {
                    Ok(p) => {
                        moved = true;
                        pending |= p;
                    }
                    Err(r) if !s.stack.ready() => {
                        s.backlog.push_front(r);
                        break;
                    }
                    // Refused for good (bad rank, too large): dropped.
                    Err(_) => moved = true,
                }
            }
            if batch {
                s.stack.end_batch();
                pending = true;
            }
            // What the last delivery left to the layers, unless a cast
            // did it (after its frame): done before this member idles.
            if std::mem::take(&mut s.received) && s.stack.post() {
                moved = true;
                pending = true;
            }
            if moved {
                work += 1;
            }
            if pending {
                self.flush(g);
            }
        }
        // Frames from the network.
        let n = self.driver.recv(&mut self.rx, 64)?;
        if n > 0 {
            self.deliver_rx(now);
        }
        work += n;
        // Timers.
        if self.wheel.due(now) {
            work += self.expire(now);
        }
        // Out to the network.
        if !self.txq.is_empty() {
            work += self.driver.send(&mut self.txq)?;
        }
        if now.since(self.last_maintain) >= MAINTAIN_NS {
            self.last_maintain = now;
            self.driver.maintain()?;
        }
        self.idle = if work == 0 {
            self.idle.wrapping_add(1)
        } else {
            0
        };
        Ok(work)
    }

    /// Hands the frames `recv` put in `rx` to their groups' stacks.
    #[inline]
    fn deliver_rx(&mut self, now: Time) {
        // One frame (a round trip's): no draining iterator to set up.
        if self.rx.len() == 1 {
            if let Some(frame) = self.rx.pop() {
                self.deliver_frame(now, frame);
            }
            return;
        }
        let mut rx = std::mem::take(&mut self.rx);
        for frame in rx.drain(..) {
            self.deliver_frame(now, frame);
        }
        self.rx = rx;
    }

    /// Hands one frame to its group's stack.
    #[inline(always)]
    fn deliver_frame(&mut self, now: Time, frame: Msg) {
        match self.demux(&frame) {
            Some(g) => {
                let s = &mut self.groups[g];
                s.received = true;
                if s.stack.receive_to(now, frame, &mut s.events) {
                    self.flush(g);
                }
            }
            None => {
                let b = frame.front();
                if b.len() < com::LEN || b[..2] != com::MAGIC.to_be_bytes() {
                    self.drops.bad_frame += 1;
                } else {
                    self.drops.unknown_group += 1;
                }
            }
        }
    }

    /// Runs the timers due at `now`; returns how many groups had some.
    fn expire(&mut self, now: Time) -> usize {
        let mut work = 0;
        self.expired.clear();
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(now, &mut expired);
        for &g in &expired {
            if let Some(s) = self.groups.get_mut(g as usize) {
                s.stack.handle_timeout(now);
                self.flush(g as usize);
                work += 1;
            }
        }
        self.expired = expired;
        work
    }
}
