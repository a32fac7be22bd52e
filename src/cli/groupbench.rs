//! `tutti bench group`: every member of a group (over shm or udp on
//! loopback, `--driver`) multicasts as
//! fast as flow control lets it; each member's delivery rate (all senders'
//! casts, its own included) is measured from its first to its last
//! delivery. Stacks listed in `--stack` (comma-separated) run one after
//! the other in the same invocation, so their figures compare.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bench::BenchOpts;
use super::cluster::{Cluster, NodeArgs};
use super::common::shm_dir;

/// One stack's figures.
#[derive(Debug, Serialize)]
pub struct GroupResult {
    pub mode: &'static str,
    pub stack: String,
    pub driver: String,
    pub members: usize,
    pub size: usize,
    /// Casts each member made.
    pub count: u64,
    /// Mean over members of casts delivered per second.
    pub msgs_per_s: f64,
    /// Lowest member's rate.
    pub min_msgs_per_s: f64,
    /// Every member delivered every cast.
    pub complete: bool,
}

pub fn run(o: &BenchOpts) -> ExitCode {
    let n = o.group_size;
    if !(2..=8).contains(&n) || o.count > 10_000_000 {
        eprintln!("error: --group-size must be 2..=8 and --count at most 10000000");
        return ExitCode::from(2);
    }
    if o.driver != "shm" && o.driver != "udp" {
        eprintln!("error: bench group runs over shm or udp");
        return ExitCode::from(2);
    }
    let mut results = Vec::new();
    for stack in o.stack.split(',') {
        match one(o, stack.trim(), n) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("error: {stack}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let base = results.first().map_or(1.0, |r| r.msgs_per_s.max(1.0));
    for r in &results {
        if o.json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        } else {
            println!(
                "{:<18} {} {} members x {} casts of {} B: {:>10.0} msgs/s per member (slowest {:>10.0}), {:.2} x {}, complete: {}",
                r.stack,
                r.driver,
                r.members,
                r.count,
                r.size,
                r.msgs_per_s,
                r.min_msgs_per_s,
                r.msgs_per_s / base,
                results[0].stack,
                r.complete
            );
        }
    }
    if results.iter().all(|r| r.complete) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn one(o: &BenchOpts, stack: &str, n: usize) -> Result<GroupResult, String> {
    let mut c = Cluster::new(NodeArgs {
        driver: o.driver.clone(),
        dir: shm_dir(&format!("group-{}", stack.replace(':', "_"))),
        group: "bench".into(),
        stack: stack.into(),
        send_rate: 1e7,
        size: o.size.max(16),
        timeout_ms: 500,
    })?;
    c.extra = vec!["--quiet".into(), "--count".into(), o.count.to_string()];
    let names = c.names("g", n)?;
    c.authorize(&names)?;
    for name in &names {
        c.spawn(name, &names)?;
    }
    let all: Vec<usize> = (0..n).collect();
    c.wait_views(&all, Duration::from_secs(30), |v| v.members.len() == n)?;
    // Everyone sends its count (generated from its first view on); wait
    // until every member delivered everything, or progress stops.
    let want = o.count * n as u64;
    let t = Instant::now();
    let mut last_total = 0;
    let mut last_change = Instant::now();
    loop {
        let got: Vec<u64> = all.iter().map(|i| c.stat(*i, "delivered")).collect();
        if got.iter().all(|g| *g >= want) {
            break;
        }
        let total: u64 = got.iter().sum();
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        }
        if last_change.elapsed() > Duration::from_secs(10) || t.elapsed() > Duration::from_secs(600)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(250));
    let mut rates = Vec::new();
    let mut complete = true;
    for i in 0..n {
        let got = c.stat(i, "delivered");
        complete &= got >= want;
        let (first, last) = (c.stat_f(i, "first_ms"), c.stat_f(i, "last_ms"));
        let secs = (last - first) / 1e3;
        rates.push(if secs > 0.0 { got as f64 / secs } else { 0.0 });
    }
    for i in 0..n {
        c.term(i);
    }
    for i in 0..n {
        c.wait_exit(i, Duration::from_secs(10));
    }
    Ok(GroupResult {
        mode: "group",
        stack: stack.into(),
        driver: o.driver.clone(),
        members: n,
        size: o.size.max(16),
        count: o.count,
        msgs_per_s: rates.iter().sum::<f64>() / n as f64,
        min_msgs_per_s: rates.iter().copied().fold(f64::INFINITY, f64::min),
        complete,
    })
}
