//! `tutti bench pingpong|throughput`: multi-process measurements through a
//! stack, or through the bare driver (`--raw`) for the limit beside it.
//!
//! Locally the command starts its peers itself (same command, with
//! `--members` and `--me`); across hosts or namespaces run it on each
//! side with the same `--members` and that side's `--me`. Rank 0
//! measures. Everything runs inline (no thread hop): each process polls
//! its own core.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tutti::Msg;

use super::common::{fmt_ns, free_udp_addrs, histogram, mono_ns, percentiles, shm_dir, Idler};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Round trips between two processes.
    Pingpong,
    /// One sender, N receivers, as fast as possible.
    Throughput,
    /// Every member of a group with membership sends as fast as it can
    /// (`--stack` may list several stacks to compare, comma-separated).
    Group,
}

/// Options of `tutti bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOpts {
    /// pingpong or throughput.
    #[arg(value_enum)]
    pub mode: Mode,
    /// shm, uring or udp.
    #[arg(long, default_value = "shm")]
    pub driver: String,
    /// Stack spec or preset.
    #[arg(long, default_value = "com:nak:stable")]
    pub stack: String,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages (round trips for pingpong).
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Measure the bare driver, no stack.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Receivers (throughput).
    #[arg(long, default_value_t = 2)]
    pub receivers: usize,
    /// All members' addresses in rank order (run on each host; rank 0
    /// measures). Without it, the peers are started here.
    #[arg(long, value_delimiter = ',')]
    pub members: Option<Vec<String>>,
    /// This member's address (with --members).
    #[arg(long)]
    pub me: Option<String>,
    /// Directory for shm endpoint files.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Members (group mode).
    #[arg(long, default_value_t = 3)]
    pub group_size: usize,
    /// Throughput and group modes: the sender hands messages over in
    /// batches of this many (through a stack the fast path packs a batch
    /// into shared frames; raw, the driver sends a batch in one call).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Run every message through the full path of the stack (the Protocol
    /// Accelerator's fast path off), for comparison.
    #[arg(long)]
    pub full_path: bool,
    /// Throughput through a stack: the sender writes each batch's casts
    /// in place into the frame that carries them (`Core::packer`), where
    /// otherwise each goes into a buffer of its own that the stack copies
    /// into a frame.
    #[arg(long)]
    pub in_place: bool,
    /// Members do not take their own casts (`StackConfig::discard_own`,
    /// JGroups' `discard_own_messages`): a sender saves their delivery.
    #[arg(long)]
    pub discard_own: bool,
    /// Pingpong: measure the bare driver and the stack in the same two
    /// processes, alternating blocks of round trips, and print both with
    /// the difference (free of where the scheduler put the processes).
    #[arg(long)]
    pub compare: bool,
    /// At the end, each member prints its driver's and its stack's
    /// counters (frames, losses on full rings, NAKs, retransmissions,
    /// packing, drops by reason) to stderr.
    #[arg(long)]
    pub counters: bool,
}

/// The result line (`--json` prints exactly this).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BenchResult {
    pub mode: String,
    pub driver: String,
    pub stack: String,
    pub size: usize,
    pub count: u64,
    /// "rtt" (pingpong) or "one-way" (throughput).
    pub metric: String,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub msgs_per_s: f64,
    pub received: u64,
    pub receivers: usize,
    /// Bytes rank 0 put on the wire per message and receiver beyond the
    /// payload: headers, packing, and every control frame.
    #[serde(default)]
    pub wire_overhead: f64,
}

pub(super) use super::common::percentiles as percentiles_of;
pub(super) use super::link::{handshake, index_of, open, pin, stamp, Link, MIN, PING, STOP};

pub fn run(o: &BenchOpts) -> ExitCode {
    if o.size == 0 || o.count == 0 {
        eprintln!("error: --size and --count must be positive");
        return ExitCode::from(2);
    }
    if o.mode == Mode::Group {
        return super::groupbench::run(o);
    }
    if o.in_place && (o.mode != Mode::Throughput || o.raw) {
        eprintln!("error: --in-place is for throughput through a stack");
        return ExitCode::from(2);
    }
    if o.compare && (o.mode != Mode::Pingpong || o.raw) {
        eprintln!("error: --compare is for pingpong through a stack (it measures --raw beside it)");
        return ExitCode::from(2);
    }
    match (&o.members, &o.me) {
        (Some(m), Some(me)) => {
            let dir = o.dir.clone().unwrap_or_else(|| shm_dir("bench"));
            match role(o, m, me, &dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        (None, None) => local(o),
        _ => {
            eprintln!("error: give both --members and --me, or neither (to start the peers here)");
            ExitCode::from(2)
        }
    }
}

/// Starts the peers as child processes and measures as rank 0.
fn local(o: &BenchOpts) -> ExitCode {
    let n = match o.mode {
        // Compared: each process has a stack endpoint and a raw one.
        Mode::Pingpong if o.compare => 4,
        Mode::Pingpong => 2,
        Mode::Throughput => 1 + o.receivers.max(1),
        Mode::Group => o.group_size,
    };
    let members: Vec<String> = match o.driver.as_str() {
        "shm" if o.compare => ["b0", "b1", "b0r", "b1r"].map(String::from).to_vec(),
        "shm" => (0..n).map(|i| format!("b{i}")).collect(),
        _ => free_udp_addrs(n),
    };
    if members.len() != n {
        eprintln!("error: could not find free ports");
        return ExitCode::FAILURE;
    }
    let dir = o.dir.clone().unwrap_or_else(|| shm_dir("bench"));
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mode = match o.mode {
        Mode::Pingpong => "pingpong",
        Mode::Throughput => "throughput",
        Mode::Group => "group",
    };
    let mut kids = Vec::new();
    let peers = if o.compare {
        &members[1..2]
    } else {
        &members[1..]
    };
    for me in peers {
        let mut c = Command::new(&exe);
        c.args(["bench", mode, "--driver", &o.driver, "--stack", &o.stack])
            .args([
                "--size",
                &o.size.to_string(),
                "--count",
                &o.count.to_string(),
            ])
            .args(["--members", &members.join(","), "--me", me, "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if o.raw {
            c.arg("--raw");
        }
        if o.full_path {
            c.arg("--full-path");
        }
        if o.discard_own {
            c.arg("--discard-own");
        }
        if o.compare {
            c.arg("--compare");
        }
        if o.counters {
            c.arg("--counters");
        }
        match c.spawn() {
            Ok(k) => kids.push(k),
            Err(e) => {
                eprintln!("error: cannot start a peer: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let res = measure(o, &members, &dir, kids);
    let _ = std::fs::remove_dir_all(&dir);
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn measure(
    o: &BenchOpts,
    members: &[String],
    dir: &std::path::Path,
    kids: Vec<std::process::Child>,
) -> Result<(), String> {
    if o.compare {
        let out = super::compare::rank0(o, members, dir);
        let _ = reap(kids);
        let (raw, stack) = out?;
        super::compare::print(o, &raw, &stack);
        return Ok(());
    }
    let out = role_rank0(o, members, &members[0], dir);
    let reports = reap(kids);
    let mut r = out?;
    if o.mode == Mode::Throughput {
        if reports.is_empty() {
            return Err("no receiver reported".into());
        }
        r.msgs_per_s = reports
            .iter()
            .map(|x| x.msgs_per_s)
            .fold(f64::INFINITY, f64::min);
        r.received = reports.iter().map(|x| x.received).min().unwrap_or(0);
        // The slowest receiver's latency tail.
        if let Some(w) = reports.iter().max_by_key(|x| x.p99_ns) {
            (r.p50_ns, r.p90_ns, r.p99_ns, r.p999_ns, r.max_ns) =
                (w.p50_ns, w.p90_ns, w.p99_ns, w.p999_ns, w.max_ns);
        }
        r.receivers = reports.len();
    }
    print_result(o, &r);
    Ok(())
}

/// Collects the peers' reports (throughput) and reaps them.
fn reap(kids: Vec<std::process::Child>) -> Vec<BenchResult> {
    let mut reports = Vec::new();
    for mut k in kids {
        if let Some(so) = k.stdout.take() {
            for line in BufReader::new(so).lines().map_while(Result::ok) {
                if let Ok(r) = serde_json::from_str::<BenchResult>(&line) {
                    reports.push(r);
                }
            }
        }
        let t0 = Instant::now();
        loop {
            match k.try_wait() {
                Ok(Some(_)) => break,
                _ if t0.elapsed() > Duration::from_secs(10) => {
                    let _ = k.kill();
                    let _ = k.wait();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    reports
}

fn print_result(o: &BenchOpts, r: &BenchResult) {
    if o.json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "{} over {} through {}: {} messages of {} B",
        r.mode, r.driver, r.stack, r.count, r.size
    );
    println!(
        "  {:<8} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        r.metric,
        fmt_ns(r.p50_ns),
        fmt_ns(r.p90_ns),
        fmt_ns(r.p99_ns),
        fmt_ns(r.p999_ns),
        fmt_ns(r.max_ns)
    );
    if r.mode == "throughput" {
        println!(
            "  {:.0} messages/s at the slowest of {} receivers ({} of {} received)",
            r.msgs_per_s, r.receivers, r.received, r.count
        );
    } else {
        println!("  {:.0} round trips/s", r.msgs_per_s);
    }
    println!(
        "  {:.1} bytes on the wire per message and receiver beyond the payload (headers, packing, control frames)",
        r.wire_overhead
    );
}

pub(super) fn progress(count: u64) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}") {
        pb.set_style(style);
    }
    pb
}

/// Shows the bar only once a run has taken 2 s.
pub(super) fn tick(pb: &ProgressBar, started: Instant, shown: &mut bool, pos: u64) {
    if !*shown && started.elapsed() > Duration::from_secs(2) {
        pb.set_draw_target(ProgressDrawTarget::stderr());
        *shown = true;
    }
    pb.set_position(pos);
}

fn role(o: &BenchOpts, members: &[String], me: &str, dir: &std::path::Path) -> Result<(), String> {
    if o.compare {
        let (stack, _) = super::compare::split(members)?;
        return match stack.iter().position(|m| m == me) {
            Some(0) => {
                let (raw, stack) = super::compare::rank0(o, members, dir)?;
                super::compare::print(o, &raw, &stack);
                Ok(())
            }
            Some(_) => super::compare::responder(o, members, dir),
            None => Err("--me is not among the stack's --members".into()),
        };
    }
    let rank = members
        .iter()
        .position(|m| m == me)
        .ok_or("--me is not in --members")?;
    if rank == 0 {
        let r = role_rank0(o, members, me, dir)?;
        print_result(o, &r);
        return Ok(());
    }
    let n = members.len();
    let mut e = open(o, members, me, dir)?;
    if o.mode == Mode::Pingpong {
        pin(rank);
    }
    // One handler for everything a peer receives, from the first poll of
    // the handshake on.
    let mut st = Peer::new(rank);
    handshake(&mut e, n, rank, &mut |src, b| st.on(src, b))?;
    let mut out = Vec::new();
    let mut idler = Idler::new();
    let t0 = Instant::now();
    loop {
        let w = e.poll(&mut out, &mut |src, b| st.on(src, b))?;
        let pings = std::mem::take(&mut st.pings);
        if o.mode == Mode::Pingpong {
            for _ in 0..pings {
                let m = e.payload(PING, 1, o.size)?;
                e.send(m)?;
            }
        }
        if st.stop.is_some() {
            break;
        }
        // Through a stack STOP comes after all the data (FIFO); raw frames
        // can be lost, so raw receivers also stop at the count or after a
        // second of silence.
        let silent = o.raw && st.first.is_some() && st.last.elapsed() > Duration::from_secs(1);
        if o.mode == Mode::Throughput && o.raw && (st.got >= o.count || silent) {
            break;
        }
        if st.first.is_none() && t0.elapsed() > Duration::from_secs(60) {
            return Err("no message from rank 0 within 60 s".into());
        }
        e.idle(&mut idler, w + pings as usize);
    }
    if o.mode == Mode::Throughput {
        let secs = st
            .first
            .map(|f| st.last.duration_since(f).as_secs_f64())
            .unwrap_or(0.0);
        let p = percentiles(&st.hist);
        let r = BenchResult {
            received: st.got,
            msgs_per_s: if secs > 0.0 {
                st.got as f64 / secs
            } else {
                0.0
            },
            p50_ns: p.p50_ns,
            p90_ns: p.p90_ns,
            p99_ns: p.p99_ns,
            p999_ns: p.p999_ns,
            max_ns: p.max_ns,
            ..BenchResult::default()
        };
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    }
    // Stay until rank 0's casts, STOP included, are everywhere.
    let r = e.settle(0, st.stop.unwrap_or(0), &mut out);
    if o.counters {
        e.print_counters(st.rank);
    }
    r
}

/// What a peer (rank > 0) keeps while it receives.
pub(super) struct Peer {
    pub(super) rank: usize,
    /// Pings not yet answered (pingpong).
    pub(super) pings: u32,
    /// STOP seen, with rank 0's cast count in it.
    pub(super) stop: Option<u64>,
    pub(super) got: u64,
    pub(super) first: Option<Instant>,
    pub(super) last: Instant,
    pub(super) hist: hdrhistogram::Histogram<u64>,
}

impl Peer {
    pub(super) fn new(rank: usize) -> Peer {
        Peer {
            rank,
            pings: 0,
            stop: None,
            got: 0,
            first: None,
            last: Instant::now(),
            hist: histogram(),
        }
    }

    pub(super) fn on(&mut self, src: usize, b: &[u8]) {
        if src == self.rank || b.len() < MIN {
            return;
        }
        match b[0] {
            PING => {
                self.pings += 1;
                self.got += 1;
                let ts = b[9..17].try_into().map(u64::from_be_bytes).unwrap_or(0);
                if ts != 0 || self.first.is_none() {
                    let now = Instant::now();
                    self.first.get_or_insert(now);
                    self.last = now;
                    if ts != 0 {
                        let _ = self.hist.record(mono_ns().saturating_sub(ts).max(1));
                    }
                }
            }
            STOP => {
                self.last = Instant::now();
                self.stop = Some(index_of(b));
            }
            _ => {}
        }
    }
}

fn role_rank0(
    o: &BenchOpts,
    members: &[String],
    me: &str,
    dir: &std::path::Path,
) -> Result<BenchResult, String> {
    let n = members.len();
    let mut e = open(o, members, me, dir)?;
    if o.mode == Mode::Pingpong {
        pin(0);
    }
    handshake(&mut e, n, 0, &mut |_, _| {})?;
    let mut out = Vec::new();
    let mut idler = Idler::new();
    let mut r = BenchResult {
        mode: match o.mode {
            Mode::Pingpong => "pingpong".into(),
            Mode::Throughput => "throughput".into(),
            Mode::Group => "group".into(),
        },
        driver: o.driver.clone(),
        stack: if o.raw { "raw".into() } else { o.stack.clone() },
        size: o.size.max(MIN),
        count: o.count,
        receivers: n - 1,
        ..BenchResult::default()
    };
    let pb = progress(o.count);
    let mut shown = false;
    match o.mode {
        Mode::Pingpong => {
            r.metric = "rtt".into();
            let warm = (o.count / 10).clamp(100, 10_000);
            let mut h = histogram();
            let started = Instant::now();
            for i in 0..warm + o.count {
                let rtt = e.ping(i, o.size, &mut out, &mut idler)?;
                if i >= warm {
                    let _ = h.record(rtt.max(1));
                }
                if i % 1024 == 0 {
                    tick(&pb, started, &mut shown, i.saturating_sub(warm));
                }
            }
            let secs = started.elapsed().as_secs_f64();
            let p = percentiles(&h);
            (r.p50_ns, r.p90_ns, r.p99_ns, r.p999_ns, r.max_ns) =
                (p.p50_ns, p.p90_ns, p.p99_ns, p.p999_ns, p.max_ns);
            r.msgs_per_s = (warm + o.count) as f64 / secs;
            r.received = o.count;
        }
        Mode::Throughput if o.in_place => {
            r.metric = "one-way".into();
            in_place(o, &mut e, &pb, &mut shown, &mut out)?;
        }
        Mode::Throughput | Mode::Group => {
            r.metric = "one-way".into();
            let started = Instant::now();
            let batch = o.batch.max(1) as u64;
            let mut q = VecDeque::with_capacity(batch as usize);
            for i in 0..o.count {
                // Buffers come back as receivers finish with them.
                let m = loop {
                    match e.payload(PING, i, o.size) {
                        Ok(m) => break m,
                        Err(_) => {
                            e.send_batch(&mut q)?;
                            e.poll(&mut out, &mut |_, _| {})?;
                        }
                    }
                };
                if batch == 1 {
                    e.send(m)?;
                } else {
                    q.push_back(m);
                    if q.len() as u64 >= batch || i + 1 == o.count {
                        e.send_batch(&mut q)?;
                    }
                }
                if i % 64 == 0 {
                    e.poll(&mut out, &mut |_, _| {})?;
                }
                if i % 4096 == 0 {
                    tick(&pb, started, &mut shown, i);
                }
            }
        }
    }
    pb.finish_and_clear();
    // Tell the peers to stop, with how many casts we will have made: they
    // stay until those are everywhere, and so do we. Raw frames may be
    // lost, so raw STOP repeats.
    let stops = if o.raw { 5 } else { 1 };
    for _ in 0..stops {
        let upto = e.casts_sent() + 1;
        let m = e.payload(STOP, upto, MIN)?;
        e.send(m)?;
        let t = Instant::now();
        while o.raw && t.elapsed() < Duration::from_millis(20) {
            e.poll(&mut out, &mut |_, _| {})?;
        }
    }
    let all = e.casts_sent();
    e.settle(0, all, &mut out)?;
    let sent = match o.mode {
        Mode::Pingpong => (o.count / 10).clamp(100, 10_000) + o.count,
        _ => o.count,
    };
    if o.counters {
        e.print_counters(0);
    }
    let tx = e.stats().tx_bytes as f64 / (sent as f64 * (n - 1).max(1) as f64);
    r.wire_overhead = tx - r.size as f64;
    Ok(r)
}

/// Rank 0's casts for `--in-place`: each batch written into a `Packer`'s
/// frame, then cast.
fn in_place(
    o: &BenchOpts,
    e: &mut Link,
    pb: &ProgressBar,
    shown: &mut bool,
    out: &mut Vec<Msg>,
) -> Result<(), String> {
    let started = Instant::now();
    let batch = o.batch.max(1) as u64;
    let size = o.size.max(MIN);
    let mut q = VecDeque::with_capacity(batch as usize);
    let mut i = 0;
    let mut polled = 0;
    while i < o.count {
        // Frames come back as receivers finish with them.
        let mut p = loop {
            match e.packer()? {
                Some(p) => break p,
                None => {
                    e.poll(out, &mut |_, _| {})?;
                }
            }
        };
        let upto = (i + batch).min(o.count);
        while i < upto {
            let Some(b) = p.cast(size) else {
                break;
            };
            stamp(b, PING, i);
            i += 1;
        }
        if p.is_empty() {
            return Err(format!("a {size}-byte cast does not fit a frame"));
        }
        p.finish(&mut q);
        e.send_batch(&mut q)?;
        if i - polled >= 64 {
            polled = i;
            e.poll(out, &mut |_, _| {})?;
            tick(pb, started, shown, i);
        }
    }
    Ok(())
}
