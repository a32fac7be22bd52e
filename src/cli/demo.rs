//! `tutti demo`: a group of processes on this host over shared memory.
//!
//! The parent starts N member processes (`tutti demo-member`, hidden).
//! Each joins the group, waits until it has heard every member (so no
//! one measures start-up repair), multicasts timestamped messages at a
//! steady rate for a few seconds, announces how many it sent, keeps
//! receiving until it has everything from everyone, then stays until its
//! own messages are stable (everyone holds them) and prints one JSON line.
//! The parent checks the lines: per-sender FIFO, completeness, and merges
//! the latency figures.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tutti::engine::{Core, Event, GroupIx, GroupSpec};

use super::common::{driver_config, fmt_ns, histogram, mono_ns, percentiles, shm_dir, Percentiles};

/// Options shared by the parent and its members.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoOpts {
    /// Member processes.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Seconds of multicasting.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Multicasts per second per member.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Payload bytes (at least 17).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Stack spec or preset.
    #[arg(long, default_value = "fifo")]
    pub stack: String,
    /// Then show membership: a join, a member killed, views as a timeline.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub membership: bool,
    /// Failure-detector timeout of the membership part, ms.
    #[arg(long, default_value_t = 50)]
    pub timeout_ms: u64,
}

impl DemoOpts {
    /// Why these options cannot run, if they cannot.
    pub fn invalid(&self) -> Option<&'static str> {
        if !(2..=32).contains(&self.members) {
            Some("--members must be 2..=32")
        } else if !(0.1..=3600.0).contains(&self.seconds) {
            Some("--seconds must be 0.1..=3600")
        } else if self.size < HDR {
            Some("--size must be at least 17")
        } else if self.rate == 0 {
            Some("--rate must be positive")
        } else {
            None
        }
    }
}

const HELLO: u8 = 1;
const DATA: u8 = 2;
const DONE: u8 = 3;
const HDR: usize = 1 + 8 + 8;

/// One member's report.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MemberReport {
    pub name: String,
    pub rank: usize,
    pub sent: u64,
    /// Data messages delivered, per sender rank.
    pub delivered: Vec<u64>,
    /// Counts the senders announced.
    pub announced: Vec<u64>,
    pub fifo_ok: bool,
    pub complete: bool,
    /// Every member's casts were stable here before leaving.
    pub stable: bool,
    pub latency: Percentiles,
    pub drops: BTreeMap<String, u64>,
    pub retransmits: u64,
    pub errors: Vec<String>,
}

pub fn parent(o: &DemoOpts) -> ExitCode {
    let dir = shm_dir("demo");
    let names: Vec<String> = (0..o.members).map(|i| format!("m{i}")).collect();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "tutti demo: {} processes over shm ({}), stack {}, {} msgs/s each of {} B for {:.1} s",
        o.members,
        dir.display(),
        o.stack,
        o.rate,
        o.size,
        o.seconds
    );
    let mut kids = Vec::new();
    for n in &names {
        let child = Command::new(&exe)
            .args(["demo-member", "--dir"])
            .arg(&dir)
            .args(["--name", n, "--names", &names.join(",")])
            .args(["--members", &o.members.to_string()])
            .args([
                "--seconds",
                &o.seconds.to_string(),
                "--rate",
                &o.rate.to_string(),
            ])
            .args(["--size", &o.size.to_string(), "--stack", &o.stack])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match child {
            Ok(c) => kids.push(c),
            Err(e) => {
                eprintln!("error: cannot start member {n}: {e}");
                for mut k in kids {
                    let _ = k.kill();
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds + 60.0);
    let mut reports: Vec<Option<MemberReport>> = (0..o.members).map(|_| None).collect();
    let mut ok = true;
    for (i, mut k) in kids.into_iter().enumerate() {
        let out = k.stdout.take();
        let mut report = None;
        if let Some(out) = out {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(r) = serde_json::from_str::<MemberReport>(&line) {
                    report = Some(r);
                }
            }
        }
        let status = loop {
            match k.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = k.kill();
                    break None;
                }
            }
        };
        if !status.is_some_and(|s| s.success()) {
            eprintln!("member m{i} failed: {status:?}");
            ok = false;
        }
        reports[i] = report;
    }
    let _ = std::fs::remove_dir_all(&dir);
    ok &= summarize(&reports);
    if o.membership {
        ok &= super::timeline::run(o.timeout_ms);
    }
    if ok {
        println!("demo: all checks hold");
        ExitCode::SUCCESS
    } else {
        println!("demo: CHECKS FAILED");
        ExitCode::FAILURE
    }
}

fn summarize(reports: &[Option<MemberReport>]) -> bool {
    let mut ok = true;
    let n = reports.len();
    let sent: Vec<u64> = reports
        .iter()
        .map(|r| r.as_ref().map_or(0, |r| r.sent))
        .collect();
    println!();
    println!(
        "{:<6} {:>8} {:>26} {:>5} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "member",
        "sent",
        "delivered (per sender)",
        "fifo",
        "complete",
        "stable",
        "p50",
        "p99",
        "p99.9",
        "max"
    );
    for (i, r) in reports.iter().enumerate() {
        let Some(r) = r else {
            println!("m{i:<5} (no report)");
            ok = false;
            continue;
        };
        let delivered: Vec<String> = r.delivered.iter().map(|d| d.to_string()).collect();
        let complete = r.complete
            && r.delivered.len() == n
            && r.delivered.iter().zip(&sent).all(|(d, s)| d == s);
        ok &= complete && r.fifo_ok && r.errors.is_empty();
        println!(
            "{:<6} {:>8} {:>26} {:>5} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
            r.name,
            r.sent,
            delivered.join("/"),
            if r.fifo_ok { "ok" } else { "BAD" },
            if complete { "ok" } else { "BAD" },
            if r.stable { "ok" } else { "no" },
            fmt_ns(r.latency.p50_ns),
            fmt_ns(r.latency.p99_ns),
            fmt_ns(r.latency.p999_ns),
            fmt_ns(r.latency.max_ns),
        );
        for e in &r.errors {
            println!("       error: {e}");
        }
        if !r.drops.is_empty() {
            let d: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "       drops: {}  retransmits: {}",
                d.join(" "),
                r.retransmits
            );
        }
    }
    println!(
        "\nchecks: FIFO per sender (every index in order, no gaps, no duplicates); complete (every member \
         delivered every data message of every member, itself included). Latency: one-way, send to delivery, \
         CLOCK_MONOTONIC."
    );
    ok
}

/// One member process.
pub fn member(dir: &std::path::Path, name: &str, members: &[String], o: &DemoOpts) -> ExitCode {
    let mut r = MemberReport {
        name: name.to_string(),
        fifo_ok: true,
        ..MemberReport::default()
    };
    let result = run_member(dir, name, members, o, &mut r);
    if let Err(e) = result {
        r.errors.push(e);
    }
    println!("{}", serde_json::to_string(&r).unwrap_or_default());
    if r.errors.is_empty() && r.fifo_ok && r.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct State {
    n: usize,
    me: usize,
    heard: Vec<bool>,
    next: Vec<u64>,
    /// Stability vector: per sender, casts everyone holds.
    stable: Vec<u64>,
    hist: hdrhistogram::Histogram<u64>,
}

impl State {
    fn handle(&mut self, ev: Event, r: &mut MemberReport) {
        match ev {
            Event::Cast { src, msg, .. } => {
                let s = src as usize;
                let b = msg.front();
                if b.len() < HDR || s >= self.n {
                    r.errors.push(format!("malformed message from {src}"));
                    return;
                }
                let word = |at: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&b[at..at + 8]);
                    u64::from_be_bytes(w)
                };
                let (idx, ts) = (word(1), word(9));
                match b[0] {
                    HELLO => self.heard[s] = true,
                    DATA => {
                        if idx != self.next[s] {
                            r.fifo_ok = false;
                            r.errors
                                .push(format!("from {src}: got {idx}, expected {}", self.next[s]));
                        }
                        self.next[s] = idx + 1;
                        r.delivered[s] += 1;
                        if s != self.me {
                            let _ = self.hist.record(mono_ns().saturating_sub(ts).max(1));
                        }
                    }
                    DONE => r.announced[s] = idx,
                    _ => r.errors.push(format!("unknown message type from {src}")),
                }
            }
            Event::Stable(v) => {
                for (s, x) in self.stable.iter_mut().zip(v.iter()) {
                    *s = (*s).max(*x);
                }
            }
            Event::Lost { src, from, to } => r.errors.push(format!("lost {from}..{to} of {src}")),
            _ => {}
        }
    }
}

/// One member's event loop: a `Core` driven inline (one thread per
/// process, no hop between an application thread and a polling thread).
struct Member {
    core: Core,
    g: GroupIx,
    spin_until: Instant,
}

impl Member {
    fn cast(&mut self, kind: u8, idx: u64, size: usize) -> Result<(), String> {
        let mut m = self.core.alloc().ok_or("buffer pool empty")?;
        let b = m.reserve(size.max(HDR)).map_err(|e| e.to_string())?;
        b[0] = kind;
        b[1..9].copy_from_slice(&idx.to_be_bytes());
        b[9..17].copy_from_slice(&mono_ns().to_be_bytes());
        let mut msg = m;
        loop {
            match self.core.cast(self.g, msg) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == tutti::SendErrorKind::WouldBlock => {
                    msg = e.msg;
                    self.core.poll().map_err(|e| e.to_string())?;
                }
                Err(e) => return Err(e.kind.to_string()),
            }
        }
    }

    /// Polls once and hands events to `st`; when idle, spins briefly (the
    /// next frame often follows closely) and then parks on the doorbell
    /// until `until` at the latest.
    fn step(&mut self, st: &mut State, r: &mut MemberReport, until: Instant) -> Result<(), String> {
        let work = self.core.poll().map_err(|e| e.to_string())?;
        let mut events = 0;
        while let Some(ev) = self.core.next_event(self.g) {
            st.handle(ev, r);
            events += 1;
        }
        let now = Instant::now();
        if work + events > 0 {
            self.spin_until = now + SPIN;
        } else if now >= self.spin_until && until > now {
            self.core.park(until - now).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// How long a member spins after work before it parks.
const SPIN: Duration = Duration::from_micros(30);

fn run_member(
    dir: &std::path::Path,
    name: &str,
    members: &[String],
    o: &DemoOpts,
    r: &mut MemberReport,
) -> Result<(), String> {
    let n = members.len();
    let me = members
        .iter()
        .position(|m| m == name)
        .ok_or("own name not in member list")?;
    r.rank = me;
    r.delivered = vec![0; n];
    r.announced = vec![u64::MAX; n];
    let driver = driver_config("shm", name, dir)?
        .open()
        .map_err(|e| e.to_string())?;
    let mut core = Core::new(driver);
    let g = core
        .join(&GroupSpec::new("demo", &o.stack, members.to_vec()))
        .map_err(|e| e.to_string())?;
    let mut m = Member {
        core,
        g,
        spin_until: Instant::now(),
    };
    let mut st = State {
        n,
        me,
        heard: vec![false; n],
        next: vec![0; n],
        stable: vec![0; n],
        hist: histogram(),
    };
    let mut casts_sent = 0u64;
    // Hear from everybody before measuring anything.
    m.cast(HELLO, 0, HDR)?;
    casts_sent += 1;
    let t0 = Instant::now();
    while st.heard.iter().any(|h| !h) {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err("did not hear from every member within 20 s".into());
        }
        m.step(&mut st, r, Instant::now() + Duration::from_millis(5))?;
    }
    // Steady sending.
    let period = Duration::from_secs_f64(1.0 / o.rate.max(1) as f64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.seconds);
    let mut due = start;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= due {
            m.cast(DATA, r.sent, o.size)?;
            r.sent += 1;
            casts_sent += 1;
            due += period;
            // Behind schedule (descheduled): catch up without bursting.
            if now > due + period * 100 {
                due = now;
            }
        }
        m.step(&mut st, r, due)?;
    }
    m.cast(DONE, r.sent, HDR)?;
    casts_sent += 1;
    let _ = casts_sent;
    // Until everything announced has arrived and every member's casts are
    // stable here (everyone holds everything); then a moment more, so the
    // others learn the same from our gossip before we go.
    let t0 = Instant::now();
    let mut all_stable_at: Option<Instant> = None;
    loop {
        r.complete = (0..n).all(|s| r.announced[s] != u64::MAX && r.delivered[s] == r.announced[s]);
        // Each member cast HELLO, its data and DONE.
        let everything_stable =
            (0..n).all(|s| r.announced[s] != u64::MAX && st.stable[s] >= r.announced[s] + 2);
        r.stable = everything_stable;
        if r.complete && everything_stable {
            let at = *all_stable_at.get_or_insert_with(Instant::now);
            if at.elapsed() > Duration::from_millis(100) {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            if !r.complete {
                r.errors.push("not everything arrived within 30 s".into());
            }
            break;
        }
        m.step(&mut st, r, Instant::now() + Duration::from_millis(2))?;
    }
    r.latency = percentiles(&st.hist);
    if let Some((drops, stats)) = m.core.group_stats(m.g) {
        for (k, v) in drops.nonzero() {
            r.drops.insert(k.to_string(), v);
        }
        r.retransmits = stats.retransmits;
    }
    let ds = m.core.driver_stats();
    if ds.tx_full > 0 {
        r.drops.insert("shm_tx_full".into(), ds.tx_full);
    }
    if ds.rx_bad > 0 {
        r.drops.insert("shm_rx_bad".into(), ds.rx_bad);
    }
    Ok(())
}
