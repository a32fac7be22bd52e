//! `tutti bench pingpong --compare`: the bare driver and the stack measured
//! in the same two processes, alternating blocks of round trips.
//!
//! Two separate runs compare badly on a shared or virtual machine: where
//! the scheduler puts the two processes (two cores, or two hyperthreads of
//! one) moves the raw round trip by a factor of two from run to run. Here
//! each process holds two endpoints, one used bare and one under the
//! stack, and rank 0 alternates blocks of pings between them, so both
//! figures come from the same placement and the same moments; the
//! difference is the stack's cost.

use std::time::{Duration, Instant};

use super::bench::{
    handshake, open, percentiles_of, pin, progress, tick, BenchOpts, BenchResult, Link, Peer, PING,
    STOP,
};
use super::common::{histogram, Idler};

/// Round trips per block; each block starts with a few unrecorded ones
/// (the other endpoint's caches and the responder's loop switch over).
const BLOCK: u64 = 2000;
const BLOCK_WARM: u64 = 50;

/// The endpoints of the compared pair: `members` lists the stack's
/// addresses then the raw ones (two each).
pub(super) fn split(members: &[String]) -> Result<(&[String], &[String]), String> {
    if members.len() != 4 {
        return Err("--compare takes four --members: the stack's two, then the raw two".into());
    }
    Ok(members.split_at(2))
}

fn links(
    o: &BenchOpts,
    members: &[String],
    rank: usize,
    dir: &std::path::Path,
) -> Result<[Link; 2], String> {
    let (stack, raw) = split(members)?;
    let mut ro = o.clone();
    ro.raw = true;
    let mut so = o.clone();
    so.raw = false;
    let mut r = open(&ro, raw, &raw[rank], dir)?;
    let mut s = open(&so, stack, &stack[rank], dir)?;
    // Both sides do the raw handshake first.
    handshake(&mut r, 2, rank, &mut |_, _| {})?;
    handshake(&mut s, 2, rank, &mut |_, _| {})?;
    Ok([r, s])
}

/// Rank 0: measures; returns the raw and the stack result.
pub(super) fn rank0(
    o: &BenchOpts,
    members: &[String],
    dir: &std::path::Path,
) -> Result<(BenchResult, BenchResult), String> {
    let mut l = links(o, members, 0, dir)?;
    pin(0);
    let mut h = [histogram(), histogram()];
    let mut out = Vec::new();
    let mut idler = Idler::new();
    let blocks = o.count.div_ceil(BLOCK).max(1);
    let pb = progress(2 * blocks * BLOCK);
    let mut shown = false;
    let started = Instant::now();
    let mut i = 0u64;
    for b in 0..2 * blocks {
        let e = &mut l[(b % 2) as usize];
        let h = &mut h[(b % 2) as usize];
        for j in 0..BLOCK + BLOCK_WARM {
            let rtt = e.ping(i, o.size, &mut out, &mut idler)?;
            i += 1;
            if j >= BLOCK_WARM {
                let _ = h.record(rtt.max(1));
            }
        }
        tick(&pb, started, &mut shown, (b + 1) * BLOCK);
    }
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    // STOP through the stack (FIFO after every ping) ends the responder.
    let upto = l[1].casts_sent() + 1;
    let m = l[1].payload(STOP, upto, super::bench::MIN)?;
    l[1].send(m)?;
    let all = l[1].casts_sent();
    l[1].settle(0, all, &mut out)?;
    let result = |raw: bool, h: &hdrhistogram::Histogram<u64>| {
        let p = percentiles_of(h);
        BenchResult {
            mode: "pingpong".into(),
            driver: o.driver.clone(),
            stack: if raw { "raw".into() } else { o.stack.clone() },
            size: o.size.max(super::bench::MIN),
            count: h.len(),
            metric: "rtt".into(),
            p50_ns: p.p50_ns,
            p90_ns: p.p90_ns,
            p99_ns: p.p99_ns,
            p999_ns: p.p999_ns,
            max_ns: p.max_ns,
            // Both kinds share the wall clock: each got half of it.
            msgs_per_s: h.len() as f64 / (secs / 2.0),
            received: h.len(),
            receivers: 1,
            ..BenchResult::default()
        }
    };
    Ok((result(true, &h[0]), result(false, &h[1])))
}

/// Rank 1: answers pings on whichever endpoint they come, polling that one
/// and looking at the other only now and then (so that neither figure
/// pays for polling both), until STOP comes through the stack.
pub(super) fn responder(
    o: &BenchOpts,
    members: &[String],
    dir: &std::path::Path,
) -> Result<(), String> {
    let mut l = links(o, members, 1, dir)?;
    pin(1);
    let mut st = Peer::new(1);
    let mut out = Vec::new();
    let mut idler = Idler::new();
    let mut cur = 0usize;
    let mut n = 0u64;
    let t0 = Instant::now();
    loop {
        n += 1;
        let look = if n % 256 == 0 { 1 - cur } else { cur };
        let w = l[look].poll(&mut out, &mut |src, b| st.on(src, b))?;
        let pings = std::mem::take(&mut st.pings);
        if pings > 0 {
            cur = look;
        }
        for _ in 0..pings {
            let m = l[cur].payload(PING, 1, o.size)?;
            l[cur].send(m)?;
        }
        if st.stop.is_some() {
            break;
        }
        if st.first.is_none() && n % 4096 == 0 && t0.elapsed() > Duration::from_secs(60) {
            return Err("no message from rank 0 within 60 s".into());
        }
        l[cur].idle(&mut idler, w + pings as usize);
    }
    l[1].settle(0, st.stop.unwrap_or(0), &mut out)
}

/// Prints both results and the stack's cost over the raw driver.
pub(super) fn print(o: &BenchOpts, raw: &BenchResult, stack: &BenchResult) {
    let d = |s: u64, r: u64| s as i64 - r as i64;
    if o.json {
        let v = serde_json::json!({
            "mode": "pingpong-compare",
            "driver": stack.driver,
            "stack": stack.stack,
            "size": stack.size,
            "count": stack.count,
            "p50_ns": stack.p50_ns,
            "p90_ns": stack.p90_ns,
            "p99_ns": stack.p99_ns,
            "p999_ns": stack.p999_ns,
            "max_ns": stack.max_ns,
            "msgs_per_s": stack.msgs_per_s,
            "raw": raw,
            "p50_over_raw_ns": d(stack.p50_ns, raw.p50_ns),
            "p90_over_raw_ns": d(stack.p90_ns, raw.p90_ns),
            "p99_over_raw_ns": d(stack.p99_ns, raw.p99_ns),
        });
        println!("{v}");
        return;
    }
    println!(
        "pingpong over {}, raw and {} alternating in blocks of {BLOCK}: {} round trips each, {} B",
        stack.driver, stack.stack, stack.count, stack.size
    );
    for r in [raw, stack] {
        println!(
            "  {:<16} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            r.stack,
            super::common::fmt_ns(r.p50_ns),
            super::common::fmt_ns(r.p90_ns),
            super::common::fmt_ns(r.p99_ns),
            super::common::fmt_ns(r.p999_ns),
            super::common::fmt_ns(r.max_ns)
        );
    }
    println!(
        "  stack - raw:     p50 {:+} ns  p90 {:+} ns  p99 {:+} ns",
        d(stack.p50_ns, raw.p50_ns),
        d(stack.p90_ns, raw.p90_ns),
        d(stack.p99_ns, raw.p99_ns)
    );
}
