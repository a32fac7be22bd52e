//! `tutti failover`: how long a group takes to install a new view after a
//! member is killed (SIGKILL), for several group sizes, over shm; and
//! whether the survivors delivered the same messages in the old view
//! (virtual synchrony), checked on every run.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::cluster::{Cluster, NodeArgs};
use super::common::shm_dir;

/// Options of `tutti failover`.
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverOpts {
    /// Group sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "3,5,8")]
    pub sizes: Vec<usize>,
    /// Runs per size.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Failure-detector timeout, ms.
    #[arg(long, default_value_t = 50)]
    pub timeout_ms: u64,
    /// Multicasts per second per member while it runs.
    #[arg(long, default_value_t = 200.0)]
    pub send_rate: f64,
    /// Kill the coordinator (rank 0) rather than the highest rank.
    #[arg(long)]
    pub coordinator: bool,
    /// Stack (a stack with membership; secure stacks get a key per member).
    #[arg(long, default_value = "vsync")]
    pub stack: String,
    /// The member leaves cleanly (SIGTERM) instead of being killed: the
    /// time is then that of a view change alone (flush, view, new key),
    /// with no failure detection in it.
    #[arg(long)]
    pub leave: bool,
    /// Print one JSON object per size.
    #[arg(long)]
    pub json: bool,
}

/// One size's figures.
#[derive(Debug, Serialize)]
pub struct FailoverResult {
    pub members: usize,
    pub runs: usize,
    pub timeout_ms: u64,
    pub stack: String,
    pub killed: &'static str,
    /// SIGTERM (leave) or SIGKILL (crash).
    pub how: &'static str,
    /// Kill to new view at the last survivor, per run, ms.
    pub failover_ms: Vec<f64>,
    pub median_ms: f64,
    pub max_ms: f64,
    /// Survivors delivered the same set in the old view, on every run.
    pub vsync_ok: bool,
    /// Messages the survivors delivered in the old views, all runs.
    pub checked_deliveries: usize,
}

pub fn run(o: &FailoverOpts) -> ExitCode {
    if o.sizes.iter().any(|n| !(2..=16).contains(n)) || o.runs == 0 || o.timeout_ms == 0 {
        eprintln!("error: sizes must be 2..=16, runs and timeout positive");
        return ExitCode::from(2);
    }
    let mut ok = true;
    if !o.json {
        println!(
            "{} over shm, member {} ({}), detector timeout {} ms",
            o.stack,
            if o.leave { "leaves" } else { "killed" },
            if o.coordinator {
                "coordinator"
            } else {
                "highest rank"
            },
            o.timeout_ms
        );
        println!(
            "{:>7} {:>5} {:>12} {:>12} {:>12} {:>6}",
            "members", "runs", "median", "max", "max/timeout", "vsync"
        );
    }
    for &n in &o.sizes {
        match size(o, n) {
            Ok(r) => {
                ok &= r.vsync_ok;
                if o.json {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                } else {
                    println!(
                        "{:>7} {:>5} {:>9.1} ms {:>9.1} ms {:>12.2} {:>6}",
                        r.members,
                        r.runs,
                        r.median_ms,
                        r.max_ms,
                        r.max_ms / o.timeout_ms as f64,
                        if r.vsync_ok { "ok" } else { "FAILED" }
                    );
                }
            }
            Err(e) => {
                eprintln!("error: {n} members: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn size(o: &FailoverOpts, n: usize) -> Result<FailoverResult, String> {
    let mut times = Vec::new();
    let mut vsync_ok = true;
    let mut checked = 0;
    for run in 0..o.runs {
        let (ms, same, count) = once(o, n, run)?;
        times.push(ms);
        vsync_ok &= same;
        checked += count;
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Ok(FailoverResult {
        members: n,
        runs: o.runs,
        timeout_ms: o.timeout_ms,
        stack: o.stack.clone(),
        how: if o.leave { "leave" } else { "kill" },
        killed: if o.coordinator {
            "coordinator"
        } else {
            "highest rank"
        },
        median_ms: sorted[sorted.len() / 2],
        max_ms: *sorted.last().unwrap_or(&0.0),
        failover_ms: times,
        vsync_ok,
        checked_deliveries: checked,
    })
}

/// One run: (kill to last new view in ms, same delivered sets, messages
/// compared).
fn once(o: &FailoverOpts, n: usize, run: usize) -> Result<(f64, bool, usize), String> {
    let mut c = Cluster::new(NodeArgs {
        driver: "shm".into(),
        dir: shm_dir(&format!("failover-{n}-{run}")),
        group: "failover".into(),
        stack: o.stack.clone(),
        send_rate: o.send_rate,
        size: 64,
        timeout_ms: o.timeout_ms,
    })?;
    let names = c.names("m", n)?;
    c.authorize(&names)?;
    for name in &names {
        c.spawn(name, &names)?;
    }
    let all: Vec<usize> = (0..n).collect();
    c.wait_views(&all, Duration::from_secs(30), |v| v.members.len() == n)?;
    std::thread::sleep(Duration::from_millis(300));
    let old = c.view(0).ok_or("no view")?;
    let victim_name = if o.coordinator {
        old.addrs[0].clone()
    } else {
        old.addrs[n - 1].clone()
    };
    let victim = names
        .iter()
        .position(|x| *x == victim_name)
        .ok_or("victim not found")?;
    let killed = if o.leave {
        let at = std::time::Instant::now();
        c.term(victim);
        at
    } else {
        c.kill(victim)
    };
    let survivors: Vec<usize> = (0..n).filter(|i| *i != victim).collect();
    let limit = Duration::from_millis(20 * o.timeout_ms + 5_000);
    let at = c.wait_views(&survivors, limit, |v| {
        v.members.len() == n - 1 && !v.addrs.contains(&victim_name)
    })?;
    let ms = at.duration_since(killed).as_secs_f64() * 1e3;
    // Stop sending, then compare what each survivor delivered in the old
    // view.
    for &i in &survivors {
        c.term(i);
    }
    for &i in &survivors {
        c.wait_exit(i, Duration::from_secs(10));
    }
    // A member that joined in the old view started it from the state it
    // got (it does not deliver again what the state holds): compare the
    // others.
    let sets: Vec<_> = survivors
        .iter()
        .filter(|i| {
            c.views(**i)
                .first()
                .is_some_and(|(_, v)| (v.ltime, v.coord) != (old.ltime, old.coord))
        })
        .map(|i| c.delivered_in(*i, old.ltime, old.coord))
        .collect();
    let same = sets.windows(2).all(|w| w[0] == w[1]);
    Ok((ms, same, sets.first().map_or(0, |s| s.len())))
}
