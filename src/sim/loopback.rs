//! Loopback: stacks wired straight to each other, no loss, no delay, time
//! advanced by hand. The benchmark and the allocation test drive stacks
//! through it; it allocates nothing per frame (frames land in the
//! receiver's pool the way a NIC would put them there).

use tutti_drivers::{Pool, PoolConfig, PoolError};

use crate::event::{Dest, Rank, Time, Up, View, ViewId};
use crate::stack::GroupStack;

/// Stacks of one group, connected directly.
pub struct Loopback<S: GroupStack> {
    /// The members, by rank.
    pub stacks: Vec<S>,
    rx: Vec<Pool>,
    /// Current time.
    pub now: Time,
}

impl<S: GroupStack> Loopback<S> {
    /// Wires `stacks` together (rank = position) and installs the view.
    /// Each member gets a receive pool shaped like `rx`.
    pub fn new(mut stacks: Vec<S>, rx: PoolConfig) -> Result<Loopback<S>, PoolError> {
        let members: Vec<u64> = (0..stacks.len() as u64).map(|i| 100 + i).collect();
        for (i, s) in stacks.iter_mut().enumerate() {
            let view = View::new(
                ViewId {
                    ltime: 1,
                    coord: 100,
                },
                members.clone(),
                i as Rank,
            )
            .map_err(PoolError::Config)?;
            s.install_view(Time::ZERO, view);
        }
        let rx = (0..stacks.len())
            .map(|_| Pool::new(rx))
            .collect::<Result<_, _>>()?;
        Ok(Loopback {
            stacks,
            rx,
            now: Time::ZERO,
        })
    }

    /// Moves frames between members until none is left; hands every
    /// application event to `sink(member, event)`.
    pub fn pump(&mut self, sink: &mut impl FnMut(usize, Up)) {
        loop {
            let mut moved = false;
            for i in 0..self.stacks.len() {
                while let Some(ev) = self.stacks[i].poll_event() {
                    sink(i, ev);
                }
                while let Some((dst, frame)) = self.stacks[i].poll_transmit() {
                    moved = true;
                    let Some(bytes) = frame.contiguous() else {
                        continue;
                    };
                    for j in 0..self.stacks.len() {
                        let to_j = match &dst {
                            Dest::All => j != i,
                            Dest::Rank(r) => *r as usize == j,
                            // Addresses are the stacks' indexes.
                            Dest::Addr(a) => a.parse() == Ok(j),
                        };
                        if !to_j {
                            continue;
                        }
                        if let Some(m) = self.rx[j].alloc_frame(bytes) {
                            self.stacks[j].receive(self.now, m);
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances time by `ns` and runs the timers that fell due.
    pub fn advance(&mut self, ns: u64, sink: &mut impl FnMut(usize, Up)) {
        self.now = self.now.plus_ns(ns);
        for i in 0..self.stacks.len() {
            if self.stacks[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.stacks[i].handle_timeout(self.now);
            }
        }
        self.pump(sink);
    }

    /// A member's receive pool.
    pub fn rx_pool(&self, i: usize) -> &Pool {
        &self.rx[i]
    }
}
