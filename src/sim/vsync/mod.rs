//! Deterministic simulation of dynamic groups: processes found a group by
//! joining each other, cast while they are members, and live through
//! crashes, coordinator crashes in the middle of a flush, joins, leaves,
//! partitions and loss. [`check`] judges the histories: view agreement,
//! virtual synchrony, self-delivery, FIFO, no duplicates, nothing
//! invented, delivery in the sending view, and liveness (one view of all
//! live processes within a bound once the faults stop).
//!
//! Everything random comes from the seed; `TUTTI_SEED=<n>` replays a run.

mod app;
pub mod check;
pub mod plan;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use tutti_drivers::{Msg, Pool, PoolConfig};

use crate::event::{Addr, Dest, EndpointId, JoinReq, PubKey, Time, View};
use crate::layers::gms::GmsConfig;
use crate::layers::nak::NakConfig;
use crate::layers::stable::StableConfig;
use crate::layers::suspect::SuspectConfig;
use crate::secure::{Identity, Secure};
use crate::stack::{build, GroupStack, StackConfig};
use crate::wire::com::LEN as COM_LEN;
use check::Checker;
pub use plan::{Fault, Plan};

use super::rng::Rng;

const MS: u64 = 1_000_000;

/// Outcome of one run.
#[derive(Debug, Default)]
pub struct Report {
    /// Seed that replays the run.
    pub seed: u64,
    /// The plan, one line.
    pub plan: String,
    /// What went wrong; empty when every check held.
    pub violations: Vec<String>,
    /// Casts delivered, all processes.
    pub delivered: u64,
    /// Views installed, all processes.
    pub views: u64,
    /// Frames sent.
    pub frames: u64,
    /// When the live processes agreed on one view (virtual time).
    pub settled: Option<Time>,
    /// How long after the faults stopped that took, ns (0 if they agreed
    /// already).
    pub settle_ns: Option<u64>,
    /// Each process's layer state at the end, when the run failed.
    pub dump: String,
    /// Secure runs with an intruder: whether the group refused it (it may
    /// also never have reached a member, and founded a group of its own).
    pub intruder_refused: Option<bool>,
    /// Digest of every frame sent (bytes and sender, in order): the same
    /// plan run with the fast path on and off must give the same.
    pub wire: u64,
    /// Digest of every delivery and view (receiver, sender, payload, in
    /// order).
    pub delivery: u64,
    /// The same, without each process's deliveries of its own casts.
    pub delivery_others: u64,
    /// Deliveries of a process's own casts (none with `discard_own`).
    pub own_delivered: u64,
    /// Activity of all processes' stacks (fast-path counters among them).
    pub stats: crate::layer::Stats,
}

impl Report {
    /// Whether every check held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Life {
    Alive,
    Crashed,
    Left,
}

struct Proc {
    id: EndpointId,
    addr: Addr,
    stack: Box<dyn GroupStack>,
    rx: Pool,
    tx: Pool,
    life: Life,
    view: Option<Arc<View>>,
    casts: u32,
    wake: Option<Time>,
    leaving: bool,
    /// The application's state: every cast it holds (delivered, or got by
    /// state transfer).
    state: std::collections::BTreeSet<(EndpointId, u32)>,
    /// The state came by transfer and the view it goes with is next.
    transferred: bool,
    /// Holds a key that is not authorized (secure runs).
    intruder: bool,
}

/// Processes a secure run may start (their keys are authorized).
const KEYED_PROCS: usize = 16;

fn identity(seed: u64, i: usize) -> Identity {
    let mut b = [0x5e_u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    Identity::from_seed(b)
}

enum Ev {
    Frame { to: usize, bytes: Vec<u8> },
    Wake(usize),
    Cast(usize),
    BlockOk(usize),
    Fault(usize),
    Heal,
    Intruder,
}

struct Sim<'a> {
    plan: &'a Plan,
    cfg: StackConfig,
    rng: Rng,
    now: Time,
    queue: BinaryHeap<Reverse<(Time, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    procs: Vec<Proc>,
    by_addr: HashMap<Addr, usize>,
    /// Side of each process while a partition lasts.
    side: Option<Vec<u8>>,
    check: Checker,
    frames: u64,
    settled: Option<Time>,
    /// When the faults stop.
    quiet: Time,
    /// Secure runs: the keys of processes `0..KEYED_PROCS`.
    authorized: Vec<PubKey>,
    /// The intruder's id, once started.
    intruder: Option<EndpointId>,
    intruder_refused: bool,
    /// Digest of every frame sent, in order, with its sender.
    wire: u64,
    /// Digest of every delivery, in order, with its receiver.
    delivery: u64,
    /// The same without own casts.
    delivery_others: u64,
    /// Deliveries of own casts.
    own_delivered: u64,
}

/// The view (of `views`) a frame was made in: by the view tag of a full
/// header, by the cookie of a compact one.
pub fn view_of(
    bytes: &[u8],
    group: u32,
    stack: u16,
    views: &std::collections::VecDeque<Arc<View>>,
) -> Option<Arc<View>> {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if crate::wire::fast::is_compact(bytes) {
        let c = word(0)?;
        return views
            .iter()
            .find(|v| {
                let tag = v.id.tag();
                (0..v.size()).any(|r| {
                    crate::wire::fast::cookie(group, stack, tag, r as crate::event::Rank) == c
                })
            })
            .cloned();
    }
    let tag = word(COM_LEN - 4)?;
    views.iter().find(|v| v.id.tag() == tag).cloned()
}

/// Runs one plan.
pub fn run(plan: &Plan) -> Report {
    let mut sim = Sim::new(plan);
    sim.check.late_sends = plan.total && plan.token;
    sim.check.own_unordered = plan.total && plan.discard_own;
    for _ in 0..plan.initial {
        sim.spawn(false);
    }
    for (i, (t, _)) in plan.faults.iter().enumerate() {
        sim.at(*t, Ev::Fault(i));
    }
    if let Some(t) = plan.intruder {
        sim.at(t, Ev::Intruder);
    }
    let end = plan.quiet_from().plus_ns(plan.settle_ns);
    sim.run(end);
    sim.finish()
}

/// What a batch of runs found.
#[derive(Debug, Default)]
pub struct Batch {
    /// Reports of the runs that failed.
    pub failed: Vec<Report>,
    /// Runs.
    pub runs: u64,
    /// Longest time from the end of the faults to one agreed view, ns.
    pub worst_settle_ns: u64,
    /// Casts delivered, all runs.
    pub delivered: u64,
    /// Views installed, all runs.
    pub views: u64,
    /// Secure runs.
    pub secure: u64,
    /// Runs with an intruder, and how many of those refused it.
    pub intruders: u64,
    /// See [`Batch::intruders`].
    pub refused: u64,
}

/// Runs seeds `first..first + count`.
pub fn run_seeds(first: u64, count: u64, max_loss: f64, partitions: bool) -> Batch {
    let mut b = Batch::default();
    for s in first..first + count {
        let r = run(&Plan::random(s, max_loss, partitions));
        b.runs += 1;
        b.delivered += r.delivered;
        b.views += r.views;
        b.worst_settle_ns = b.worst_settle_ns.max(r.settle_ns.unwrap_or(0));
        b.secure += u64::from(r.plan.contains("secure") || r.plan.contains("sign"));
        if let Some(refused) = r.intruder_refused {
            b.intruders += 1;
            b.refused += u64::from(refused);
        }
        if !r.ok() {
            b.failed.push(r);
        }
    }
    b
}

impl<'a> Sim<'a> {
    fn new(plan: &'a Plan) -> Sim<'a> {
        let tick = 2 * MS;
        let cfg = StackConfig {
            group: 0x7e57,
            nak: NakConfig {
                window: 64,
                tick_ns: tick,
                retrans_max: 64,
            },
            stable: StableConfig {
                gossip_ns: tick,
                gossip_every: 16,
                app_ack: false,
            },
            max_msg: 1 << 20,
            suspect: SuspectConfig {
                timeout_ns: plan.suspect_ns,
            },
            gms: GmsConfig {
                tick_ns: 10 * MS,
                join_timeout_ns: 100 * MS,
                app_block_ok: plan.app_block_ok,
                app_state: true,
                primary: plan.primary,
            },
            secure: None,
            fast: plan.fast,
            fast_runs: plan.runs,
            discard_own: plan.discard_own,
        };
        Sim {
            plan,
            cfg,
            rng: Rng::new(plan.seed),
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            procs: Vec::new(),
            by_addr: HashMap::new(),
            side: None,
            check: Checker::default(),
            frames: 0,
            settled: None,
            quiet: plan.quiet_from(),
            authorized: if plan.secure {
                (0..KEYED_PROCS)
                    .map(|i| identity(plan.seed, i).public())
                    .collect()
            } else {
                Vec::new()
            },
            intruder: None,
            intruder_refused: false,
            wire: 0,
            delivery: 0,
            delivery_others: 0,
            own_delivered: 0,
        }
    }

    fn at(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.events.insert(self.seq, ev);
        self.queue.push(Reverse((t, self.seq)));
    }

    /// Starts a process that joins through every address started so far
    /// (an intruder: with a key the group does not authorize).
    fn spawn(&mut self, intruder: bool) {
        let i = self.procs.len();
        if self.plan.secure && i >= KEYED_PROCS && !intruder {
            return;
        }
        let addr: Addr = Addr::from(format!("p{i}").as_str());
        let id = 1000 + i as u64;
        let pc = |slots: u32| PoolConfig {
            slots,
            slot_size: 2048,
            headroom: 128,
            tailroom: 32,
        };
        let (Ok(tx), Ok(rx), Ok(ctl)) =
            (Pool::new(pc(512)), Pool::new(pc(4096)), Pool::new(pc(1024)))
        else {
            self.check.violations.push("pool setup failed".into());
            return;
        };
        let statics = &self.plan.statics;
        let stat = statics[i % statics.len()];
        let spec = self.plan.spec();
        let mut cfg = self.cfg.clone();
        if self.plan.secure {
            let key = if intruder { KEYED_PROCS + 1 } else { i };
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            match Secure::with_seed(identity(self.plan.seed, key), &self.authorized, seed) {
                Ok(s) => cfg.secure = Some(Arc::new(s)),
                Err(e) => {
                    self.check.violations.push(format!("keys: {e}"));
                    return;
                }
            }
        }
        let mut stack = match build(spec, &cfg, ctl, stat) {
            Ok(s) => s,
            Err(e) => {
                self.check.violations.push(format!("stack: {e}"));
                return;
            }
        };
        let mut contacts: Vec<Addr> = self.procs.iter().map(|p| p.addr.clone()).collect();
        for k in 0..self.plan.initial.min(i + 1) {
            let a = Addr::from(format!("p{k}").as_str());
            if !contacts.contains(&a) {
                contacts.push(a);
            }
        }
        stack.join(
            self.now,
            JoinReq {
                me: id,
                addr: addr.clone(),
                contacts,
            },
        );
        self.by_addr.insert(addr.clone(), i);
        self.procs.push(Proc {
            id,
            addr,
            stack,
            rx,
            tx,
            life: Life::Alive,
            view: None,
            casts: 0,
            wake: None,
            leaving: false,
            state: Default::default(),
            transferred: false,
            intruder,
        });
        if intruder {
            self.intruder = Some(id);
        }
        self.pump(i);
    }

    /// Live honest processes that are not leaving.
    fn live(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|i| {
                let p = &self.procs[*i];
                p.life == Life::Alive && !p.leaving && !p.intruder
            })
            .collect()
    }

    fn run(&mut self, end: Time) {
        while let Some(Reverse((t, k))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.now = t;
            let Some(ev) = self.events.remove(&k) else {
                continue;
            };
            match ev {
                Ev::Frame { to, bytes } => {
                    if self.procs[to].life != Life::Alive {
                        continue;
                    }
                    if let Some(m) = self.procs[to].rx.alloc_frame(&bytes) {
                        self.procs[to].stack.receive(t, m);
                    }
                    self.pump(to);
                }
                Ev::Wake(i) => {
                    if self.procs[i].life == Life::Alive && self.procs[i].wake == Some(t) {
                        self.procs[i].wake = None;
                        self.procs[i].stack.handle_timeout(t);
                        self.pump(i);
                    }
                }
                Ev::Cast(i) => self.cast(i),
                Ev::BlockOk(i) => {
                    if self.procs[i].life == Life::Alive {
                        self.procs[i]
                            .stack
                            .handle_down(t, crate::event::Down::BlockOk);
                        self.pump(i);
                    }
                }
                Ev::Fault(f) => self.fault(f),
                Ev::Heal => self.side = None,
                Ev::Intruder => self.spawn(true),
            }
            if self.settled.is_none() && t >= self.plan.quiet_from() && self.agreed() {
                self.settled = Some(t);
            }
        }
    }

    /// Whether every live process is in the same view of exactly them.
    fn agreed(&self) -> bool {
        let live = self.live();
        let mut ids: Vec<EndpointId> = live.iter().map(|i| self.procs[*i].id).collect();
        ids.sort_unstable();
        let mut first = None;
        for i in live {
            let Some(v) = &self.procs[i].view else {
                return false;
            };
            let mut m = v.members.clone();
            m.sort_unstable();
            if m != ids || *first.get_or_insert(v.id) != v.id {
                return false;
            }
        }
        true
    }

    fn fault(&mut self, f: usize) {
        let live = self.live();
        match self.plan.faults[f].1.clone() {
            Fault::Crash { pick } => {
                if live.len() > 1 {
                    let i = live[(pick % live.len() as u64) as usize];
                    self.procs[i].life = Life::Crashed;
                }
            }
            Fault::CrashCoordinator { pick } => {
                if live.len() > 1 {
                    let p = live[(pick % live.len() as u64) as usize];
                    let coord = self.procs[p]
                        .view
                        .as_ref()
                        .and_then(|v| v.members.first().copied())
                        .and_then(|id| live.iter().find(|i| self.procs[**i].id == id).copied());
                    if let Some(c) = coord {
                        self.procs[c].life = Life::Crashed;
                    }
                }
            }
            Fault::Join => self.spawn(false),
            Fault::Leave { pick } => {
                let members: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|i| self.procs[*i].view.is_some())
                    .collect();
                if members.len() > 1 {
                    let i = members[(pick % members.len() as u64) as usize];
                    self.procs[i].leaving = true;
                    self.procs[i]
                        .stack
                        .handle_down(self.now, crate::event::Down::Leave);
                    self.pump(i);
                }
            }
            Fault::Partition { mask, heal } => {
                let mut side = vec![0u8; self.procs.len() + 64];
                for (k, i) in live.iter().enumerate() {
                    side[*i] = ((mask >> (k % 64)) & 1) as u8;
                }
                self.side = Some(side);
                self.at(heal, Ev::Heal);
            }
        }
    }

    fn route(&mut self, i: usize, dst: Dest, frame: Msg) {
        let bytes = match frame.contiguous() {
            Some(b) => b.to_vec(),
            None => {
                self.check
                    .violations
                    .push(format!("{}: a frame spanning buffers", self.procs[i].id));
                return;
            }
        };
        drop(frame);
        // The view the frame was made in, from its header.
        self.wire = crate::event::fnv1a(self.wire ^ i as u64, &bytes);
        let view = view_of(
            &bytes,
            self.cfg.group,
            self.procs[i].stack.spec().id(),
            self.procs[i].stack.routes().1,
        );
        let targets: Vec<usize> = match (&dst, &view) {
            (Dest::Addr(a), _) => self.by_addr.get(a).copied().into_iter().collect(),
            (Dest::All, Some(v)) => v
                .addrs
                .iter()
                .enumerate()
                .filter(|(r, _)| *r != v.rank as usize)
                .filter_map(|(_, a)| self.by_addr.get(a).copied())
                .collect(),
            (Dest::Rank(r), Some(v)) => v
                .addrs
                .get(*r as usize)
                .and_then(|a| self.by_addr.get(a).copied())
                .into_iter()
                .collect(),
            _ => {
                self.check.violations.push(format!(
                    "{}: frame for a view it never installed",
                    self.procs[i].id
                ));
                Vec::new()
            }
        };
        for to in targets {
            self.transmit(i, to, &bytes);
        }
    }

    fn transmit(&mut self, from: usize, to: usize, bytes: &[u8]) {
        self.frames += 1;
        if let Some(side) = &self.side {
            if side.get(from) != side.get(to) {
                return;
            }
        }
        if self.now < self.quiet && self.rng.chance(self.plan.loss) {
            return;
        }
        let d = self.plan.delay_ns + self.rng.range(0, self.plan.jitter_ns + 1);
        self.at(
            self.now.plus_ns(d),
            Ev::Frame {
                to,
                bytes: bytes.to_vec(),
            },
        );
    }

    fn finish(mut self) -> Report {
        let live: Vec<EndpointId> = self.live().iter().map(|i| self.procs[*i].id).collect();
        self.check.finish(&live);
        if self.plan.total {
            self.check.total_order();
        }
        if self.plan.primary {
            self.check.primary_chain();
        }
        let mut stats = crate::layer::Stats::default();
        for p in &self.procs {
            stats.add(p.stack.stats());
        }
        let mut dump = String::new();
        if !self.check.violations.is_empty() {
            for p in &self.procs {
                let life = match p.life {
                    Life::Alive => "alive",
                    Life::Crashed => "crashed",
                    Life::Left => "left",
                };
                let _ = writeln!(dump, "{} {} ({life}):\n{}", p.id, p.addr, p.stack.dump());
            }
        }
        Report {
            seed: self.plan.seed,
            plan: self.plan.to_string(),
            violations: self.check.violations,
            delivered: self.check.delivered,
            views: self.check.views,
            frames: self.frames,
            settled: self.settled,
            settle_ns: self.settled.map(|t| t.since(self.quiet)),
            dump,
            intruder_refused: self.intruder.map(|_| self.intruder_refused),
            wire: self.wire,
            delivery: self.delivery,
            delivery_others: self.delivery_others,
            own_delivered: self.own_delivered,
            stats,
        }
    }
}
