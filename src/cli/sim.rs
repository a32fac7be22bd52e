//! `tutti sim`: the deterministic simulator from the command line.

use std::process::ExitCode;
use std::time::Instant;

use tutti::sim::{self, SimConfig};

pub fn run_sim(
    seeds: u64,
    seed: Option<u64>,
    loss: f64,
    trace: bool,
    membership: bool,
) -> ExitCode {
    if !(0.0..1.0).contains(&loss) {
        eprintln!("error: --loss must be in [0, 1)");
        return ExitCode::from(2);
    }
    if membership {
        return run_membership(seeds, seed, loss);
    }
    if let Some(s) = sim::seed_from_env() {
        let mut cfg = SimConfig::random(s, loss);
        cfg.trace = true;
        println!("replaying {cfg}");
        let r = sim::run(&cfg);
        print!("{}", r.trace);
        print_report(&r);
        return exit(r.ok());
    }
    let first = first_seed(seed);
    println!(
        "tutti sim: {seeds} seeds from {first}, loss up to {:.0}%",
        loss * 100.0
    );
    let t0 = Instant::now();
    let mut failed = 0u64;
    let mut delivered = 0u64;
    let mut frames = 0u64;
    let mut retrans = 0u64;
    let mut garbage = 0u64;
    let mut malformed = 0u64;
    for s in first..first + seeds {
        let mut cfg = SimConfig::random(s, loss);
        cfg.trace = trace;
        let r = sim::run(&cfg);
        delivered += r.delivered;
        frames += r.frames;
        retrans += r.retransmits;
        garbage += r.garbage;
        malformed += r.drops.malformed();
        if !r.ok() {
            failed += 1;
            print_report(&r);
            if trace {
                print!("{}", r.trace);
            }
        }
    }
    println!(
        "checked: FIFO per sender, no duplicates, nothing invented, every message delivered \
         everywhere after heal, buffers drained, group quiet"
    );
    println!(
        "{seeds} runs, {failed} failed; {delivered} deliveries, {frames} frames, {retrans} \
         retransmissions, {garbage} garbage frames injected ({malformed} malformed drops); {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    if failed > 0 {
        println!("replay a failure with TUTTI_SEED=<seed> cargo run --release -- sim");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub fn print_report(r: &sim::Report) {
    let status = if r.ok() { "ok" } else { "FAILED" };
    println!("seed {} {status}: {}", r.seed, r.config);
    println!(
        "  delivered={} frames={} lost={} retransmits={} naks={} end={} drops: {}",
        r.delivered, r.frames, r.lost, r.retransmits, r.naks, r.end, r.drops
    );
    for v in r.violations.iter().take(20) {
        println!("  violation: {v}");
    }
}

/// Membership runs: random fault schedules over `vsync`, `vsync-total` and
/// `vsync-token` groups (see `tutti::sim::vsync`).
fn run_membership(seeds: u64, seed: Option<u64>, loss: f64) -> ExitCode {
    use tutti::sim::vsync::{run, Plan};
    if let Some(s) = sim::seed_from_env() {
        let r = run(&Plan::random(s, loss, true));
        println!("replaying {}", r.plan);
        for v in &r.violations {
            println!("  {v}");
        }
        if !r.ok() {
            print!("{}", r.dump);
        }
        println!(
            "{} deliveries, {} views, {} frames, one view of all live processes {}",
            r.delivered,
            r.views,
            r.frames,
            r.settle_ns.map_or("never".to_string(), |ns| format!(
                "{} ms after the faults",
                ns / 1_000_000
            ))
        );
        return exit(r.ok());
    }
    let first = first_seed(seed);
    println!(
        "tutti sim --membership: {seeds} fault schedules from seed {first}, loss up to {:.0}%",
        loss * 100.0
    );
    let t0 = Instant::now();
    let b = tutti::sim::vsync::run_seeds(first, seeds, loss, true);
    for r in &b.failed {
        println!("seed {} FAILED: {}", r.seed, r.plan);
        for v in r.violations.iter().take(5) {
            println!("  {v}");
        }
    }
    println!(
        "checked: view agreement, virtual synchrony, delivery in the sending view, self-delivery, \
         FIFO, no duplicates, nothing invented, state transfer, total order, primary chain, liveness"
    );
    println!(
        "{} runs, {} failed; {} deliveries, {} views; worst time to one view after the faults {} ms; {:.1}s",
        b.runs,
        b.failed.len(),
        b.delivered,
        b.views,
        b.worst_settle_ns / 1_000_000,
        t0.elapsed().as_secs_f64()
    );
    if b.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("replay a failure with TUTTI_SEED=<seed> cargo run --release -- sim --membership");
        ExitCode::FAILURE
    }
}

/// The first seed: given, or from the clock (printed, so it replays).
fn first_seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
