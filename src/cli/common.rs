//! Pieces the commands share: clocks, places, percentiles, idling.

use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tutti::engine::{Core, DriverConfig};
use tutti_drivers::shm::ShmConfig;
use tutti_drivers::udp::UdpConfig;
use tutti_drivers::uring::UringConfig;

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes on one
/// host (for one-way latencies).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the live local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A directory for this run's shm endpoint files: under /dev/shm when it
/// exists (memory), else the temp directory.
pub fn shm_dir(tag: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("tutti-{tag}-{}", std::process::id()))
}

/// Loopback addresses with free UDP ports.
pub fn free_udp_addrs(n: usize) -> Vec<String> {
    let socks: Vec<std::net::UdpSocket> = (0..n)
        .filter_map(|_| std::net::UdpSocket::bind("127.0.0.1:0").ok())
        .collect();
    socks
        .iter()
        .filter_map(|s| s.local_addr().ok())
        .map(|a| a.to_string())
        .collect()
}

/// Driver configuration for `kind` at address `me`.
pub fn driver_config(kind: &str, me: &str, dir: &std::path::Path) -> Result<DriverConfig, String> {
    Ok(match kind {
        "shm" => DriverConfig::Shm(ShmConfig {
            dir: dir.to_path_buf(),
            name: me.to_string(),
            ..ShmConfig::default()
        }),
        "udp" => DriverConfig::Udp(UdpConfig::new(
            me.parse().map_err(|e| format!("--me {me}: {e}"))?,
        )),
        "uring" => DriverConfig::Uring(UringConfig::new(
            me.parse().map_err(|e| format!("--me {me}: {e}"))?,
        )),
        other => return Err(format!("unknown driver {other:?} (shm, uring, udp)")),
    })
}

/// Latency percentiles, nanoseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub samples: u64,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        p50_ns: h.value_at_quantile(0.50),
        p90_ns: h.value_at_quantile(0.90),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        samples: h.len(),
    }
}

pub fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// Idle step for inline loops: spin, then yield, then a short park, so
/// that several busy processes share 2 cores.
pub struct Idler {
    empty: u32,
}

impl Idler {
    pub fn new() -> Idler {
        Idler { empty: 0 }
    }

    pub fn step(&mut self, work: usize, core: &mut Core) {
        if work > 0 {
            self.empty = 0;
            return;
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty < 1000 {
            std::hint::spin_loop();
        } else if self.empty < 1100 {
            std::thread::yield_now();
        } else {
            let _ = core.park(Duration::from_millis(1));
        }
    }
}
