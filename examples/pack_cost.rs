//! Packed casts in one thread over the real shm driver, for counting
//! instructions per cast under callgrind (no hardware counters needed):
//! member 0 casts batches of 64-byte casts (`Core::cast_batch`, which
//! packs them), member 1 polls until it delivered the batch, member 0
//! polls for the acknowledgements and its own deliveries.
//!
//! `cargo run --release --example pack_cost -- <stack> <batch> <batches> [discard-own] [in-place]`
//! (`discard-own`: the members do not take their own casts; `in-place`:
//! the payloads are written into a `Packer`'s frame, not a buffer each).
//!
//! Prints TSC cycles per cast by phase (payloads, the cast, the
//! receiver's polls with its events, the sender's poll with its own).
//! Instructions per cast, by phase:
//! `RTT_COST_QUIET_TIMERS=1 valgrind --tool=callgrind --toggle-collect=pack_cost::batches target/release/examples/pack_cost vsync 64 2000`
//! (I refs / (64 * 2000); `callgrind_annotate` splits them by function,
//! `pack_cost::phase_*` being the phases).

mod common;

use std::collections::VecDeque;

use common::ticks;
use tutti::engine::{Core, DriverConfig};
use tutti::{Event, Msg};

#[inline(never)]
fn phase_payloads(
    c: &mut Core,
    n: usize,
    q: &mut VecDeque<Msg>,
    in_place: bool,
) -> Result<(), String> {
    if in_place {
        let mut p = c.packer().ok_or("no frame buffer")?;
        for _ in 0..n {
            p.cast(64).ok_or("frame full")?.fill(7);
        }
        p.finish(q);
        return Ok(());
    }
    for _ in 0..n {
        let mut m = c.alloc().ok_or("pool empty")?;
        m.reserve(64).map_err(|e| e.to_string())?.fill(7);
        q.push_back(m);
    }
    Ok(())
}

#[inline(never)]
fn phase_cast(c: &mut Core, g: usize, q: &mut VecDeque<Msg>) -> Result<usize, String> {
    c.cast_batch(g, q).map_err(|e| e.kind.to_string())
}

#[inline(never)]
fn phase_recv(c: &mut Core, g: usize) -> Result<u64, String> {
    c.poll().map_err(|e| e.to_string())?;
    let mut n = 0;
    while let Some(ev) = c.next_event(g) {
        n += matches!(ev, Event::Cast { src: 0, .. }) as u64;
    }
    Ok(n)
}

#[inline(never)]
fn phase_sender(c: &mut Core, g: usize) -> Result<(), String> {
    c.poll().map_err(|e| e.to_string())?;
    while c.next_event(g).is_some() {}
    Ok(())
}

/// The measured part (callgrind: `--toggle-collect=pack_cost::batches`).
#[inline(never)]
fn batches(
    cores: &mut [Core; 2],
    g: [usize; 2],
    batch: usize,
    n: u64,
    in_place: bool,
) -> Result<u64, String> {
    let mut q = VecDeque::with_capacity(batch);
    let mut got = 0u64;
    let mut acc = [0u64; 4];
    for _ in 0..n {
        let t0 = ticks();
        phase_payloads(&mut cores[0], batch, &mut q, in_place)?;
        let t1 = ticks();
        let want = got + batch as u64;
        while !q.is_empty() {
            if phase_cast(&mut cores[0], g[0], &mut q)? == 0 {
                phase_sender(&mut cores[0], g[0])?;
                got += phase_recv(&mut cores[1], g[1])?;
            }
        }
        let t2 = ticks();
        let mut polls = 0u64;
        while got < want {
            got += phase_recv(&mut cores[1], g[1])?;
            polls += 1;
            if polls > 100_000_000 {
                return Err("batch never delivered".into());
            }
        }
        let t3 = ticks();
        phase_sender(&mut cores[0], g[0])?;
        let t4 = ticks();
        acc[0] += t1 - t0;
        acc[1] += t2 - t1;
        acc[2] += t3 - t2;
        acc[3] += t4 - t3;
    }
    let c = (n * batch as u64) as f64;
    eprintln!(
        "ticks per cast: payload {:.1} cast {:.1} receiver {:.1} sender-poll {:.1}",
        acc[0] as f64 / c,
        acc[1] as f64 / c,
        acc[2] as f64 / c,
        acc[3] as f64 / c
    );
    Ok(got)
}

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: pack_cost <stack> <batch> <batches> [discard-own] [in-place]";
    if a.len() < 3 {
        return Err(usage.into());
    }
    let (mut discard_own, mut in_place) = (false, false);
    for o in &a[3..] {
        match o.as_str() {
            "discard-own" => discard_own = true,
            "in-place" => in_place = true,
            _ => return Err(usage.into()),
        }
    }
    let batch: usize = a[1].parse().map_err(|_| usage)?;
    let n: u64 = a[2].parse().map_err(|_| usage)?;
    let d = std::env::temp_dir().join(format!("tutti-pack-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let open = |name: &str| {
        DriverConfig::shm(&d, name)
            .open()
            .map_err(|e| e.to_string())
    };
    let (mut cores, g) =
        common::pair_with(open("a")?, open("b")?, "pack", &a[0], true, discard_own)?;
    let got = batches(&mut cores, g, batch, n, in_place)?;
    println!("{}: {got} casts delivered", a[0]);
    // Not unmapped: valgrind's address-space manager asserts on it.
    std::mem::forget(cores);
    let _ = std::fs::remove_dir_all(&d);
    Ok(())
}
