//! What a simulated run does: the group, the workload, the faults. A seed
//! determines all of it ([`SimConfig::random`]).

use std::fmt;

use crate::event::Time;
use crate::sim::rng::Rng;

/// A network partition: while `from <= now < to`, frames between members
/// on different sides are lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Start.
    pub from: Time,
    /// Heal.
    pub to: Time,
    /// Side of each member (0 or 1).
    pub side: Vec<u8>,
}

/// One simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Group size.
    pub members: usize,
    /// Stack spec every member runs.
    pub spec: String,
    /// Which members run the static composition (the rest run dynamic).
    pub statics: Vec<bool>,
    /// Multicasts each member sends.
    pub casts: u32,
    /// Point-to-point messages each member sends (to random members).
    pub sends: u32,
    /// Smallest payload, bytes (at least the 17-byte payload header).
    pub size_min: usize,
    /// Largest payload, bytes.
    pub size_max: usize,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is duplicated.
    pub dup: f64,
    /// Probability, per frame sent, that a garbage frame is injected.
    pub garbage: f64,
    /// Base one-way delay, ns.
    pub delay_ns: u64,
    /// Extra random delay up to this, ns (reorders frames).
    pub jitter_ns: u64,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Largest gap between two sends of one member, ns.
    pub send_gap_ns: u64,
    /// Bytes per buffer.
    pub slot_size: u32,
    /// `nak` window.
    pub window: u64,
    /// `nak` tick and `stable` gossip period, ns.
    pub tick_ns: u64,
    /// By when everything must be delivered and quiet.
    pub deadline: Time,
    /// Record a trace of the run.
    pub trace: bool,
}

const MS: u64 = 1_000_000;

impl SimConfig {
    /// A run drawn from `seed`: 2 to 5 members, loss up to `max_loss`,
    /// duplicates, reordering, sometimes partitions that heal, a mix of
    /// static and dynamic stacks, messages from one byte to several
    /// buffers.
    pub fn random(seed: u64, max_loss: f64) -> SimConfig {
        let mut r = Rng::new(seed ^ 0x5eed_c0de);
        let members = r.range(2, 5) as usize;
        let statics = (0..members).map(|_| r.chance(0.5)).collect();
        let spec = if r.chance(0.75) { "fifo" } else { "reliable" }.to_string();
        let slot_size = [512u32, 1024, 2048][r.below(3) as usize];
        let cap = slot_size as usize - 160;
        let size_max = if spec == "fifo" { cap * 4 } else { cap };
        let loss = r.unit() * max_loss;
        let send_gap_ns = r.range(20_000, 400_000);
        let casts = r.range(10, 80) as u32;
        let sends = r.range(0, 20) as u32;
        let send_span = (casts + sends) as u64 * send_gap_ns;
        let mut partitions = Vec::new();
        if members > 2 && r.chance(0.4) {
            for _ in 0..r.range(1, 2) {
                let from = r.below(send_span.max(1));
                let len = r.range(MS, 30 * MS);
                let mut side: Vec<u8> = (0..members).map(|_| r.below(2) as u8).collect();
                // Make sure both sides are non-empty.
                side[0] = 0;
                side[members - 1] = 1;
                partitions.push(Partition {
                    from: Time(from),
                    to: Time(from + len),
                    side,
                });
            }
        }
        SimConfig {
            seed,
            members,
            spec,
            statics,
            casts,
            sends,
            size_min: 0,
            size_max,
            loss,
            dup: r.unit() * 0.05,
            garbage: if r.chance(0.3) { 0.02 } else { 0.0 },
            delay_ns: r.range(5_000, 100_000),
            jitter_ns: r.range(0, 300_000),
            partitions,
            send_gap_ns,
            slot_size,
            window: [16u64, 64, 256][r.below(3) as usize],
            tick_ns: MS,
            deadline: Time(send_span + 10_000 * MS),
            trace: false,
        }
    }
}

impl fmt::Display for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: String = self
            .statics
            .iter()
            .map(|s| if *s { 'S' } else { 'D' })
            .collect();
        write!(
            f,
            "seed={} members={} ({kinds}) spec={} casts={} sends={} size_max={} loss={:.1}% dup={:.1}% \
             garbage={} jitter={}us partitions={} window={} slot={}",
            self.seed,
            self.members,
            self.spec,
            self.casts,
            self.sends,
            self.size_max,
            self.loss * 100.0,
            self.dup * 100.0,
            self.garbage > 0.0,
            self.jitter_ns / 1000,
            self.partitions.len(),
            self.window,
            self.slot_size
        )
    }
}
