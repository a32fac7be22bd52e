//! Partition merge.
//!
//! A coordinator beacons its view now and then to every address it knows
//! outside the view. A coordinator that hears of another view of the group
//! merges with it: the one with the smaller view id asks (`MergeRequest`),
//! the other grants (`MergeGrant`) unless it is busy; the asker flushes its
//! own view as usual but, instead of installing a next view, hands its
//! members to the granter (`MergeReady`) and they wait; the granter runs
//! its own flush with them taken in and installs one view over both sides,
//! marked as a merge, with a logical time above both. Both flushes keep
//! virtual synchrony on their side. A granter that never answers leaves the
//! asker to install a view of its own side after a timeout; a refusal
//! while another merge or flush is under way keeps merges from storming.

use super::coord::{Coord, MergeIn};
use super::msg::Outside;
use super::send_outside;
use super::state::{Action, Member};
use crate::event::Addr;
use crate::layer::{Cx, DropReason};

/// Beacon period, in `gms` ticks.
const BEACON_EVERY: u32 = 5;
/// A merge step that got no answer for this many ticks is abandoned.
const MERGE_TIMEOUT: u32 = 30;
/// Addresses remembered for beacons at most (the oldest go first): a
/// flood of made-up addresses cannot grow memory without bound.
const KNOWN_MAX: usize = 1024;

/// Where a coordinator stands in a merge.
#[derive(Default)]
pub(super) enum Merge {
    #[default]
    Idle,
    /// Asked the coordinator at `to`.
    Asked { to: Addr, since: u32 },
    /// Granted the view `asker`; waiting for its `MergeReady`.
    Granted { asker: (u64, u64), since: u32 },
    /// Flushed and handed over; members wait for the merged view. `co`
    /// is kept to install a view of this side if it never comes.
    Ready { since: u32, co: Box<Coord> },
}

impl Merge {
    /// The view is flushed and handed over: no other flush may start.
    pub fn waiting(&self) -> bool {
        matches!(self, Merge::Ready { .. })
    }
}

impl Member {
    fn my_id(&self) -> (u64, u64) {
        (self.view.id.ltime, self.view.id.coord)
    }

    /// Remembers an address (beacons go to those outside the view).
    pub(super) fn learn(&mut self, a: Addr) {
        if a != self.addr && !self.known.contains(&a) {
            if self.known.len() >= KNOWN_MAX {
                self.known.remove(0);
            }
            self.known.push(a);
        }
    }

    pub(super) fn learn_view(&mut self) {
        let addrs = self.view.addrs.clone();
        for a in addrs {
            self.learn(a);
        }
    }

    /// A granted merge outlives a view change of the granter.
    pub(super) fn carry_merge(&mut self, old: Merge) {
        if let Merge::Granted { asker, .. } = old {
            self.merge = Merge::Granted { asker, since: 0 };
        }
    }

    pub(super) fn merge_tick(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let t = self.ticks;
        let expired = |since: u32| t.saturating_sub(since) > MERGE_TIMEOUT;
        match &self.merge {
            Merge::Asked { since, .. } | Merge::Granted { since, .. } if expired(*since) => {
                self.merge = Merge::Idle;
            }
            Merge::Ready { since, .. } if expired(*since) => {
                // The other side never took us in: carry on alone.
                if let Merge::Ready { co, .. } = std::mem::take(&mut self.merge) {
                    return self.make_view(*co, cx);
                }
            }
            _ => {}
        }
        if self.is_coord() && self.co_idle() && t % BEACON_EVERY == 0 {
            let b = Outside::Beacon {
                ltime: self.view.id.ltime,
                vcoord: self.view.id.coord,
                coord: self.addr.to_string(),
            };
            let outside: Vec<Addr> = self
                .known
                .iter()
                .filter(|a| !self.view.addrs.contains(a))
                .cloned()
                .collect();
            for a in &outside {
                send_outside(cx, a, &b);
            }
        }
        None
    }

    pub(super) fn on_beacon(&mut self, ltime: u64, vcoord: u64, coord: String, cx: &mut Cx<'_>) {
        let a = Addr::from(coord.as_str());
        self.learn(a.clone());
        if (ltime, vcoord) == self.my_id() || self.view.addrs.contains(&a) {
            return;
        }
        if !self.is_coord() {
            // Point the other side at our coordinator.
            let c = self.coordinator() as usize;
            if let Some(ca) = self.view.addrs.get(c) {
                let b = Outside::Beacon {
                    ltime: self.view.id.ltime,
                    vcoord: self.view.id.coord,
                    coord: ca.to_string(),
                };
                send_outside(cx, &a, &b);
            }
            return;
        }
        if !self.co_idle() || !matches!(self.merge, Merge::Idle) {
            return;
        }
        if self.my_id() < (ltime, vcoord) {
            let r = Outside::MergeRequest {
                ltime: self.view.id.ltime,
                vcoord: self.view.id.coord,
                reply_to: self.addr.to_string(),
            };
            send_outside(cx, &a, &r);
            self.merge = Merge::Asked {
                to: a,
                since: self.ticks,
            };
        }
    }

    pub(super) fn on_merge_request(
        &mut self,
        ltime: u64,
        vcoord: u64,
        reply_to: String,
        cx: &mut Cx<'_>,
    ) {
        let a = Addr::from(reply_to.as_str());
        self.learn(a.clone());
        let free = self.is_coord() && self.co_idle() && matches!(self.merge, Merge::Idle);
        if free && (ltime, vcoord) < self.my_id() && !self.view.addrs.contains(&a) {
            let g = Outside::MergeGrant {
                ltime: self.view.id.ltime,
                vcoord: self.view.id.coord,
            };
            send_outside(cx, &a, &g);
            self.merge = Merge::Granted {
                asker: (ltime, vcoord),
                since: self.ticks,
            };
        }
    }

    pub(super) fn on_merge_grant(&mut self, cx: &mut Cx<'_>) {
        let Merge::Asked { to, .. } = &self.merge else {
            return;
        };
        let to = to.clone();
        self.merge = Merge::Idle;
        if self.is_coord() && self.co_idle() {
            self.start_flush(Some(to), cx);
        }
    }

    /// The asker's flush is done: hand the members over and wait.
    pub(super) fn merge_ready(&mut self, co: Coord, to: Addr, cx: &mut Cx<'_>) {
        let (members, addrs, keys) = co.survivors(&self.view);
        let r = Outside::MergeReady {
            at: co.at,
            members,
            addrs,
            keys,
            last_primary_id: self.last_primary_id,
            last_primary: self.last_primary.clone(),
        };
        send_outside(cx, &to, &r);
        self.merge = Merge::Ready {
            since: self.ticks,
            co: Box::new(co),
        };
    }

    pub(super) fn on_merge_ready(&mut self, m: MergeIn, cx: &mut Cx<'_>) {
        let Merge::Granted { asker, .. } = self.merge else {
            return;
        };
        if asker != (m.at.ltime, m.at.vcoord)
            || m.members.len() != m.addrs.len()
            || m.members.is_empty()
        {
            return;
        }
        if let Some(sec) = &self.sec {
            if m.keys.len() != m.members.len() || !sec.all_authorized(&m.keys) {
                cx.dropped(DropReason::Unauthorized);
                return;
            }
        }
        for a in &m.addrs {
            self.learn(Addr::from(a.as_str()));
        }
        self.merge = Merge::Idle;
        self.merging_in = Some(m);
        // Take them in now: a flush under way restarts with them.
        self.abandon_flush();
        self.maybe_flush(cx);
    }
}
