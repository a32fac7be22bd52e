//! A membership run's plan: who starts, the faults and when, the network.
//! [`Plan::random`] derives all of it from a seed.

use std::fmt;

use crate::event::Time;
use crate::sim::rng::Rng;

const MS: u64 = 1_000_000;

/// Something that happens to the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A member stops dead (fail-stop); `pick` chooses among live members.
    Crash {
        /// Index into the live members at that moment.
        pick: u64,
    },
    /// The member of lowest rank in the view of the live member `pick`
    /// crashes: with a fault just before it, a coordinator crash during a
    /// flush.
    CrashCoordinator {
        /// Index into the live members at that moment.
        pick: u64,
    },
    /// A new process joins through the addresses of every process started
    /// so far.
    Join,
    /// A member leaves voluntarily.
    Leave {
        /// Index into the live members at that moment.
        pick: u64,
    },
    /// The network splits the live processes in two until `heal`.
    Partition {
        /// Bit i: side of the i-th live process.
        mask: u64,
        /// When the partition heals.
        heal: Time,
    },
}

/// One run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Processes started at time zero (they found the group by joining
    /// each other).
    pub initial: usize,
    /// Faults, in time order.
    pub faults: Vec<(Time, Fault)>,
    /// Probability that a frame is lost (until the faults stop).
    pub loss: f64,
    /// Base one-way delay, ns.
    pub delay_ns: u64,
    /// Extra random delay up to this, ns.
    pub jitter_ns: u64,
    /// Casts each process makes while it is a member.
    pub casts: u32,
    /// Largest gap between two casts of one process, ns.
    pub cast_gap_ns: u64,
    /// The application answers `Block` itself, after a random delay.
    pub app_block_ok: bool,
    /// Which processes run the static composition (by start order, cycled).
    pub statics: Vec<bool>,
    /// Failure-detector timeout, ns.
    pub suspect_ns: u64,
    /// Run a totally ordered stack (checked for total order) rather than
    /// `vsync`.
    pub total: bool,
    /// ... ordered by the rotating token (`vsync-token`) rather than the
    /// sequencer.
    pub token: bool,
    /// Primary-partition mode (checked: the primary views form one chain,
    /// each holding a majority of the one before).
    pub primary: bool,
    /// From the last fault (or heal) on, one view of all live processes
    /// must form within this, ns.
    pub settle_ns: u64,
    /// Run the secure variant of the stack (`sign`, `crypt`): every
    /// process has its own key, all of them authorized.
    pub secure: bool,
    /// Secure runs: a process whose key is not authorized tries to join at
    /// this time (it must never enter a view, nor take anyone into one).
    pub intruder: Option<Time>,
    /// Run the Protocol Accelerator's fast path (the wire is the same
    /// either way; the equivalence test runs plans both ways).
    pub fast: bool,
    /// Casts a process makes at a time, as one batch (the fast path
    /// packs them into shared frames); 1: one at a time.
    pub burst: u32,
    /// Take a batch's casts and a packed frame's as runs (the fast path;
    /// the wire and the deliveries are the same either way).
    pub runs: bool,
    /// The application does not take its own casts
    /// (`StackConfig::discard_own`): it keeps each in its state when the
    /// stack takes it, and getting one delivered is a violation.
    pub discard_own: bool,
    /// Bursts are written in place into frames (`Packer`), the casts
    /// windows on them, instead of a buffer each.
    pub in_place: bool,
}

impl Plan {
    /// The plan for `seed`, with loss up to `max_loss`. With `partitions`
    /// false no partition is planned.
    pub fn random(seed: u64, max_loss: f64, partitions: bool) -> Plan {
        let mut rng = Rng::new(seed ^ 0x7653_796e_6321);
        let initial = rng.range(1, 6) as usize;
        let nfaults = rng.range(0, 5);
        let mut faults = Vec::new();
        let mut t = 400 * MS;
        for _ in 0..nfaults {
            t += rng.range(1, 300) * MS;
            let f = match rng.below(if partitions { 6 } else { 5 }) {
                0 => Fault::Crash {
                    pick: rng.next_u64(),
                },
                1 => Fault::CrashCoordinator {
                    pick: rng.next_u64(),
                },
                2 | 3 => Fault::Join,
                4 => Fault::Leave {
                    pick: rng.next_u64(),
                },
                _ => Fault::Partition {
                    mask: rng.next_u64(),
                    heal: Time(t + rng.range(50, 500) * MS),
                },
            };
            // A second fault right behind the first: it lands in the
            // middle of the flush the first one started.
            if rng.chance(0.3) {
                let t2 = t + rng.range(1, 40) * MS;
                faults.push((Time(t), f));
                faults.push((
                    Time(t2),
                    Fault::CrashCoordinator {
                        pick: rng.next_u64(),
                    },
                ));
                t = t2;
            } else {
                faults.push((Time(t), f));
            }
        }
        Plan {
            seed,
            initial,
            faults,
            loss: rng.unit() * max_loss,
            delay_ns: rng.range(20, 300) * 1000,
            jitter_ns: rng.range(0, 500) * 1000,
            casts: rng.range(20, 200) as u32,
            cast_gap_ns: rng.range(1, 8) * MS,
            app_block_ok: rng.chance(0.5),
            statics: (0..4).map(|_| rng.chance(0.5)).collect(),
            suspect_ns: 40 * MS,
            total: rng.chance(0.6),
            token: rng.chance(0.5),
            primary: rng.chance(0.3),
            settle_ns: 1_500 * MS,
            secure: false,
            intruder: None,
            fast: true,
            burst: 1,
            runs: true,
            discard_own: false,
            in_place: false,
        }
        .secured(&mut rng)
        .accelerated(&mut rng)
    }

    /// Draws whether the fast path runs (last, so that earlier draws of a
    /// seed stay what they were).
    fn accelerated(mut self, rng: &mut Rng) -> Plan {
        self.fast = rng.chance(0.75);
        self.burst = if rng.chance(0.5) {
            rng.range(2, 12) as u32
        } else {
            1
        };
        self
    }

    /// Draws the security part of the plan (after everything else, so
    /// that the other draws of a seed stay what they were before secure
    /// runs existed).
    fn secured(mut self, rng: &mut Rng) -> Plan {
        self.secure = rng.chance(0.35);
        if self.secure && rng.chance(0.5) {
            self.intruder = Some(Time(rng.range(150, 1_200) * MS));
        }
        self
    }

    /// The stack (preset or spec) the run uses.
    pub fn spec(&self) -> &'static str {
        match (self.total, self.token, self.secure) {
            (false, _, false) => "vsync",
            (true, false, false) => "vsync-total",
            (true, true, false) => "vsync-token",
            (false, _, true) => "vsync-secure",
            (true, false, true) => "vsync-total-secure",
            (true, true, true) => "com:sign:crypt:nak:frag:stable:suspect:gms:token:xfer",
        }
    }

    /// When the faults stop: the last fault happened, the last partition
    /// healed, and the network stops losing frames (loss is a fault too:
    /// it causes false suspicions). Never before one second.
    pub fn quiet_from(&self) -> Time {
        self.faults
            .iter()
            .map(|(t, f)| match f {
                Fault::Partition { heal, .. } => *heal,
                _ => *t,
            })
            .max()
            .unwrap_or(Time::ZERO)
            .max(Time(1_000 * MS))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} stack={} primary={} initial={} loss={:.3} delay={}us jitter={}us casts={} gap={}ms app_block_ok={} faults=[",
            self.seed,
            self.spec(),
            self.primary,
            self.initial,
            self.loss,
            self.delay_ns / 1000,
            self.jitter_ns / 1000,
            self.casts,
            self.cast_gap_ns / MS,
            self.app_block_ok,
        )?;
        for (i, (t, x)) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let name = match x {
                Fault::Crash { .. } => "crash".to_string(),
                Fault::CrashCoordinator { .. } => "crash-coordinator".to_string(),
                Fault::Join => "join".to_string(),
                Fault::Leave { .. } => "leave".to_string(),
                Fault::Partition { heal, .. } => format!("partition until {heal}"),
            };
            write!(f, "{name} at {t}")?;
        }
        f.write_str("]")?;
        if let Some(t) = self.intruder {
            write!(f, " intruder at {t}")?;
        }
        if !self.fast {
            f.write_str(" fast=off")?;
        }
        if self.burst > 1 {
            write!(f, " burst={}", self.burst)?;
        }
        if self.discard_own {
            f.write_str(" discard_own")?;
        }
        if self.in_place {
            f.write_str(" in_place")?;
        }
        Ok(())
    }
}
