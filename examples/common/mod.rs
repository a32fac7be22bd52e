//! What the cost examples (`rtt_cost`, `pack_cost`, `idle_cost`,
//! `hop_split`) share: a cheap timestamp and a two-member group in one
//! process over the real shm driver. Each example uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tutti::engine::{Core, GroupSpec};
use tutti::Event;
use tutti_drivers::Driver;

/// A cheap timestamp for splitting work into its parts: the TSC on x86_64
/// (a clock read would cost as much as some parts).
#[cfg(target_arch = "x86_64")]
pub fn ticks() -> u64 {
    // SAFETY: `rdtsc` exists on every x86_64 CPU and only reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}
#[cfg(target_arch = "x86_64")]
pub const TICKS: &str = "TSC cycles";

#[cfg(not(target_arch = "x86_64"))]
pub fn ticks() -> u64 {
    use std::sync::OnceLock;
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
#[cfg(not(target_arch = "x86_64"))]
pub const TICKS: &str = "ns";

/// Two engines over drivers `a` and `b` joined to one group named `name`
/// through `stack` (members "a" and "b"), polled until both show the
/// view. With `RTT_COST_QUIET_TIMERS` set, periodic timers are parked:
/// under valgrind everything runs 50 times slower and periodic work would
/// be counted as many times over (stability still flows: gossip every
/// `gossip_every` deliveries).
pub fn pair(
    a: Box<dyn Driver>,
    b: Box<dyn Driver>,
    name: &str,
    stack: &str,
    fast: bool,
) -> Result<([Core; 2], [usize; 2]), String> {
    pair_with(a, b, name, stack, fast, false)
}

/// `pair`, choosing whether the members take their own casts
/// (`StackConfig::discard_own`).
pub fn pair_with(
    a: Box<dyn Driver>,
    b: Box<dyn Driver>,
    name: &str,
    stack: &str,
    fast: bool,
    discard_own: bool,
) -> Result<([Core; 2], [usize; 2]), String> {
    let mut cores = [Core::new(a), Core::new(b)];
    let mut spec = GroupSpec::new(name, stack, vec!["a".into(), "b".into()]);
    spec.config.fast = fast;
    spec.config.discard_own = discard_own;
    if std::env::var_os("RTT_COST_QUIET_TIMERS").is_some() {
        spec.config.nak.tick_ns = 10_000_000_000;
        spec.config.stable.gossip_ns = 10_000_000_000;
        spec.config.suspect.timeout_ns = 100_000_000_000;
    }
    let mut g = [0; 2];
    for (c, g) in cores.iter_mut().zip(g.iter_mut()) {
        *g = c.join(&spec).map_err(|e| e.to_string())?;
    }
    let t = Instant::now();
    let mut seen = [false; 2];
    while !(seen[0] && seen[1]) {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("no view".into());
        }
        for (i, c) in cores.iter_mut().enumerate() {
            c.poll().map_err(|e| e.to_string())?;
            while let Some(ev) = c.next_event(g[i]) {
                seen[i] |= matches!(ev, Event::View(_));
            }
        }
    }
    Ok((cores, g))
}
