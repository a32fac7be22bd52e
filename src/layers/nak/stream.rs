//! Sequence-number bookkeeping for one direction of one channel.
//!
//! Both structures are ring buffers of messages indexed by sequence number
//! (`VecDeque`s whose capacity settles after warm-up, so the steady state
//! allocates nothing). Their size is bounded by the window: a sender never
//! has more than `window` unstable messages out, a receiver accepts nothing
//! beyond `next + window` and retains the last `window` delivered messages
//! (and up to an eighth more, which it then gives back in one run).

use std::collections::VecDeque;

use tutti_drivers::{Msg, Releaser};

use crate::wire::nak::RangeList;

/// A message kept for retransmission.
#[derive(Debug)]
pub struct Kept {
    /// The message as it reached `nak` (the headers of the layers above
    /// in front of the payload), or only the payload when `bare`.
    pub msg: Msg,
    /// Sent or received on the fast path: the layers above put their
    /// common-case headers on it, which the message does not hold.
    pub bare: bool,
}

impl Kept {
    /// A message as it reached `nak`.
    #[inline]
    pub fn full(msg: Msg) -> Kept {
        Kept { msg, bare: false }
    }

    /// A payload of the fast path.
    #[inline]
    pub fn bare(msg: Msg) -> Kept {
        Kept { msg, bare: true }
    }
}

/// Outgoing channel: own casts, or own point-to-point sends to one member.
#[derive(Default)]
pub struct OutStream {
    /// Next sequence number to assign.
    pub next: u64,
    /// Sequence number of `buf[0]`: the oldest message not yet stable (or
    /// not yet acknowledged).
    pub base: u64,
    /// Sent messages `[base, next)`, payload only (header popped), kept for
    /// retransmission.
    pub buf: VecDeque<Kept>,
    /// Messages waiting for the window to open, in order.
    pub backlog: VecDeque<Msg>,
}

impl OutStream {
    /// Whether another message may go out now.
    #[inline]
    pub fn open(&self, window: u64) -> bool {
        self.next - self.base < window
    }

    /// Messages not yet stable or acknowledged.
    #[inline]
    pub fn unacked(&self) -> bool {
        self.base < self.next
    }

    /// The kept message with sequence number `seq`, if still kept.
    pub fn get(&self, seq: u64) -> Option<&Kept> {
        if seq < self.base {
            return None;
        }
        self.buf.get((seq - self.base) as usize)
    }

    /// Drops kept messages below `upto` (stable or acknowledged). Returns
    /// false when `upto` is beyond what was ever sent (a peer that lies).
    pub fn collect(&mut self, upto: u64) -> bool {
        if upto > self.next {
            return false;
        }
        let mut r = Releaser::new();
        while self.base < upto {
            if let Some(k) = self.buf.pop_front() {
                r.push(k.msg);
            }
            self.base += 1;
        }
        true
    }
}

/// Incoming channel: casts of one sender, or its sends to us.
#[derive(Default)]
pub struct InStream {
    /// Next sequence number to deliver.
    pub next: u64,
    /// Sequence number of `buf[0]`.
    pub base: u64,
    /// `[base, next)`: delivered messages retained for retransmission on
    /// behalf of their sender (casts only); `[next, ..)`: out-of-order
    /// arrivals waiting for the gap below them to fill.
    pub buf: VecDeque<Option<Kept>>,
    /// One past the highest sequence number known to exist.
    pub high: u64,
    /// An acknowledgement should be sent (point-to-point channels).
    pub ack_due: bool,
    /// Member to ask for missing messages instead of their sender (set by
    /// a flush when the sender failed).
    pub helper: Option<u16>,
}

/// What [`InStream::insert`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// Stored; `deliverable` says whether `next` can now advance.
    Stored {
        /// The message at `next` is present.
        deliverable: bool,
    },
    /// Already delivered or already buffered.
    Duplicate,
    /// Too far ahead of `next`.
    OutOfWindow,
}

impl InStream {
    /// Whether messages are known to be missing.
    #[inline]
    pub fn missing(&self) -> bool {
        self.next < self.high
    }

    /// Stores message `seq`.
    pub fn insert(&mut self, seq: u64, msg: Msg, window: u64) -> Insert {
        if seq < self.next {
            return Insert::Duplicate;
        }
        if seq - self.next >= window {
            return Insert::OutOfWindow;
        }
        let idx = (seq - self.base) as usize;
        while self.buf.len() <= idx {
            self.buf.push_back(None);
        }
        if self.buf[idx].is_some() {
            return Insert::Duplicate;
        }
        self.buf[idx] = Some(Kept::full(msg));
        self.high = self.high.max(seq + 1);
        Insert::Stored {
            deliverable: seq == self.next,
        }
    }

    /// Takes the next in-order message, if present, advancing `next`. With
    /// `retain`, a handle stays in the buffer for retransmission.
    pub fn pop_next(&mut self, retain: bool) -> Option<(u64, Msg)> {
        let idx = (self.next - self.base) as usize;
        let slot = self.buf.get_mut(idx)?;
        let msg = if retain {
            slot.as_ref()?.msg.share()
        } else {
            slot.take()?.msg
        };
        let seq = self.next;
        self.next += 1;
        if !retain {
            // Nothing below `next` is kept: move `base` along.
            while self.base < self.next {
                self.buf.pop_front();
                self.base += 1;
            }
        }
        Some((seq, msg))
    }

    /// Keeps the last `keep` delivered messages (every one its sender may
    /// still need repaired: a sender has at most a window unstable), and
    /// at most `keep + keep / 8`: once over, the oldest beyond `keep` go
    /// together, in runs (windows on one packed frame give their
    /// references back at once).
    #[inline]
    pub fn trim_retained(&mut self, keep: u64) {
        if self.next - self.base > keep + keep / 8 {
            self.collect(self.next - keep);
        }
    }

    /// Drops retained messages below `upto` (stable everywhere).
    pub fn collect(&mut self, upto: u64) {
        let upto = upto.min(self.next);
        let mut r = Releaser::new();
        while self.base < upto {
            // `buf` may end below `next` (see `push_next`).
            if let Some(Some(k)) = self.buf.pop_front() {
                r.push(k.msg);
            }
            self.base += 1;
        }
    }

    /// Fast path: `msg` is message `next`, delivered now (nothing is
    /// buffered beyond it); its payload stays retained, bare.
    #[inline(always)]
    pub fn push_next(&mut self, msg: Msg) {
        debug_assert!(!self.missing());
        // Nothing waits beyond `next` (the fast path's condition): the
        // buffer ends there, unless empty slots were left behind it.
        let at = (self.next - self.base) as usize;
        if self.buf.len() != at {
            self.buf.truncate(at);
        }
        self.buf.push_back(Some(Kept::bare(msg)));
        self.next += 1;
        self.high = self.high.max(self.next);
    }

    /// `push_next` and `trim_retained(keep)` for each of `msgs` in turn,
    /// at once: the same messages are retained after it (the trims in
    /// between only decide which go back, and those go back together).
    #[inline]
    pub fn push_run(&mut self, msgs: &mut VecDeque<Msg>, keep: u64) {
        debug_assert!(!self.missing());
        let at = (self.next - self.base) as usize;
        if self.buf.len() != at {
            self.buf.truncate(at);
        }
        let n = msgs.len() as u64;
        let mut base = self.base;
        for next in self.next + 1..=self.next + n {
            if next - base > keep + keep / 8 {
                base = next - keep;
            }
        }
        self.buf.extend(msgs.drain(..).map(|m| Some(Kept::bare(m))));
        self.next += n;
        self.high = self.high.max(self.next);
        if base > self.base {
            self.collect(base);
        }
    }

    /// A retained or buffered message, if present.
    pub fn get(&self, seq: u64) -> Option<&Kept> {
        if seq < self.base {
            return None;
        }
        self.buf.get((seq - self.base) as usize)?.as_ref()
    }

    /// Skips `[next, to)`: they are lost for good.
    pub fn skip_to(&mut self, to: u64) {
        while self.next < to {
            let idx = (self.next - self.base) as usize;
            if idx < self.buf.len() {
                self.buf[idx] = None;
            }
            self.next += 1;
        }
        self.collect(self.next);
        self.high = self.high.max(self.next);
    }

    /// The missing ranges in `[next, high)`, at most as many as fit.
    pub fn gaps(&self) -> RangeList {
        let mut out = RangeList::default();
        let mut run: Option<u64> = None;
        let mut seq = self.next;
        while seq < self.high {
            let present = self.get(seq).is_some();
            match (present, run) {
                (false, None) => run = Some(seq),
                (true, Some(from)) => {
                    if !out.push(from, seq) {
                        return out;
                    }
                    run = None;
                }
                _ => {}
            }
            seq += 1;
        }
        if let Some(from) = run {
            out.push(from, self.high);
        }
        out
    }

    /// Messages held.
    pub fn held(&self) -> usize {
        self.buf.iter().filter(|m| m.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_drivers::{Pool, PoolConfig};

    fn msg(p: &Pool, b: u8) -> Msg {
        p.alloc_copy(&[b]).unwrap()
    }

    #[test]
    fn in_order_out_of_order_and_duplicates() {
        let p = Pool::new(PoolConfig::default()).unwrap();
        let mut s = InStream::default();
        assert_eq!(
            s.insert(1, msg(&p, 1), 8),
            Insert::Stored { deliverable: false }
        );
        assert!(s.missing());
        assert_eq!(s.gaps().as_slice(), &[(0, 1)]);
        assert_eq!(s.insert(1, msg(&p, 1), 8), Insert::Duplicate);
        assert_eq!(s.insert(9, msg(&p, 9), 8), Insert::OutOfWindow);
        assert_eq!(
            s.insert(0, msg(&p, 0), 8),
            Insert::Stored { deliverable: true }
        );
        let (a, m) = s.pop_next(true).unwrap();
        assert_eq!((a, m.to_vec()), (0, vec![0]));
        let (b, _) = s.pop_next(true).unwrap();
        assert_eq!(b, 1);
        assert!(s.pop_next(true).is_none());
        assert_eq!(s.insert(0, msg(&p, 0), 8), Insert::Duplicate);
        assert_eq!(s.held(), 2);
        s.collect(1);
        assert_eq!(s.held(), 1);
        assert!(s.get(0).is_none() && s.get(1).is_some());
        s.trim_retained(0);
        assert_eq!(s.held(), 0);
    }

    #[test]
    fn gaps_are_ranges_and_bounded() {
        let p = Pool::new(PoolConfig::default()).unwrap();
        let mut s = InStream::default();
        for seq in (1..200).step_by(2) {
            s.insert(seq, msg(&p, 0), 1000);
        }
        s.high = 210;
        let g = s.gaps();
        assert!(g.is_full());
        assert_eq!(g.as_slice()[0], (0, 1));
        assert_eq!(g.as_slice()[1], (2, 3));
        s.skip_to(150);
        assert_eq!(s.next, 150);
        assert_eq!(s.gaps().as_slice()[0], (150, 151));
    }

    #[test]
    fn out_stream_collects_and_refuses_lies() {
        let p = Pool::new(PoolConfig::default()).unwrap();
        let mut o = OutStream::default();
        for i in 0..4 {
            o.buf.push_back(Kept::full(msg(&p, i)));
            o.next += 1;
        }
        assert!(!o.open(4));
        assert!(!o.collect(5));
        assert!(o.collect(2));
        assert_eq!(o.get(2).unwrap().msg.to_vec(), vec![2]);
        assert!(o.get(1).is_none());
        assert!(o.open(4));
    }

    #[test]
    fn retained_messages_go_in_runs_and_the_last_window_stays() {
        let p = Pool::new(PoolConfig::default()).unwrap();
        let mut s = InStream::default();
        for i in 0..18u8 {
            s.push_next(msg(&p, i));
            s.trim_retained(16);
        }
        // Up to an eighth over the window before anything goes.
        assert_eq!(s.held(), 18);
        s.push_next(msg(&p, 18));
        s.trim_retained(16);
        assert_eq!(s.held(), 16);
        assert!(s.get(2).is_none());
        for seq in 3..19 {
            assert_eq!(s.get(seq).unwrap().msg.to_vec(), vec![seq as u8]);
        }
        drop(s);
        assert_eq!(p.stats().in_use, 0, "every dropped handle went back");
    }

    /// A run pushed at once retains what pushing its messages one at a
    /// time, trimming after each, retains: for runs of every length from
    /// every fill of the window, repeatedly.
    #[test]
    fn a_run_retains_what_one_at_a_time_retains() {
        let p = Pool::new(PoolConfig::default()).unwrap();
        for keep in [1u64, 7, 16, 64] {
            for first in 0..keep + keep / 8 + 2 {
                for n in 0..3 * keep + 3 {
                    let (mut a, mut b) = (InStream::default(), InStream::default());
                    for i in 0..first {
                        for s in [&mut a, &mut b] {
                            s.push_next(msg(&p, i as u8));
                            s.trim_retained(keep);
                        }
                    }
                    let mut run: VecDeque<Msg> = VecDeque::new();
                    for i in first..first + n {
                        a.push_next(msg(&p, i as u8));
                        a.trim_retained(keep);
                        run.push_back(msg(&p, i as u8));
                    }
                    b.push_run(&mut run, keep);
                    assert!(run.is_empty());
                    let what = |s: &InStream| {
                        let kept: Vec<_> = (s.base..s.next)
                            .map(|q| s.get(q).map(|k| k.msg.to_vec()))
                            .collect();
                        (s.base, s.next, s.high, kept)
                    };
                    assert_eq!(what(&a), what(&b), "keep {keep}, first {first}, run {n}");
                }
            }
        }
        assert_eq!(p.stats().in_use, 0, "every dropped handle went back");
    }
}
