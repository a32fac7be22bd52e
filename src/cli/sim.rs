//! `tutti sim`: the deterministic simulator from the command line.

use std::process::ExitCode;
use std::time::Instant;

use tutti::sim::{self, SimConfig};

pub fn run_sim(seeds: u64, seed: Option<u64>, loss: f64, trace: bool) -> ExitCode {
    if !(0.0..1.0).contains(&loss) {
        eprintln!("error: --loss must be in [0, 1)");
        return ExitCode::from(2);
    }
    if let Some(s) = sim::seed_from_env() {
        let mut cfg = SimConfig::random(s, loss);
        cfg.trace = true;
        println!("replaying {cfg}");
        let r = sim::run(&cfg);
        print!("{}", r.trace);
        print_report(&r);
        return if r.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let first = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
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
