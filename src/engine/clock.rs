//! The engine's clock: nanoseconds since the engine started, read at every
//! poll.
//!
//! `Instant::now` costs 25-40 ns in a VM (a vDSO call and a conversion),
//! as much as a small message's whole fast path. Where the CPU has an
//! invariant TSC (x86-64, CPUID 0x8000_0007 EDX bit 8: same rate on every
//! core, in every power state), the clock reads the TSC (about 10 ns) and
//! converts with a rate measured against `Instant` over the whole time
//! since the start, re-measured every 10 ms; it never goes backwards. An
//! error in the rate shows only as timers a fraction of a percent early or
//! late. Elsewhere it reads `Instant`.

use std::time::Instant;

use crate::event::Time;

/// Re-measure the rate this often, nanoseconds.
const CALIBRATE_NS: u64 = 10_000_000;
/// Do not trust a rate measured over less than this, nanoseconds.
const MIN_SPAN_NS: u64 = 1_000_000;

/// See the module docs.
pub struct Clock {
    epoch: Instant,
    /// The TSC at `epoch` (only where the TSC is invariant).
    tsc0: Option<u64>,
    /// Last calibration: TSC, nanoseconds, and nanoseconds per tick
    /// times 2^32.
    cal_tsc: u64,
    cal_ns: u64,
    rate: u64,
    /// Calibrate again once the TSC passes this.
    next_cal: u64,
    last: u64,
}

#[cfg(target_arch = "x86_64")]
fn tsc() -> Option<u64> {
    use std::arch::x86_64::{__cpuid, _rdtsc};
    static INVARIANT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *INVARIANT.get_or_init(|| {
        let max = __cpuid(0x8000_0000).eax;
        max >= 0x8000_0007 && (__cpuid(0x8000_0007).edx >> 8) & 1 == 1
    });
    // SAFETY: RDTSC exists on every x86-64 CPU and only reads a counter.
    ok.then(|| unsafe { _rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc() -> Option<u64> {
    None
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        let tsc0 = tsc();
        Clock {
            epoch: Instant::now(),
            tsc0,
            cal_tsc: 0,
            cal_ns: 0,
            rate: 0,
            next_cal: 0,
            last: 0,
        }
    }

    /// Nanoseconds since the start, exactly (`Instant`).
    pub fn precise(&self) -> Time {
        Time(self.epoch.elapsed().as_nanos() as u64)
    }

    /// Nanoseconds since the start, cheaply.
    #[inline]
    pub fn now(&mut self) -> Time {
        let (Some(t0), Some(t)) = (self.tsc0, tsc()) else {
            return self.precise();
        };
        let ns = if self.rate == 0 || t >= self.next_cal || t < self.cal_tsc {
            self.calibrate(t0, t)
        } else {
            let d = (((t - self.cal_tsc) as u128 * self.rate as u128) >> 32) as u64;
            self.cal_ns + d
        };
        self.last = self.last.max(ns);
        Time(self.last)
    }

    #[cold]
    fn calibrate(&mut self, t0: u64, t: u64) -> u64 {
        let ns = self.precise().0;
        if t > t0 && ns >= MIN_SPAN_NS {
            self.rate = (((ns as u128) << 32) / (t - t0) as u128) as u64;
            self.cal_tsc = t;
            self.cal_ns = ns;
            let ticks = ((CALIBRATE_NS as u128) << 32) / self.rate.max(1) as u128;
            self.next_cal = t.saturating_add(ticks as u64);
        }
        ns
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_precise_clock_and_never_goes_back() {
        let mut c = Clock::new();
        let mut prev = Time::ZERO;
        let t0 = Instant::now();
        while t0.elapsed().as_millis() < 40 {
            let before = c.precise();
            let a = c.now();
            let after = c.precise();
            assert!(a >= prev, "went back");
            // Between the exact readings around it, give or take 1 % of
            // the elapsed time and 20 us.
            let tol = after.0 / 100 + 20_000;
            assert!(
                a.0 + tol >= before.0 && a.0 <= after.0 + tol,
                "{before:?} <= {a:?} <= {after:?}"
            );
            prev = a;
        }
    }
}
