//! What a benchmark member talks through: a group over an inline core,
//! or the bare driver (`--raw`), behind one face ([`Link`]); the payload
//! format the benchmarks send, and the start-up handshake.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tutti::engine::{Core, Event, GroupSpec, Packer};
use tutti_drivers::{Allocator, Driver, Msg, To, Tx};

use super::bench::BenchOpts;
use super::common::{driver_config, mono_ns, Idler};

/// Payload kinds (first byte): a measured message, a start-up greeting,
/// the end of the run.
pub(super) const PING: u8 = 0;
const HELLO: u8 = 1;
pub(super) const STOP: u8 = 0xFF;
/// Smallest payload: kind, index, timestamp.
pub(super) const MIN: usize = 17;

/// Either a stack group over a core, or the bare driver.
pub(super) enum Link {
    /// A core, the group, and the highest stability vector seen (by
    /// bench rank), and the bench rank of each rank of the current view
    /// (a membership stack may order a later view differently).
    Stack(Box<Core>, usize, Vec<u64>, Ranks),
    /// The driver, a reusable send queue, a poll counter (housekeeping
    /// runs every `RAW_MAINTAIN` polls: a lean loop, as a raw user's), and
    /// the driver pool's allocator (as `Core::alloc` is the stack's).
    Raw(Box<dyn Driver>, VecDeque<Tx>, u32, Allocator),
}

/// Raw polls between driver housekeeping calls.
const RAW_MAINTAIN: u32 = 256;

pub(super) fn open(
    o: &BenchOpts,
    members: &[String],
    me: &str,
    dir: &std::path::Path,
) -> Result<Link, String> {
    let cfg = driver_config(&o.driver, me, dir)?;
    let mut d = cfg.open().map_err(|e| e.to_string())?;
    if o.raw {
        for m in members.iter().filter(|m| *m != me) {
            d.add_peer(m).map_err(|e| e.to_string())?;
        }
        let a = d.pool().allocator();
        return Ok(Link::Raw(d, VecDeque::with_capacity(64), 0, a));
    }
    let mut core = Core::new(d);
    let mut spec = GroupSpec::new("bench", &o.stack, members.to_vec());
    spec.config.fast = !o.full_path;
    spec.config.discard_own = o.discard_own;
    let g = core.join(&spec).map_err(|e| e.to_string())?;
    let ranks = Ranks {
        addrs: members.to_vec(),
        of_view: (0..members.len()).collect(),
    };
    Ok(Link::Stack(
        Box::new(core),
        g,
        vec![0; members.len()],
        ranks,
    ))
}

/// Bench ranks (order of `--members`) against view ranks.
pub(super) struct Ranks {
    /// Address of each bench rank.
    addrs: Vec<String>,
    /// Bench rank of each view rank.
    of_view: Vec<usize>,
}

impl Ranks {
    /// A view names its members' addresses (a static view without them
    /// keeps the bench's order).
    fn view(&mut self, v: &tutti::View) {
        if v.addrs.len() != v.size() {
            return;
        }
        self.of_view = v
            .addrs
            .iter()
            .map(|a| {
                self.addrs
                    .iter()
                    .position(|x| x.as_str() == &**a)
                    .unwrap_or(usize::MAX)
            })
            .collect();
    }

    fn bench(&self, r: usize) -> usize {
        self.of_view.get(r).copied().unwrap_or(usize::MAX)
    }
}

/// One-way latency is measured on every this-many-th message (a clock
/// read on each side costs as much as a small message's trip through the
/// fast path; stamping every message measured the clock).
const SAMPLE: u64 = 16;

/// Writes a benchmark message's fields into `b` (at least [`MIN`] bytes):
/// `kind`, index `idx`, the send time when sampled.
pub(super) fn stamp(b: &mut [u8], kind: u8, idx: u64) {
    b[0] = kind;
    b[1..9].copy_from_slice(&idx.to_be_bytes());
    let ts = if kind != PING || idx % SAMPLE == 0 {
        mono_ns()
    } else {
        0
    };
    b[9..17].copy_from_slice(&ts.to_be_bytes());
}

impl Link {
    /// A benchmark message: `kind`, index `idx`, the send time when
    /// sampled, `size` bytes in all (at least [`MIN`]).
    pub(super) fn payload(&mut self, kind: u8, idx: u64, size: usize) -> Result<Msg, String> {
        let m = match self {
            Link::Stack(c, ..) => c.alloc(),
            Link::Raw(.., a) => a.alloc(),
        };
        let mut m = m.ok_or("buffer pool empty")?;
        let b = m.reserve(size.max(MIN)).map_err(|e| e.to_string())?;
        stamp(b, kind, idx);
        Ok(m)
    }

    /// A frame to write casts into in place (through a stack only);
    /// `None` while every frame buffer is in use.
    pub(super) fn packer(&mut self) -> Result<Option<Packer>, String> {
        match self {
            Link::Stack(c, ..) => Ok(c.packer()),
            Link::Raw(..) => Err("in place casts go through a stack".into()),
        }
    }

    /// Sends a batch to everybody else (emptying `q`); retries while
    /// back-pressured.
    pub(super) fn send_batch(&mut self, q: &mut VecDeque<Msg>) -> Result<(), String> {
        match self {
            Link::Stack(c, g, ..) => {
                // Window closed: poll for stability, and give the core to
                // the receivers (on few cores they share it) while nothing
                // comes.
                let mut idler = Idler::new();
                while !q.is_empty() {
                    if c.cast_batch(*g, q).map_err(|e| e.kind.to_string())? == 0 {
                        let w = c.poll().map_err(|e| e.to_string())?;
                        idler.step(w, c);
                    }
                }
                Ok(())
            }
            Link::Raw(d, txq, ..) => {
                txq.extend(q.drain(..).map(|frame| Tx { to: To::All, frame }));
                while !txq.is_empty() {
                    d.send(txq).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// Sends to everybody else; retries while back-pressured.
    pub(super) fn send(&mut self, m: Msg) -> Result<(), String> {
        match self {
            Link::Stack(c, g, ..) => {
                let mut m = m;
                loop {
                    match c.cast(*g, m) {
                        Ok(()) => return Ok(()),
                        // A membership stack shows its first view once
                        // polled.
                        Err(e)
                            if e.kind == tutti::SendErrorKind::WouldBlock
                                || e.kind == tutti::SendErrorKind::NoView =>
                        {
                            m = e.msg;
                            c.poll().map_err(|e| e.to_string())?;
                        }
                        Err(e) => return Err(e.kind.to_string()),
                    }
                }
            }
            Link::Raw(d, q, ..) => {
                q.push_back(Tx {
                    to: To::All,
                    frame: m,
                });
                while !q.is_empty() {
                    d.send(q).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// One round trip: sends ping `i`, polls until the peer's answer
    /// comes back, and returns the time it took (ns). Gives up after
    /// 10 s; the clock is read every 4096 polls for that, not on every
    /// one (a read per poll would lengthen every poll of the wait).
    pub(super) fn ping(
        &mut self,
        i: u64,
        size: usize,
        out: &mut Vec<Msg>,
        idler: &mut Idler,
    ) -> Result<u64, String> {
        let m = self.payload(PING, i, size)?;
        let t0 = Instant::now();
        self.send(m)?;
        let mut back = false;
        let mut polls = 0u32;
        while !back {
            let w = self.poll(out, &mut |src, b| {
                if src != 0 && !b.is_empty() && b[0] == PING {
                    back = true;
                }
            })?;
            polls = polls.wrapping_add(1);
            if !back && polls % 4096 == 0 && t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("no answer to ping {i} within 10 s"));
            }
            // Also on the answer's poll: its work resets the idler, or
            // empty polls would add up across pings until every wait
            // parked.
            self.idle(idler, w.max(back as usize));
        }
        Ok(t0.elapsed().as_nanos() as u64)
    }

    /// Polls once; hands received messages (sender rank, bytes) to `f`.
    pub(super) fn poll(
        &mut self,
        out: &mut Vec<Msg>,
        f: &mut impl FnMut(usize, &[u8]),
    ) -> Result<usize, String> {
        match self {
            Link::Stack(c, g, stable, ranks) => {
                let w = c.poll().map_err(|e| e.to_string())?;
                while let Some(ev) = c.next_event(*g) {
                    match ev {
                        Event::Cast { src, msg, .. } => f(ranks.bench(src as usize), msg.front()),
                        Event::Stable(v) => {
                            for (r, x) in v.iter().enumerate() {
                                if let Some(s) = stable.get_mut(ranks.bench(r)) {
                                    *s = (*s).max(*x);
                                }
                            }
                        }
                        Event::View(v) => {
                            // Sequence numbers start again in a new view.
                            ranks.view(&v);
                            stable.iter_mut().for_each(|s| *s = 0);
                        }
                        _ => {}
                    }
                }
                Ok(w)
            }
            Link::Raw(d, _, polls, _) => {
                let n = d.recv(out, 64).map_err(|e| e.to_string())?;
                for m in out.drain(..) {
                    f(usize::MAX, m.front());
                }
                *polls = polls.wrapping_add(1);
                if *polls % RAW_MAINTAIN == 0 {
                    d.maintain().map_err(|e| e.to_string())?;
                }
                Ok(n)
            }
        }
    }

    /// Through a stack: polls until every member holds the first `upto`
    /// casts of `rank` (so nothing is owed to anyone), then a moment more
    /// so the others learn the same from our gossip. Raw: a short linger.
    pub(super) fn settle(
        &mut self,
        rank: usize,
        upto: u64,
        out: &mut Vec<Msg>,
    ) -> Result<(), String> {
        let mut idler = Idler::new();
        let t = Instant::now();
        while let Link::Stack(_, _, stable, _) = &*self {
            if stable.get(rank).copied().unwrap_or(0) >= upto {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!("casts of rank {rank} not stable within 30 s"));
            }
            let w = self.poll(out, &mut |_, _| {})?;
            self.idle(&mut idler, w);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            self.poll(out, &mut |_, _| {})?;
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// The driver's counters.
    pub(super) fn stats(&self) -> tutti_drivers::DriverStats {
        match self {
            Link::Stack(c, ..) => c.driver_stats(),
            Link::Raw(d, ..) => d.stats(),
        }
    }

    /// Casts this member made through the stack.
    pub(super) fn casts_sent(&self) -> u64 {
        match self {
            Link::Stack(c, g, ..) => c.casts_sent(*g).unwrap_or(0),
            Link::Raw(..) => 0,
        }
    }

    /// `--counters`: the driver's and the stack's counters, on stderr.
    pub(super) fn print_counters(&self, rank: usize) {
        let mut out = format!("member {rank}: driver {:?}\n", self.stats());
        if let Link::Stack(c, g, ..) = self {
            if let Some((drops, stats)) = c.group_stats(*g) {
                out.push_str(&format!("member {rank}: stack {stats:?}\n"));
                out.push_str(&format!("member {rank}: drops {drops}\n"));
            }
        }
        // One write: the members share the terminal (or the test's pipe),
        // and stderr is unbuffered, so a line formatted piece by piece
        // comes out interleaved with another member's.
        let mut e = std::io::stderr().lock();
        let _ = std::io::Write::write_all(&mut e, out.as_bytes());
    }

    pub(super) fn idle(&mut self, idler: &mut Idler, work: usize) {
        match self {
            Link::Stack(c, ..) => idler.step(work, c),
            Link::Raw(..) => {
                if work == 0 {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

pub(super) fn pin(rank: usize) {
    if let Some(cores) = core_affinity::get_core_ids() {
        if cores.len() >= 2 {
            core_affinity::set_for_current(cores[rank % cores.len()]);
        }
    }
}

/// Waits until every other member answered a HELLO (raw frames to a peer
/// that is not up yet are lost, so HELLO repeats).
/// Every message that is not a HELLO goes to `other`: a peer may start
/// sending data while this member is still here.
pub(super) fn handshake(
    e: &mut Link,
    n: usize,
    me: usize,
    other: &mut impl FnMut(usize, &[u8]),
) -> Result<(), String> {
    let mut heard = vec![false; n];
    heard[me] = true;
    let mut out = Vec::new();
    let t0 = Instant::now();
    let mut last = Instant::now() - Duration::from_secs(1);
    while heard.iter().any(|h| !h) {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("peers did not answer within 30 s".into());
        }
        if last.elapsed() > Duration::from_millis(100) {
            last = Instant::now();
            let m = e.payload(HELLO, me as u64, MIN)?;
            e.send(m)?;
        }
        e.poll(&mut out, &mut |src, b| {
            if b.len() >= MIN && b[0] == HELLO {
                let who = index_of(b) as usize;
                if who < n {
                    heard[who] = true;
                }
            } else {
                other(src, b);
            }
        })?;
    }
    // Keep saying HELLO a moment for peers still waiting (raw HELLOs to a
    // peer that was not up yet were lost), every 20 ms, polling all along:
    // a peer done sooner has started its run, and what it sends is taken
    // at once (sleeping here held a sender's first window up to 20 ms,
    // the run's worst latencies and a few per cent of its rate).
    let t1 = Instant::now();
    let mut said = t1 - Duration::from_secs(1);
    let mut idler = Idler::new();
    while t1.elapsed() < Duration::from_millis(200) {
        if said.elapsed() >= Duration::from_millis(20) {
            said = Instant::now();
            let m = e.payload(HELLO, me as u64, MIN)?;
            e.send(m)?;
        }
        let w = e.poll(&mut out, &mut |src, b| {
            if b.first() != Some(&HELLO) {
                other(src, b);
            }
        })?;
        e.idle(&mut idler, w);
    }
    Ok(())
}

/// The index field of a payload.
pub(super) fn index_of(b: &[u8]) -> u64 {
    b.get(1..9)
        .and_then(|w| w.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}
