//! Deterministic simulator: whole groups in virtual time over a seeded
//! network that drops, duplicates, reorders, delays and partitions frames.
//!
//! Everything random comes from the run's seed, and nothing reads a real
//! clock, so `TUTTI_SEED=<n>` replays a run exactly. Oracles check every
//! delivery as it happens (nothing invented, no duplicates, FIFO per
//! sender) and the end state (every message delivered everywhere once the
//! network healed, every retransmit buffer drained, every buffer back in its
//! pool, the group quiet).

pub mod check;
pub mod config;
pub mod loopback;
pub mod rng;
pub mod vsync;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use tutti_drivers::{Msg, Pool, PoolConfig};

use crate::event::{Dest, Rank, Time, Up, View, ViewId};
use crate::layer::Drops;
use crate::layers::nak::NakConfig;
use crate::layers::stable::StableConfig;
use crate::stack::{build, GroupStack, SendErrorKind, StackConfig};
use crate::wire::com::{ComRepr, LEN as COM_LEN};
use check::{Oracle, Tag, HDR};
pub use config::{Partition, SimConfig};
use rng::Rng;

/// Outcome of one run.
#[derive(Debug, Default)]
pub struct Report {
    /// Seed that replays the run.
    pub seed: u64,
    /// The run's configuration, one line.
    pub config: String,
    /// What went wrong; empty when every check held.
    pub violations: Vec<String>,
    /// Messages delivered (all members).
    pub delivered: u64,
    /// Frames put on the simulated network.
    pub frames: u64,
    /// Frames the network lost (loss and partitions).
    pub lost: u64,
    /// Garbage frames injected.
    pub garbage: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// NAKs sent.
    pub naks: u64,
    /// Drops counted by the stacks, all members.
    pub drops: Drops,
    /// Virtual time at which the group fell quiet.
    pub end: Time,
    /// Trace, when asked for.
    pub trace: String,
}

impl Report {
    /// Whether every check held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

enum Ev {
    Frame { to: usize, bytes: Vec<u8> },
    Wake { node: usize },
    App { node: usize },
}

struct Node {
    stack: Box<dyn GroupStack>,
    tx: Pool,
    rx: Pool,
    ctl: Pool,
    oracle: Oracle,
    casts_left: u32,
    sends_left: u32,
    pending: Option<(Option<Rank>, Msg)>,
    wake: Option<Time>,
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    rng: Rng,
    now: Time,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    events: Vec<Option<Ev>>,
    free_ev: Vec<usize>,
    seq: u64,
    nodes: Vec<Node>,
    sent_casts: Vec<u32>,
    /// sent_sends[src][dst]
    sent_sends: Vec<Vec<u32>>,
    report: Report,
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> Report {
    match Sim::new(cfg) {
        Ok(mut sim) => {
            sim.run();
            sim.finish()
        }
        Err(e) => Report {
            seed: cfg.seed,
            config: cfg.to_string(),
            violations: vec![format!("setup failed: {e}")],
            ..Report::default()
        },
    }
}

/// How many seeds a soak runs: `TUTTI_SOAK`, else `default`.
pub fn soak_from_env(default: u64) -> u64 {
    std::env::var("TUTTI_SOAK")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// The seed to replay from `TUTTI_SEED`, if set.
pub fn seed_from_env() -> Option<u64> {
    std::env::var("TUTTI_SEED").ok()?.trim().parse().ok()
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Result<Sim<'a>, String> {
        let n = cfg.members;
        let stack_cfg = StackConfig {
            group: 0x7e57,
            nak: NakConfig {
                window: cfg.window,
                tick_ns: cfg.tick_ns,
                retrans_max: 64,
            },
            stable: StableConfig {
                gossip_ns: cfg.tick_ns,
                gossip_every: (cfg.window / 4).max(1),
                app_ack: false,
            },
            max_msg: 64 << 20,
            ..StackConfig::default()
        };
        let pc = |slots: u64| PoolConfig {
            slots: slots as u32,
            slot_size: cfg.slot_size,
            headroom: 128,
            tailroom: 32,
        };
        let cap = (cfg.slot_size - 160) as u64;
        let big = (cfg.size_max as u64).div_ceil(cap) + 1;
        let members: Vec<u64> = (0..n as u64).map(|i| 1000 + i).collect();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let w = cfg.window;
            let tx = Pool::new(pc((n as u64 + 2) * (w + big) + 64)).map_err(|e| e.to_string())?;
            let rx = Pool::new(pc(n as u64 * (3 * w + big) + 512)).map_err(|e| e.to_string())?;
            let ctl = Pool::new(pc(512 + 64 * n as u64)).map_err(|e| e.to_string())?;
            let mut stack = build(&cfg.spec, &stack_cfg, ctl.clone(), cfg.statics[i])
                .map_err(|e| e.to_string())?;
            let view = View::new(
                ViewId {
                    ltime: 1,
                    coord: members[0],
                },
                members.clone(),
                i as Rank,
            )?;
            stack.install_view(Time::ZERO, view);
            nodes.push(Node {
                stack,
                tx,
                rx,
                ctl,
                oracle: Oracle::new(i as Rank, n),
                casts_left: cfg.casts,
                sends_left: if n > 1 { cfg.sends } else { 0 },
                pending: None,
                wake: None,
            });
        }
        let mut sim = Sim {
            cfg,
            rng: Rng::new(cfg.seed),
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free_ev: Vec::new(),
            seq: 0,
            nodes,
            sent_casts: vec![0; n],
            sent_sends: vec![vec![0; n]; n],
            report: Report {
                seed: cfg.seed,
                config: cfg.to_string(),
                ..Report::default()
            },
        };
        for i in 0..n {
            sim.flush(i);
            let at = Time(sim.rng.below(cfg.send_gap_ns.max(1)));
            sim.schedule(at, Ev::App { node: i });
        }
        Ok(sim)
    }

    fn schedule(&mut self, at: Time, ev: Ev) {
        let idx = match self.free_ev.pop() {
            Some(i) => {
                self.events[i] = Some(ev);
                i
            }
            None => {
                self.events.push(Some(ev));
                self.events.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, idx)));
    }

    fn trace(&mut self, f: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = f();
            let _ = writeln!(self.report.trace, "{} {}", self.now, line);
        }
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.cfg
            .partitions
            .iter()
            .any(|p| p.from <= self.now && self.now < p.to && p.side[a] != p.side[b])
    }

    fn run(&mut self) {
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            if at > self.cfg.deadline {
                let pending: Vec<String> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        format!(
                            "member {i}: buffered={} casts_left={} sends_left={} delivered_casts={:?}\n{}",
                            n.stack.buffered(),
                            n.casts_left,
                            n.sends_left,
                            n.oracle.next_cast,
                            n.stack.dump()
                        )
                    })
                    .collect();
                self.report.violations.push(format!(
                    "liveness: group not quiet by the deadline {} ({})",
                    self.cfg.deadline,
                    pending.join("; ")
                ));
                return;
            }
            self.now = at;
            let Some(ev) = self.events[idx].take() else {
                continue;
            };
            self.free_ev.push(idx);
            match ev {
                Ev::Frame { to, bytes } => self.arrive(to, bytes),
                Ev::Wake { node } => {
                    if self.nodes[node].wake == Some(at) {
                        self.nodes[node].wake = None;
                        let now = self.now;
                        self.nodes[node].stack.handle_timeout(now);
                        self.flush(node);
                    }
                }
                Ev::App { node } => self.app_step(node),
            }
        }
        self.report.end = self.now;
    }

    fn arrive(&mut self, to: usize, bytes: Vec<u8>) {
        let now = self.now;
        let node = &mut self.nodes[to];
        match node.rx.alloc_frame(&bytes) {
            Some(m) => node.stack.receive(now, m),
            None => {
                self.trace(|| format!("member {to}: no receive buffer, frame dropped"));
                self.report.lost += 1;
            }
        }
        self.flush(to);
    }

    fn app_step(&mut self, i: usize) {
        let n = self.cfg.members;
        let now = self.now;
        let (dst, msg) = match self.nodes[i].pending.take() {
            Some(p) => p,
            None => {
                let node = &self.nodes[i];
                if node.casts_left == 0 && node.sends_left == 0 {
                    return;
                }
                let total = (node.casts_left + node.sends_left) as u64;
                let cast = self.rng.below(total) < node.casts_left as u64;
                let dst = if cast {
                    None
                } else {
                    let mut d = self.rng.below(n as u64 - 1) as usize;
                    if d >= i {
                        d += 1;
                    }
                    Some(d as Rank)
                };
                let len = self.size();
                let index = match dst {
                    None => self.sent_casts[i],
                    Some(d) => self.sent_sends[i][d as usize],
                };
                let tag = Tag {
                    src: i as Rank,
                    p2p: dst.is_some(),
                    dst: dst.unwrap_or(0),
                    index,
                    len: len as u32,
                };
                match check::make(&self.nodes[i].tx, tag) {
                    Ok(m) => (dst, m),
                    Err(_) => {
                        // Pool empty: the application waits like a real one.
                        let at = now.plus_ns(self.cfg.tick_ns / 4);
                        self.schedule(at, Ev::App { node: i });
                        return;
                    }
                }
            }
        };
        // Count the message as sent before handing it over: a cast is
        // delivered to its own sender at once.
        match dst {
            None => self.sent_casts[i] += 1,
            Some(d) => self.sent_sends[i][d as usize] += 1,
        }
        let node = &mut self.nodes[i];
        let res = match dst {
            None => node.stack.cast(now, msg),
            Some(d) => node.stack.send(now, d, msg),
        };
        match res {
            Ok(()) => {
                match dst {
                    None => node.casts_left -= 1,
                    Some(_) => node.sends_left -= 1,
                }
                self.trace(|| format!("member {i}: sent {dst:?}"));
            }
            Err(e) => {
                match dst {
                    None => self.sent_casts[i] -= 1,
                    Some(d) => self.sent_sends[i][d as usize] -= 1,
                }
                if e.kind != SendErrorKind::WouldBlock {
                    self.report
                        .violations
                        .push(format!("member {i}: send refused: {}", e.kind));
                    return;
                }
                self.nodes[i].pending = Some((dst, e.msg));
            }
        }
        self.flush(i);
        let node = &self.nodes[i];
        if node.pending.is_some() || node.casts_left > 0 || node.sends_left > 0 {
            let gap = if node.pending.is_some() {
                self.cfg.tick_ns / 4
            } else {
                self.rng.below(self.cfg.send_gap_ns.max(1))
            };
            self.schedule(now.plus_ns(gap), Ev::App { node: i });
        }
    }

    fn size(&mut self) -> usize {
        let cap = self.cfg.slot_size as usize - 160;
        let r = self.rng.below(100);
        let max = if r < 70 {
            200.min(cap)
        } else if r < 90 {
            cap
        } else {
            self.cfg.size_max
        };
        let lo = self.cfg.size_min.max(HDR);
        self.rng.range(lo as u64, max.max(lo) as u64) as usize
    }

    /// Moves a member's output onto the network and its events into the
    /// oracle, and re-arms its wake-up.
    fn flush(&mut self, i: usize) {
        loop {
            let Some((dst, frame)) = self.nodes[i].stack.poll_transmit() else {
                break;
            };
            let bytes = frame.contiguous().map(|b| b.to_vec());
            drop(frame);
            let Some(bytes) = bytes else {
                self.report.violations.push(format!(
                    "member {i}: a frame spanning several buffers reached the network"
                ));
                continue;
            };
            match dst {
                Dest::All => {
                    for to in 0..self.cfg.members {
                        if to != i {
                            self.transmit(i, to, &bytes);
                        }
                    }
                }
                Dest::Rank(r) => self.transmit(i, r as usize, &bytes),
                // Static views: nothing here sends membership control.
                Dest::Addr(a) => self.report.violations.push(format!(
                    "member {i}: control frame to {a} in a static group"
                )),
            }
        }
        loop {
            let Some(ev) = self.nodes[i].stack.poll_event() else {
                break;
            };
            self.deliver(i, ev);
        }
        if let Some(t) = self.nodes[i].stack.poll_timeout() {
            let t = t.max(self.now);
            if self.nodes[i].wake.is_none_or(|w| t < w) {
                self.nodes[i].wake = Some(t);
                self.schedule(t, Ev::Wake { node: i });
            }
        }
    }

    fn deliver(&mut self, i: usize, ev: Up) {
        match ev {
            Up::Cast { src, msg, .. } => {
                let sent = self.sent_casts[src as usize];
                self.nodes[i].oracle.deliver(src, false, &msg, sent);
                self.report.delivered += 1;
            }
            Up::Send { src, msg, .. } => {
                let sent = self.sent_sends[src as usize][i];
                self.nodes[i].oracle.deliver(src, true, &msg, sent);
                self.report.delivered += 1;
            }
            Up::Lost { src, from, to } => self.report.violations.push(format!(
                "member {i}: messages {from}..{to} of {src} reported lost"
            )),
            _ => {}
        }
    }

    fn transmit(&mut self, from: usize, to: usize, bytes: &[u8]) {
        self.report.frames += 1;
        self.trace(|| {
            let head: Vec<String> = bytes
                .iter()
                .skip(COM_LEN)
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "frame {from}->{to} len={} after com: {}",
                bytes.len(),
                head.join("")
            )
        });
        if self.rng.chance(self.cfg.garbage) {
            self.inject_garbage(to);
        }
        if self.partitioned(from, to) || self.rng.chance(self.cfg.loss) {
            self.report.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.cfg.delay_ns + self.rng.below(self.cfg.jitter_ns + 1);
            let at = self.now.plus_ns(delay);
            self.schedule(
                at,
                Ev::Frame {
                    to,
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    /// Schedules a frame no honest member would send: random bytes, or a
    /// well-formed header for another group, or one whose layer headers
    /// are cut short or carry unknown types.
    fn inject_garbage(&mut self, to: usize) {
        self.report.garbage += 1;
        let kind = self.rng.below(3);
        let mut bytes = vec![0u8; self.rng.below(64) as usize];
        self.rng.fill(&mut bytes);
        if kind > 0 {
            let other = self.rng.below(self.cfg.members as u64) as u16;
            let repr = ComRepr {
                ctl: false,
                p2p: false,
                group: if kind == 1 { 0xbad } else { 0x7e57 },
                stack: crate::stack::Spec::parse(&self.cfg.spec)
                    .map(|s| s.id())
                    .unwrap_or(0),
                src: other,
                dst: crate::wire::com::DST_ALL,
                view: ViewId {
                    ltime: 1,
                    coord: 1000,
                }
                .tag(),
            };
            let mut hdr = vec![0u8; COM_LEN];
            repr.emit(&mut hdr);
            // An unknown nak type (8..=255) or nothing at all after the header.
            if kind == 2 && !bytes.is_empty() {
                bytes[0] = 8 + (bytes[0] % 248);
            }
            hdr.extend_from_slice(&bytes);
            bytes = hdr;
        }
        let at = self.now.plus_ns(self.cfg.delay_ns);
        self.schedule(at, Ev::Frame { to, bytes });
    }

    fn finish(mut self) -> Report {
        let n = self.cfg.members;
        for (i, node) in self.nodes.iter().enumerate() {
            let o = &node.oracle;
            self.report.violations.extend(o.violations.iter().cloned());
            if node.casts_left > 0 || node.sends_left > 0 || node.pending.is_some() {
                self.report.violations.push(format!(
                    "member {i}: could not send its workload ({} casts, {} sends left)",
                    node.casts_left, node.sends_left
                ));
            }
            for s in 0..n {
                if o.next_cast[s] != self.sent_casts[s] {
                    self.report.violations.push(format!(
                        "member {i}: delivered {} of {} casts from {s}",
                        o.next_cast[s], self.sent_casts[s]
                    ));
                }
                if s != i && o.next_send[s] != self.sent_sends[s][i] {
                    self.report.violations.push(format!(
                        "member {i}: delivered {} of {} sends from {s}",
                        o.next_send[s], self.sent_sends[s][i]
                    ));
                }
            }
            if node.stack.buffered() != 0 {
                self.report.violations.push(format!(
                    "member {i}: {} messages still buffered after the group fell quiet",
                    node.stack.buffered()
                ));
            }
            for (name, pool) in [("tx", &node.tx), ("rx", &node.rx), ("ctl", &node.ctl)] {
                let used = pool.stats().in_use;
                if used != 0 {
                    self.report.violations.push(format!(
                        "member {i}: {used} {name} buffers not returned to the pool"
                    ));
                }
            }
            let st = node.stack.stats();
            self.report.retransmits += st.retransmits;
            self.report.naks += st.naks;
            self.report.drops.merge(node.stack.drops());
        }
        self.report
    }
}

/// Runs `count` seeds starting at `first`; returns the reports of the runs
/// that failed.
pub fn run_seeds(first: u64, count: u64, max_loss: f64) -> Vec<Report> {
    (first..first + count)
        .map(|seed| run(&SimConfig::random(seed, max_loss)))
        .filter(|r| !r.ok())
        .collect()
}
