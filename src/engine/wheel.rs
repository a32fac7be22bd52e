//! A hashed timer wheel for the engine: each key (a group) has at most one
//! deadline; re-scheduling replaces it. Slots are `tick` wide; a deadline
//! further out than one turn waits in its slot for the right turn.
//! Scheduling and cancelling are O(1); expiry touches only the slots the
//! clock passed.

use crate::event::Time;

/// Timer wheel over keys `0..keys`.
pub struct TimerWheel {
    tick_ns: u64,
    slots: Vec<Vec<(u32, u64)>>,
    /// Current deadline per key (entries in slots that disagree are stale).
    due: Vec<Option<u64>>,
    /// Time up to which slots have been swept.
    swept: u64,
    /// No deadline is earlier than this (a lower bound: cancelling leaves
    /// it, the next sweep tightens it), so most sweeps are one compare.
    earliest: u64,
}

impl TimerWheel {
    /// A wheel of `slots` slots of `tick_ns` each.
    pub fn new(tick_ns: u64, slots: usize) -> TimerWheel {
        TimerWheel {
            tick_ns: tick_ns.max(1),
            slots: (0..slots.max(1)).map(|_| Vec::new()).collect(),
            due: Vec::new(),
            swept: 0,
            earliest: u64::MAX,
        }
    }

    fn slot_of(&self, t: u64) -> usize {
        ((t / self.tick_ns) % self.slots.len() as u64) as usize
    }

    /// Sets `key`'s deadline (replacing any earlier one).
    pub fn schedule(&mut self, key: u32, at: Time) {
        let k = key as usize;
        if self.due.len() <= k {
            self.due.resize(k + 1, None);
        }
        if self.due[k] == Some(at.0) {
            return;
        }
        self.due[k] = Some(at.0);
        self.earliest = self.earliest.min(at.0);
        // A deadline already in the past fires at the next sweep.
        let t = at.0.max(self.swept);
        let s = self.slot_of(t);
        self.slots[s].push((key, at.0));
    }

    /// Removes `key`'s deadline.
    pub fn cancel(&mut self, key: u32) {
        if let Some(d) = self.due.get_mut(key as usize) {
            *d = None;
        }
    }

    /// `key`'s deadline.
    pub fn due_of(&self, key: u32) -> Option<Time> {
        self.due.get(key as usize).copied().flatten().map(Time)
    }

    /// Earliest deadline of any key.
    pub fn next(&self) -> Option<Time> {
        self.due.iter().flatten().min().map(|t| Time(*t))
    }

    /// Whether a deadline may be due at `now` (then `expire` finds it);
    /// when none can be, notes that the slots up to `now` were swept, as
    /// `expire` would. One compare on an engine's idle poll.
    #[inline]
    pub fn due(&mut self, now: Time) -> bool {
        if now.0 < self.swept {
            return false;
        }
        if now.0 < self.earliest {
            // Whatever the passed slots hold is due in a later turn.
            self.swept = now.0 + 1;
            return false;
        }
        true
    }

    /// Appends the keys whose deadline is at or before `now` to `out`, and
    /// forgets their deadlines.
    #[inline]
    pub fn expire(&mut self, now: Time, out: &mut Vec<u32>) {
        if self.due(now) {
            self.sweep(now, out);
        }
    }

    fn sweep(&mut self, now: Time, out: &mut Vec<u32>) {
        let n = self.slots.len() as u64;
        let first = self.swept / self.tick_ns;
        let last = now.0 / self.tick_ns;
        // One full turn covers every slot.
        let turns = (last - first + 1).min(n);
        for i in 0..turns {
            let s = ((first + i) % n) as usize;
            let due = &mut self.due;
            self.slots[s].retain(|&(key, at)| {
                let cur = due.get(key as usize).copied().flatten();
                if cur != Some(at) {
                    return false; // stale
                }
                if at <= now.0 {
                    due[key as usize] = None;
                    out.push(key);
                    false
                } else {
                    true // a later turn
                }
            });
        }
        self.swept = now.0 + 1;
        self.earliest = self.due.iter().flatten().copied().min().unwrap_or(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_time_replaces_and_cancels() {
        let mut w = TimerWheel::new(100, 8);
        w.schedule(1, Time(250));
        w.schedule(2, Time(5_000)); // several turns out
        w.schedule(3, Time(300));
        w.schedule(3, Time(900)); // replaced
        w.schedule(4, Time(400));
        w.cancel(4);
        assert_eq!(w.next(), Some(Time(250)));
        let mut out = Vec::new();
        w.expire(Time(299), &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        w.expire(Time(1000), &mut out);
        assert_eq!(out, vec![3]);
        out.clear();
        w.expire(Time(4_999), &mut out);
        assert!(out.is_empty());
        w.expire(Time(5_000), &mut out);
        assert_eq!(out, vec![2]);
        assert_eq!(w.next(), None);
    }

    #[test]
    fn past_deadlines_fire_at_next_sweep() {
        let mut w = TimerWheel::new(1000, 4);
        let mut out = Vec::new();
        w.expire(Time(10_000), &mut out);
        w.schedule(0, Time(5));
        w.expire(Time(10_001), &mut out);
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn idle_sweeps_skip_and_nothing_is_missed() {
        let mut w = TimerWheel::new(100, 8);
        let mut out = Vec::new();
        w.schedule(1, Time(2_050)); // more than two turns out
        for t in (0..2_050).step_by(7) {
            w.expire(Time(t), &mut out);
            assert!(out.is_empty(), "fired early at {t}");
        }
        w.schedule(2, Time(2_060));
        w.cancel(2);
        w.schedule(3, Time(1)); // already past: the next sweep
        w.expire(Time(2_049), &mut out);
        assert_eq!(out, vec![3]);
        out.clear();
        w.expire(Time(2_100), &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        w.expire(Time(9_000), &mut out);
        assert!(out.is_empty());
        assert_eq!(w.next(), None);
    }

    #[test]
    fn due_says_when_expire_has_work_and_nothing_is_missed() {
        // An engine calls `expire` only when `due` says so.
        let mut w = TimerWheel::new(100, 8);
        let mut out = Vec::new();
        let poll = |w: &mut TimerWheel, t: u64, out: &mut Vec<u32>| {
            if w.due(Time(t)) {
                w.expire(Time(t), out);
            }
        };
        w.schedule(1, Time(2_050));
        for t in (0..2_050).step_by(7) {
            assert!(!w.due(Time(t)), "due early at {t}");
            poll(&mut w, t, &mut out);
        }
        w.schedule(3, Time(1)); // already past: due at once
        assert!(w.due(Time(2_049)));
        poll(&mut w, 2_049, &mut out);
        assert_eq!(out, vec![3]);
        out.clear();
        poll(&mut w, 2_100, &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        // Nothing scheduled: never due, and a deadline set after a long
        // quiet stretch still fires on time.
        for t in (2_100..50_000).step_by(13) {
            assert!(!w.due(Time(t)));
        }
        w.schedule(4, Time(60_000));
        poll(&mut w, 59_999, &mut out);
        assert!(out.is_empty());
        poll(&mut w, 60_000, &mut out);
        assert_eq!(out, vec![4]);
    }
}
