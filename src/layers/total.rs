//! `total`: total order within a view, by a sequencer.
//!
//! Members cast as usual (`gms` below keeps them FIFO per sender and
//! virtually synchronous). The coordinator (rank 0) is the sequencer: as
//! casts reach it, it notes their senders, and at the end of each batch
//! (a zero-delay timer fires once the engine has handled everything that
//! arrived in one poll) it casts one ORDER listing the senders in the
//! order it saw them. Since each sender's casts arrive in FIFO order, a
//! sender's rank names its next cast: the ORDER needs two bytes per
//! message. Every member delivers a cast once it has both the cast and its
//! place in an ORDER.
//!
//! At a view change every survivor holds the same casts and ORDERs
//! (virtual synchrony), so every survivor finishes the old view the same
//! way: it follows the ORDERs as far as it holds the casts (a cast that
//! only a failed sequencer had is skipped, and so are the rest of its
//! sender's), then delivers the casts that never got an order by sender
//! rank, then sequence number.
//!
//! The sequencer must not cast an ORDER after `gms` has stopped it, so
//! this layer sends its last ORDER when `BlockOk` passes down.

use std::collections::VecDeque;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "total",
    needs: &[Prop::Membership],
    needs_above: &[],
    provides: &[Prop::TotalOrder],
    bottom: false,
    about: "total order within a view: the coordinator sequences casts in batches",
};

const TICK: u64 = 1;
const TAG_DATA: u8 = 0;
const TAG_ORDER: u8 = 1;

/// The `total` layer (sequencer).
#[derive(Default)]
pub struct Total {
    v: Option<TotalView>,
}

struct TotalView {
    me: Rank,
    /// Casts not yet delivered, per sender, in FIFO order.
    unordered: Vec<VecDeque<(u64, Msg)>>,
    /// Senders of the next casts to deliver, from the sequencer's ORDERs.
    order: VecDeque<Rank>,
    /// Sequencer: senders noted since the last ORDER.
    batch: Vec<Rank>,
    armed: bool,
    /// Sequencer: `BlockOk` went down; no more ORDERs in this view.
    stopped: bool,
}

impl TotalView {
    fn new(v: &View) -> TotalView {
        TotalView {
            me: v.rank,
            unordered: (0..v.size()).map(|_| VecDeque::new()).collect(),
            order: VecDeque::new(),
            batch: Vec::new(),
            armed: false,
            stopped: false,
        }
    }

    fn sequencer(&self) -> bool {
        self.me == 0
    }

    /// Delivers what has both a cast and a place in an order.
    fn deliver(&mut self, cx: &mut Cx<'_>) {
        while let Some(&src) = self.order.front() {
            let Some((seq, msg)) = self.unordered[src as usize].pop_front() else {
                break;
            };
            self.order.pop_front();
            cx.up(Up::Cast { src, seq, msg });
        }
    }

    /// Ends the view: the orders as far as the casts go, then the rest by
    /// sender and sequence number. Every survivor does the same.
    fn finish(&mut self, cx: &mut Cx<'_>) {
        while let Some(src) = self.order.pop_front() {
            if let Some((seq, msg)) = self.unordered[src as usize].pop_front() {
                cx.up(Up::Cast { src, seq, msg });
            }
        }
        for (src, q) in self.unordered.iter_mut().enumerate() {
            while let Some((seq, msg)) = q.pop_front() {
                cx.up(Up::Cast {
                    src: src as Rank,
                    seq,
                    msg,
                });
            }
        }
    }

    /// Sequencer: casts the ORDER for the batch (in pieces that fit a
    /// buffer).
    fn send_order(&mut self, cx: &mut Cx<'_>) {
        if self.batch.is_empty() || self.stopped {
            return;
        }
        let per = (cx.ctl_capacity().saturating_sub(64) / 2).max(1);
        let batch = std::mem::take(&mut self.batch);
        for chunk in batch.chunks(per) {
            let Some(mut m) = cx.alloc() else {
                // No buffer now: keep the rest for the next tick.
                self.batch.extend_from_slice(chunk);
                continue;
            };
            let Ok(b) = m.reserve(1 + 2 * chunk.len()) else {
                self.batch.extend_from_slice(chunk);
                continue;
            };
            b[0] = TAG_ORDER;
            for (i, r) in chunk.iter().enumerate() {
                b[1 + 2 * i..3 + 2 * i].copy_from_slice(&r.to_be_bytes());
            }
            cx.stats().control += 1;
            cx.down(Down::Cast(m));
        }
        if !self.batch.is_empty() {
            self.arm(cx);
        }
    }

    fn arm(&mut self, cx: &mut Cx<'_>) {
        if !self.armed {
            self.armed = true;
            cx.arm(cx.now(), TICK);
        }
    }

    /// A data cast (tag popped): held until its place in an order is
    /// known.
    fn on_data(&mut self, src: Rank, seq: u64, msg: Msg, cx: &mut Cx<'_>) {
        if src as usize >= self.unordered.len() {
            cx.dropped(DropReason::BadRank);
            return;
        }
        self.unordered[src as usize].push_back((seq, msg));
        if self.sequencer() && !self.stopped {
            self.batch.push(src);
            self.arm(cx);
        }
        self.deliver(cx);
    }

    fn on_cast(&mut self, src: Rank, seq: u64, mut msg: Msg, cx: &mut Cx<'_>) {
        let n = self.unordered.len();
        match msg.front().first().copied() {
            Some(TAG_DATA) => {
                let _ = msg.advance(1);
                self.on_data(src, seq, msg, cx);
            }
            Some(TAG_ORDER) => {
                let b = &msg.front()[1..];
                if src != 0 || b.len() % 2 != 0 {
                    cx.dropped(DropReason::BadField);
                    return;
                }
                let ranks: Vec<Rank> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                if ranks.iter().any(|r| *r as usize >= n) {
                    cx.dropped(DropReason::BadRank);
                    return;
                }
                self.order.extend(ranks);
                self.deliver(cx);
            }
            Some(_) => cx.dropped(DropReason::UnknownTag),
            None => cx.dropped(DropReason::Truncated),
        }
    }
}

impl Total {
    /// A `total` layer.
    pub fn new() -> Total {
        Total::default()
    }
}

impl Layer for Total {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::Cast(m) => {
                if let Some(m) = cx.tagged(m, TAG_DATA) {
                    cx.down(Down::Cast(m));
                }
            }
            Down::Timer(TICK) => {
                if let Some(v) = self.v.as_mut() {
                    v.armed = false;
                    v.send_order(cx);
                }
            }
            Down::Timer(_) => {}
            Down::BlockOk => {
                if let Some(v) = self.v.as_mut() {
                    v.send_order(cx);
                    v.stopped = true;
                }
                cx.down(Down::BlockOk);
            }
            other => cx.down(other),
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { src, seq, msg } => match self.v.as_mut() {
                Some(v) => v.on_cast(src, seq, msg, cx),
                None => cx.dropped(DropReason::NoView),
            },
            Up::View(view) => {
                if let Some(v) = self.v.as_mut() {
                    v.finish(cx);
                }
                self.v = Some(TotalView::new(&view));
                cx.up(Up::View(view));
            }
            Up::Exit => {
                if let Some(v) = self.v.as_mut() {
                    v.finish(cx);
                }
                self.v = None;
                cx.up(Up::Exit);
            }
            other => cx.up(other),
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[TAG_DATA])
    }

    #[inline]
    fn fast_down_ok(&self, _msg: &Msg) -> bool {
        self.v.is_some()
    }

    #[inline]
    fn fast_up_ok(&self, src: Rank, _seq: u64) -> bool {
        self.v
            .as_ref()
            .is_some_and(|v| (src as usize) < v.unordered.len())
    }

    /// Holds the cast until it is ordered: it comes up later (or now,
    /// with whatever it let through) by `cx.up`.
    #[inline]
    fn fast_up(&mut self, src: Rank, seq: u64, msg: &mut Option<Msg>, cx: &mut Cx<'_>) {
        if let (Some(v), Some(m)) = (self.v.as_mut(), msg.take()) {
            v.on_data(src, seq, m, cx);
        }
    }

    fn buffered(&self) -> usize {
        self.v
            .as_ref()
            .map_or(0, |v| v.unordered.iter().map(|q| q.len()).sum())
    }

    fn dump(&self, out: &mut String) {
        match &self.v {
            None => out.push_str("no view"),
            Some(v) => out.push_str(&format!(
                "unordered={:?} order={} batch={} stopped={}",
                v.unordered.iter().map(|q| q.len()).collect::<Vec<_>>(),
                v.order.len(),
                v.batch.len(),
                v.stopped
            )),
        }
    }
}
