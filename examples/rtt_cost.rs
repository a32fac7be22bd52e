//! Round trips in one thread over the real shm driver, as
//! `benches/accel.rs` measures them, for counting instructions per round
//! trip under cachegrind or callgrind (no hardware counters needed):
//! `raw` is the bare driver, anything else a stack spec or preset.
//!
//! `cargo run --release --example rtt_cost -- <raw|stack> <fast|full> <round trips>`
//!
//! Through a stack it also prints where a hop's time goes: the payload,
//! the cast (stack, engine, driver send), the receiver's poll that
//! delivers it, taking the events, and the sender's next poll.
//! Instructions per round trip:
//! `valgrind --tool=callgrind --toggle-collect=rtt_cost::rounds target/release/examples/rtt_cost vsync fast 10000`
//! (I refs / 10000; `RTT_COST_QUIET_TIMERS=1` keeps periodic timers out
//! of the count).

mod common;

use std::collections::VecDeque;

use common::{ticks, TICKS};
use tutti::engine::{Core, DriverConfig};
use tutti::{Event, Msg};
use tutti_drivers::{Driver, To, Tx};

fn payload(d: &dyn Driver) -> Result<Msg, String> {
    let mut m = d.pool().alloc().ok_or("pool empty")?;
    m.reserve(64).map_err(|e| e.to_string())?.fill(7);
    Ok(m)
}

#[inline(never)]
fn raw_rounds(mut a: Box<dyn Driver>, mut b: Box<dyn Driver>, n: u64) -> Result<(), String> {
    let pa = a.add_peer("b").map_err(|e| e.to_string())?;
    let pb = b.add_peer("a").map_err(|e| e.to_string())?;
    let mut q = VecDeque::new();
    let mut rx = Vec::new();
    let mut acc = [0u64; 3];
    let mut hop = |from: &mut Box<dyn Driver>, to: &mut Box<dyn Driver>, p| -> Result<(), String> {
        let t0 = ticks();
        q.push_back(Tx {
            to: To::Peer(p),
            frame: payload(from.as_ref())?,
        });
        let t1 = ticks();
        while !q.is_empty() {
            from.send(&mut q).map_err(|e| e.to_string())?;
        }
        let t2 = ticks();
        while to.recv(&mut rx, 64).map_err(|e| e.to_string())? == 0 {}
        rx.clear();
        let t3 = ticks();
        acc[0] += t1 - t0;
        acc[1] += t2 - t1;
        acc[2] += t3 - t2;
        Ok(())
    };
    for _ in 0..n {
        hop(&mut a, &mut b, pa)?;
        hop(&mut b, &mut a, pb)?;
    }
    let h = (2 * n) as f64;
    eprintln!(
        "{} per hop: payload {:.0} send {:.0} recv (and drop) {:.0}",
        TICKS,
        acc[0] as f64 / h,
        acc[1] as f64 / h,
        acc[2] as f64 / h
    );
    std::mem::forget((a, b));
    Ok(())
}

fn stack(
    a: Box<dyn Driver>,
    b: Box<dyn Driver>,
    stack: &str,
    fast: bool,
    n: u64,
) -> Result<(), String> {
    let (mut cores, g) = common::pair(a, b, "rtt", stack, fast)?;
    let got = rounds(&mut cores, g, n)?;
    println!("{stack} fast={fast}: {} round trips", got[0].min(got[1]));
    // Not unmapped: valgrind's address-space manager asserts on it.
    std::mem::forget(cores);
    Ok(())
}

// The phases of a hop, apart for callgrind (`--dump-instr` not needed:
// each is a function of its own).
#[inline(never)]
fn phase_cast(c: &mut Core, g: usize, m: &Msg) -> Result<(), tutti::SendError> {
    c.cast(g, m.share())
}
#[inline(never)]
fn phase_recv(c: &mut Core) -> Result<usize, String> {
    c.poll().map_err(|e| e.to_string())
}
#[inline(never)]
fn phase_events(c: &mut Core, g: usize, from: usize) -> bool {
    let mut hit = false;
    while let Some(ev) = c.next_event(g) {
        hit |= matches!(ev, Event::Cast { src, .. } if src as usize == from);
    }
    hit
}

/// The measured part (callgrind: `--toggle-collect=rtt_cost::rounds`).
#[inline(never)]
fn rounds(cores: &mut [Core; 2], g: [usize; 2], n: u64) -> Result<[u64; 2], String> {
    let mut got = [0u64; 2];
    let mut acc = [0u64; 5];
    for i in 0..2 * n {
        let from = (i % 2) as usize;
        let to = 1 - from;
        let t0 = ticks();
        let m = payload(cores[from].driver())?;
        let t1 = ticks();
        while phase_cast(&mut cores[from], g[from], &m).is_err() {
            cores[from].poll().map_err(|e| e.to_string())?;
            cores[to].poll().map_err(|e| e.to_string())?;
        }
        drop(m);
        let t2 = ticks();
        loop {
            let a = ticks();
            phase_recv(&mut cores[to])?;
            let b = ticks();
            let hit = phase_events(&mut cores[to], g[to], from);
            let c = ticks();
            cores[from].poll().map_err(|e| e.to_string())?;
            while cores[from].next_event(g[from]).is_some() {}
            let d = ticks();
            acc[2] += b - a;
            acc[3] += c - b;
            acc[4] += d - c;
            if hit {
                got[to] += 1;
                break;
            }
        }
        acc[0] += t1 - t0;
        acc[1] += t2 - t1;
    }
    let h = (2 * n) as f64;
    eprintln!(
        "{} per hop: payload {:.0} cast {:.0} recv-poll {:.0} events {:.0} sender-poll {:.0}",
        TICKS,
        acc[0] as f64 / h,
        acc[1] as f64 / h,
        acc[2] as f64 / h,
        acc[3] as f64 / h,
        acc[4] as f64 / h
    );
    Ok(got)
}

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: rtt_cost <raw|stack> <fast|full> <round trips>";
    if a.len() != 3 {
        return Err(usage.into());
    }
    let n: u64 = a[2].parse().map_err(|_| usage)?;
    let d = std::env::temp_dir().join(format!("tutti-rtt-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let da = DriverConfig::shm(&d, "a")
        .open()
        .map_err(|e| e.to_string())?;
    let db = DriverConfig::shm(&d, "b")
        .open()
        .map_err(|e| e.to_string())?;
    let r = if a[0] == "raw" {
        raw_rounds(da, db, n)
    } else {
        stack(da, db, &a[0], a[1] == "fast", n)
    };
    let _ = std::fs::remove_dir_all(&d);
    r
}
