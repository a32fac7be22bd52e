//! The demo's second part: a group with membership (`vsync`) over shm.
//! Three members found it, a fourth joins (and gets the state: how many
//! messages the group delivered before its first view), one is killed
//! (SIGKILL), the rest leave; the view changes are printed as a timeline and checked:
//! every member agrees on each view's members, and members that go from
//! one view to the next together delivered the same messages in it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::cluster::{Cluster, NodeArgs, ViewSeen};
use super::common::shm_dir;

/// Runs the scenario; whether every check held.
pub fn run(timeout_ms: u64) -> bool {
    match scenario(timeout_ms) {
        Ok(ok) => ok,
        Err(e) => {
            println!("membership: FAILED: {e}");
            false
        }
    }
}

fn scenario(timeout_ms: u64) -> Result<bool, String> {
    println!();
    println!(
        "membership (stack vsync, failure detector {timeout_ms} ms): 3 members found a group, \
         m3 joins with state transfer, m1 is killed, everyone leaves"
    );
    let mut c = Cluster::new(NodeArgs {
        driver: "shm".into(),
        dir: shm_dir("demo-vsync"),
        group: "demo".into(),
        stack: "vsync".into(),
        send_rate: 500.0,
        size: 64,
        timeout_ms,
    })?;
    let t0 = Instant::now();
    let first: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
    for n in &first {
        c.spawn(n, &first)?;
    }
    let limit = Duration::from_secs(30);
    c.wait_views(&[0, 1, 2], limit, |v| v.members.len() == 3)?;
    std::thread::sleep(Duration::from_millis(300));
    let joiner = c.spawn("m3", &first)?;
    c.wait_views(&[0, 1, 2, joiner], limit, |v| v.members.len() == 4)?;
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = c.kill(1);
    let rest = [0, 2, joiner];
    let new_view_at = c.wait_views(&rest, limit, |v| {
        v.members.len() == 3 && !v.addrs.iter().any(|a| a == "m1")
    })?;
    std::thread::sleep(Duration::from_millis(300));
    for &i in &rest {
        c.term(i);
    }
    let mut exited = true;
    for &i in &rest {
        exited &= c.wait_exit(i, Duration::from_secs(10));
    }

    // Timeline: each view once, when its first member installed it.
    let mut firsts: BTreeMap<(u64, u64), (Instant, ViewSeen, Vec<String>)> = BTreeMap::new();
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    let mut agree = true;
    for (i, name) in names.iter().enumerate() {
        for (at, v) in c.views(i) {
            let e = firsts
                .entry((v.ltime, v.coord))
                .or_insert_with(|| (at, v.clone(), Vec::new()));
            if e.1.members != v.members {
                agree = false;
            }
            e.0 = e.0.min(at);
            e.2.push(name.clone());
        }
    }
    let mut rows: Vec<_> = firsts.into_values().collect();
    rows.sort_by_key(|r| r.0);
    println!(
        "  {:>9}  {:<6} {:<22} installed by",
        "time", "view", "members"
    );
    for (at, v, by) in &rows {
        println!(
            "  {:>6.0} ms  {:<6} {:<22} {}{}",
            at.duration_since(t0).as_secs_f64() * 1e3,
            v.ltime,
            format!("[{}]", v.addrs.join(" ")),
            by.join(" "),
            if v.merge { " (merge)" } else { "" }
        );
    }
    for l in c.lines(joiner) {
        if l.v["event"] == "state" {
            println!(
                "  m3 joined with the group's state at {:.0} ms: {} messages delivered before its first view (digest {})",
                l.at.duration_since(t0).as_secs_f64() * 1e3,
                l.v["messages"],
                l.v["digest"].as_str().unwrap_or("")
            );
        }
    }
    println!(
        "  m1 killed at {:.0} ms; new view at every survivor {:.0} ms later ({:.1} x the detector timeout)",
        killed_at.duration_since(t0).as_secs_f64() * 1e3,
        new_view_at.duration_since(killed_at).as_secs_f64() * 1e3,
        new_view_at.duration_since(killed_at).as_secs_f64() * 1e3 / timeout_ms as f64
    );

    // Virtual synchrony: members moving from v to the same next view
    // delivered the same set in v.
    type Vid = (u64, u64);
    let mut moves: BTreeMap<(Vid, Vid), Vec<usize>> = BTreeMap::new();
    for i in 0..names.len() {
        let vs = c.views(i);
        // A joiner's first view starts from the transferred state: what
        // the state holds it does not deliver again, so it is compared
        // from its second view on.
        for w in vs.windows(2).skip(1) {
            let a = (w[0].1.ltime, w[0].1.coord);
            let b = (w[1].1.ltime, w[1].1.coord);
            moves.entry((a, b)).or_default().push(i);
        }
    }
    let mut vsync = true;
    let mut compared = 0;
    for ((a, _), who) in &moves {
        let sets: Vec<BTreeSet<_>> = who.iter().map(|i| c.delivered_in(*i, a.0, a.1)).collect();
        compared += sets.iter().map(|s| s.len()).sum::<usize>();
        if sets.windows(2).any(|w| w[0] != w[1]) {
            vsync = false;
            println!(
                "  view {}: members moving on together delivered different sets",
                a.0
            );
        }
    }
    let ok = agree && vsync && exited;
    println!(
        "  view agreement: {}; virtual synchrony: {} ({} deliveries compared); clean exits: {}",
        if agree { "ok" } else { "FAILED" },
        if vsync { "ok" } else { "FAILED" },
        compared,
        if exited { "ok" } else { "FAILED" }
    );
    Ok(ok)
}
