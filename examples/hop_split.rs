//! Where a cross-core round trip's time goes: two threads pinned to two
//! cores, each with its own endpoint over the real shm driver, ping and
//! pong, through a stack or the bare driver. The driver is tapped, so each
//! round trip is split at the moments a frame is handed to the driver and
//! comes out of it (TSC, which is the same on every core where it is
//! invariant):
//!
//! 1. ping cast: the pinger's cast until its frame reaches the driver;
//! 2. ping flight: until the responder's driver returns the frame;
//! 3. ping up: until the responder's application has the event;
//! 4. pong cast, 5. pong flight, 6. pong up: the same way back.
//!
//! `cargo run --release --example hop_split -- <raw|stack> <round trips>`
//! prints the median of each part in TSC cycles and the median round trip.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::ticks;
use tutti::engine::{Core, DriverConfig, GroupSpec};
use tutti::{Event, Msg};
use tutti_drivers::{Driver, DriverError, DriverStats, PeerId, Pool, To, Tx, Waker};

/// The moments a frame last went into the driver and last came out (on
/// a cache line of its own: the two sides' marks must not share one).
#[derive(Default)]
#[repr(align(128))]
struct Marks {
    sent: AtomicU64,
    got: AtomicU64,
}

/// A driver that marks the time of every send and every receive.
struct Tap {
    d: Box<dyn Driver>,
    m: Arc<Marks>,
}

impl Driver for Tap {
    fn kind(&self) -> &'static str {
        self.d.kind()
    }
    fn local_addr(&self) -> String {
        self.d.local_addr()
    }
    fn add_peer(&mut self, addr: &str) -> Result<PeerId, DriverError> {
        self.d.add_peer(addr)
    }
    fn peer_count(&self) -> usize {
        self.d.peer_count()
    }
    fn pool(&self) -> &Pool {
        self.d.pool()
    }
    fn ctl_pool(&self) -> &Pool {
        self.d.ctl_pool()
    }
    fn max_frame(&self) -> usize {
        self.d.max_frame()
    }
    fn send(&mut self, q: &mut VecDeque<Tx>) -> Result<usize, DriverError> {
        if !q.is_empty() {
            self.m.sent.store(ticks(), Ordering::Relaxed);
        }
        self.d.send(q)
    }
    fn recv(&mut self, out: &mut Vec<Msg>, max: usize) -> Result<usize, DriverError> {
        let n = self.d.recv(out, max)?;
        if n > 0 {
            self.m.got.store(ticks(), Ordering::Relaxed);
        }
        Ok(n)
    }
    fn park(&mut self, timeout: Duration) -> Result<(), DriverError> {
        self.d.park(timeout)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.d.waker()
    }
    fn maintain(&mut self) -> Result<(), DriverError> {
        self.d.maintain()
    }
    fn stats(&self) -> DriverStats {
        self.d.stats()
    }
}

fn payload(pool: &Pool) -> Result<Msg, String> {
    let mut m = pool.alloc().ok_or("pool empty")?;
    m.reserve(64).map_err(|e| e.to_string())?.fill(7);
    Ok(m)
}

/// One side's view of a round trip: (cast start, handed to driver, out
/// of the driver, application has it), for the pinger the ping's start
/// and the pong's arrival, for the responder the ping's arrival and the
/// pong's start.
type Row = [u64; 4];

enum End {
    Raw(Box<dyn Driver>, PeerId),
    Stack(Box<Core>, usize, u16),
}

impl End {
    /// Over the driver `d` (opened on both sides before this).
    fn new(
        d: Box<dyn Driver>,
        me: &str,
        other: &str,
        stack: bool,
    ) -> Result<(End, Arc<Marks>), String> {
        let m = Arc::new(Marks::default());
        let mut d: Box<dyn Driver> = Box::new(Tap { d, m: m.clone() });
        if !stack {
            let p = d.add_peer(other).map_err(|e| e.to_string())?;
            return Ok((End::Raw(d, p), m));
        }
        let mut c = Core::new(d);
        let mut names = vec![me.to_string(), other.to_string()];
        names.sort();
        let own = names.iter().position(|x| x == me).unwrap_or(0) as u16;
        let spec = GroupSpec::new("split", "com:nak:stable", names);
        let g = c.join(&spec).map_err(|e| e.to_string())?;
        Ok((End::Stack(Box::new(c), g, own), m))
    }

    fn cast(&mut self, q: &mut VecDeque<Tx>) -> Result<(), String> {
        match self {
            End::Raw(d, p) => {
                q.push_back(Tx {
                    to: To::Peer(*p),
                    frame: payload(d.pool())?,
                });
                while !q.is_empty() {
                    d.send(q).map_err(|e| e.to_string())?;
                }
            }
            End::Stack(c, g, _) => {
                let mut m = payload(c.pool())?;
                loop {
                    match c.cast(*g, m) {
                        Ok(()) => break,
                        Err(e) => {
                            m = e.msg;
                            c.poll().map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Polls once; whether the other side's message came.
    fn poll(&mut self, rx: &mut Vec<Msg>) -> Result<bool, String> {
        match self {
            End::Raw(d, _) => {
                let n = d.recv(rx, 64).map_err(|e| e.to_string())?;
                // Reads the message, as an application (and a stack) would.
                let hit = rx.iter().any(|m| m.front().first() == Some(&7));
                rx.clear();
                Ok(n > 0 && hit)
            }
            End::Stack(c, g, own) => {
                c.poll().map_err(|e| e.to_string())?;
                let mut hit = false;
                while let Some(ev) = c.next_event(*g) {
                    if let Event::Cast { src, msg, .. } = ev {
                        hit |= src != *own && msg.front().first() == Some(&7);
                    }
                }
                Ok(hit)
            }
        }
    }
}

fn side(
    dir: std::path::PathBuf,
    me: &'static str,
    other: &'static str,
    stack: bool,
    n: usize,
    core: usize,
    start: Arc<Barrier>,
) -> Result<Vec<Row>, String> {
    if let Some(ids) = core_affinity::get_core_ids() {
        if let Some(id) = ids.get(core % ids.len().max(1)) {
            core_affinity::set_for_current(*id);
        }
    }
    let d = DriverConfig::shm(&dir, me)
        .open()
        .map_err(|e| e.to_string())?;
    // Both endpoints exist before either names the other.
    start.wait();
    let (mut e, marks) = End::new(d, me, other, stack)?;
    let pinger = me == "a";
    let mut q = VecDeque::new();
    let mut rx = Vec::new();
    let warm = 2000;
    let mut rows = Vec::with_capacity(n);
    for i in 0..warm + n {
        let mut row = [0u64; 4];
        if pinger {
            row[0] = ticks();
            e.cast(&mut q)?;
            row[1] = marks.sent.load(Ordering::Relaxed);
            let mut polls = 0u64;
            while !e.poll(&mut rx)? {
                polls += 1;
                if polls > 1_000_000_000 {
                    return Err("no pong".into());
                }
            }
            row[3] = ticks();
            row[2] = marks.got.load(Ordering::Relaxed);
        } else {
            let mut polls = 0u64;
            while !e.poll(&mut rx)? {
                polls += 1;
                if polls > 1_000_000_000 {
                    return Err("no ping".into());
                }
            }
            row[1] = ticks();
            row[0] = marks.got.load(Ordering::Relaxed);
            row[2] = ticks();
            e.cast(&mut q)?;
            row[3] = marks.sent.load(Ordering::Relaxed);
        }
        if i >= warm {
            rows.push(row);
        }
    }
    // The first round trips warm up (unmeasured); the other side's last
    // poll finishes before the endpoint goes.
    std::thread::sleep(Duration::from_millis(100));
    std::mem::forget(e);
    Ok(rows)
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hop_split <raw|stack> <round trips>";
    if a.len() != 2 {
        return Err(usage.into());
    }
    let stack = a[0] == "stack";
    let n: usize = a[1].parse().map_err(|_| usage)?;
    let dir = std::env::temp_dir().join(format!("tutti-hop-split-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let start = Arc::new(Barrier::new(2));
    let (d2, s2) = (dir.clone(), start.clone());
    let resp = std::thread::spawn(move || side(d2, "b", "a", stack, n, 1, s2));
    let ping = side(dir.clone(), "a", "b", stack, n, 0, start)?;
    let pong = resp.join().map_err(|_| "responder panicked")??;
    let _ = std::fs::remove_dir_all(&dir);
    let seg = |f: &dyn Fn(&Row, &Row) -> u64| -> i64 {
        median(
            ping.iter()
                .zip(&pong)
                .map(|(p, r)| f(p, r) as i64)
                .collect(),
        )
    };
    let parts = [
        ("ping cast", seg(&|p, _| p[1].wrapping_sub(p[0]))),
        ("ping flight", seg(&|p, r| r[0].wrapping_sub(p[1]))),
        ("ping up", seg(&|_, r| r[1].wrapping_sub(r[0]))),
        ("pong cast", seg(&|_, r| r[3].wrapping_sub(r[2]))),
        ("pong flight", seg(&|p, r| p[2].wrapping_sub(r[3]))),
        ("pong up", seg(&|p, _| p[3].wrapping_sub(p[2]))),
        ("round trip", seg(&|p, _| p[3].wrapping_sub(p[0]))),
    ];
    let line: Vec<String> = parts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("{} (TSC cycles, medians): {}", a[0], line.join(", "));
    Ok(())
}
