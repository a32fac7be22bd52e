//! `xfer`: state transfer to joiners.
//!
//! A member whose first view holds others (a joiner) keeps that view and
//! everything after it from the application and asks the view's rank 0
//! (an old member: `gms` ranks survivors before joiners) for the state.
//! Rank 0 asks its application (`Up::GetState`, answered with
//! `Down::State`) and notes, per sender, how many casts of the view it had
//! delivered when the application took the state. It streams the state in
//! chunks of one buffer each (never the whole state in one buffer), as
//! buffers come free, with that vector. The joiner assembles the chunks,
//! then gives the application `Up::State`, its first view, and the casts
//! of that view the state does not already hold (also those that arrive
//! after the state: they travel on other channels): the state is exactly
//! as of the point where its own deliveries begin.
//!
//! If rank 0 fails before the state is complete, the next view comes
//! while the joiner waits: it drops what it had (the casts and the
//! partial state) and asks that view's rank 0. A joiner that finds itself
//! rank 0 while waiting has no old member left to ask: it gets
//! `Up::State(None)`.

use std::collections::VecDeque;
use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::layers::gms::{decode_xfer, encode, XferCtrl};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "xfer",
    needs: &[Prop::Membership],
    needs_above: &[],
    provides: &[Prop::StateTransfer],
    bottom: false,
    about: "state transfer: a joiner's first view comes with the state as of that view",
};

const TICK: u64 = 1;
const TAG_DATA: u8 = 0;
/// An rkyv-encoded [`XferCtrl`].
const TAG_CTRL: u8 = 1;
const TAG_CHUNK: u8 = 3;
/// Chunks sent per round at most (the rest when buffers come back).
const CHUNKS_PER_ROUND: usize = 64;
/// Largest state accepted, bytes.
pub const MAX_STATE: u64 = 1 << 32;

/// The `xfer` layer.
#[derive(Default)]
pub struct Xfer {
    view: Option<Arc<View>>,
    /// Per sender, one past the last cast delivered in this view.
    delivered: Vec<u64>,
    /// Waiting for the state (a joiner).
    wait: Option<Wait>,
    /// After the state came: per sender, casts of this view below this are
    /// in the state already (they may still arrive: the state and the
    /// casts travel on different channels).
    skip: Vec<u64>,
    /// Rank 0: requesters waiting for the application's answer.
    asked: Vec<Rank>,
    /// Rank 0: the vector when the application was asked.
    asked_at: Vec<u64>,
    /// Rank 0: transfers under way.
    out: Vec<Outgoing>,
    armed: bool,
}

struct Wait {
    /// The view to give the application once the state is in.
    view: Arc<View>,
    /// Events after it.
    held: VecDeque<Up>,
    /// Delivery vector of the state and its length, once announced.
    begin: Option<(Vec<u64>, u64)>,
    data: Vec<u8>,
}

struct Outgoing {
    to: Rank,
    vector: Vec<u64>,
    state: Arc<[u8]>,
    /// Bytes sent; `None` before the announcement.
    sent: Option<usize>,
}

impl Xfer {
    /// An `xfer` layer.
    pub fn new() -> Xfer {
        Xfer::default()
    }

    fn arm(&mut self, cx: &mut Cx<'_>) {
        if !self.armed {
            self.armed = true;
            cx.arm(cx.now().plus_ns(1_000_000), TICK);
        }
    }

    fn on_view(&mut self, v: Arc<View>, cx: &mut Cx<'_>) {
        let first = self.view.is_none();
        self.view = Some(v.clone());
        self.delivered = vec![0; v.size()];
        self.skip.clear();
        self.asked.clear();
        self.out.clear();
        if first && v.size() > 1 || self.wait.is_some() {
            if v.rank == 0 {
                // Nobody older is left to ask.
                let w = self.wait.take();
                cx.up(Up::State(None));
                cx.up(Up::View(v));
                drop(w);
                return;
            }
            self.wait = Some(Wait {
                view: v,
                held: VecDeque::new(),
                begin: None,
                data: Vec::new(),
            });
            if let Some(m) = cx.message(&[&[TAG_CTRL], &encode(&XferCtrl::Request)]) {
                cx.down(Down::Send(0, m));
            }
            return;
        }
        cx.up(Up::View(v));
    }

    fn pump(&mut self, cx: &mut Cx<'_>) {
        let per = cx.ctl_capacity().saturating_sub(96).max(64);
        let mut budget = CHUNKS_PER_ROUND;
        for o in &mut self.out {
            if o.sent.is_none() {
                let body = encode(&XferCtrl::Begin {
                    len: o.state.len() as u64,
                    vector: o.vector.clone(),
                });
                let Some(m) = cx.message(&[&[TAG_CTRL], &body]) else {
                    break;
                };
                cx.down(Down::Send(o.to, m));
                o.sent = Some(0);
            }
            while let Some(off) = o.sent.filter(|s| *s < o.state.len()) {
                if budget == 0 {
                    break;
                }
                let end = (off + per).min(o.state.len());
                let at = (off as u64).to_be_bytes();
                let Some(m) = cx.message(&[&[TAG_CHUNK], &at, &o.state[off..end]]) else {
                    budget = 0;
                    break;
                };
                cx.down(Down::Send(o.to, m));
                o.sent = Some(end);
                budget -= 1;
            }
        }
        self.out
            .retain(|o| o.sent.is_none_or(|s| s < o.state.len()));
        if !self.out.is_empty() {
            self.arm(cx);
        }
    }

    fn on_send(&mut self, src: Rank, seq: u64, mut m: Msg, cx: &mut Cx<'_>) {
        let Some(tag) = m.front().first().copied() else {
            cx.dropped(DropReason::Truncated);
            return;
        };
        let _ = m.advance(1);
        match tag {
            TAG_DATA => self.pass(Up::Send { src, seq, msg: m }, cx),
            TAG_CTRL => match decode_xfer(m.front()) {
                Ok(XferCtrl::Request) => {
                    if self.view.as_ref().is_some_and(|v| v.rank == 0) && self.wait.is_none() {
                        if self.asked.is_empty() {
                            self.asked_at = self.delivered.clone();
                            cx.up(Up::GetState);
                        }
                        if !self.asked.contains(&src) {
                            self.asked.push(src);
                        }
                    }
                }
                Ok(XferCtrl::Begin { len, vector }) => self.on_begin(src, len, vector, cx),
                Err(_) => cx.dropped(DropReason::BadField),
            },
            TAG_CHUNK => self.on_chunk(src, m.front(), cx),
            _ => cx.dropped(DropReason::UnknownTag),
        }
    }

    fn on_begin(&mut self, src: Rank, len: u64, vector: Vec<u64>, cx: &mut Cx<'_>) {
        let Some(w) = self.wait.as_mut() else {
            return;
        };
        if src != 0 || vector.len() != w.view.size() || len > MAX_STATE {
            cx.dropped(DropReason::BadField);
            return;
        }
        w.begin = Some((vector, len));
        w.data = Vec::with_capacity(len.min(1 << 24) as usize);
        if len == 0 {
            self.complete(cx);
        }
    }

    fn on_chunk(&mut self, src: Rank, b: &[u8], cx: &mut Cx<'_>) {
        let Some(w) = self.wait.as_mut() else {
            return;
        };
        let Some((_, len)) = &w.begin else {
            cx.dropped(DropReason::BadField);
            return;
        };
        if src != 0 || b.len() < 8 {
            cx.dropped(DropReason::BadField);
            return;
        }
        let off = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let rest = &b[8..];
        if off != w.data.len() as u64 || off + rest.len() as u64 > *len {
            cx.dropped(DropReason::BadField);
            return;
        }
        w.data.extend_from_slice(rest);
        if w.data.len() as u64 == *len {
            self.complete(cx);
        }
    }

    /// The state is in: state, view, then the held events the state does
    /// not cover.
    fn complete(&mut self, cx: &mut Cx<'_>) {
        let Some(w) = self.wait.take() else {
            return;
        };
        let Some((vector, _)) = w.begin else {
            return;
        };
        cx.up(Up::State(Some(Arc::from(w.data))));
        cx.up(Up::View(w.view));
        self.skip = vector;
        for ev in w.held {
            self.pass(ev, cx);
        }
    }

    /// An event for the application: held while waiting for the state;
    /// a cast the state holds already is dropped.
    fn pass(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match self.wait.as_mut() {
            Some(w) => w.held.push_back(ev),
            None => match ev {
                Up::Cast { src, seq, .. }
                    if seq < self.skip.get(src as usize).copied().unwrap_or(0) => {}
                ev => cx.up(ev),
            },
        }
    }
}

impl Layer for Xfer {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            // Casts carry no tag: this layer sends none of its own.
            Down::Cast(m) => cx.down(Down::Cast(m)),
            Down::Send(d, m) => {
                if let Some(m) = cx.tagged(m, TAG_DATA) {
                    cx.down(Down::Send(d, m));
                }
            }
            Down::State(s) => {
                for to in std::mem::take(&mut self.asked) {
                    self.out.push(Outgoing {
                        to,
                        vector: self.asked_at.clone(),
                        state: s.clone(),
                        sent: None,
                    });
                }
                self.pump(cx);
            }
            Down::Timer(TICK) => {
                self.armed = false;
                self.pump(cx);
            }
            Down::Timer(_) => {}
            other => cx.down(other),
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[])
    }

    #[inline]
    fn fast_down_ok(&self, _msg: &Msg) -> bool {
        self.wait.is_none()
    }

    #[inline]
    fn fast_up_ok(&self, _src: Rank, _seq: u64) -> bool {
        self.wait.is_none()
    }

    /// `up(Cast)` when no state is awaited.
    #[inline]
    fn fast_up(&mut self, src: Rank, seq: u64, msg: &mut Option<Msg>, _cx: &mut Cx<'_>) {
        if let Some(d) = self.delivered.get_mut(src as usize) {
            *d = seq + 1;
        }
        if seq < self.skip.get(src as usize).copied().unwrap_or(0) {
            *msg = None;
        }
    }

    /// Unless the cast is one the transferred state already holds (it is
    /// dropped here, so the decision cannot wait).
    #[inline]
    fn fast_up_later(&self, src: Rank, seq: u64) -> bool {
        seq >= self.skip.get(src as usize).copied().unwrap_or(0)
    }

    /// Own casts from here on are none the transferred state holds: own
    /// deliveries go in order, so the next is `delivered` of the own rank.
    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        match &self.view {
            Some(v) if self.wait.is_none() => {
                let me = v.rank as usize;
                let next = self.delivered.get(me).copied().unwrap_or(0);
                if self.skip.get(me).copied().unwrap_or(0) <= next {
                    msgs.len()
                } else {
                    0
                }
            }
            _ => 0,
        }
    }

    /// None of them is one the state holds (those are dropped one at a
    /// time).
    #[inline]
    fn fast_up_run_ok(&self, src: Rank, seq: u64, _n: u64) -> bool {
        self.wait.is_none() && self.fast_up_later(src, seq)
    }

    #[inline]
    fn fast_up_run(&mut self, src: Rank, seq: u64, n: u64, _cx: &mut Cx<'_>) {
        if let Some(d) = self.delivered.get_mut(src as usize) {
            *d = seq + n;
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::View(v) => self.on_view(v, cx),
            Up::Cast { src, seq, msg } => {
                if let Some(d) = self.delivered.get_mut(src as usize) {
                    *d = seq + 1;
                }
                self.pass(Up::Cast { src, seq, msg }, cx);
            }
            Up::Send { src, seq, msg } => self.on_send(src, seq, msg, cx),
            // The flush must go on while the state is awaited.
            ev @ (Up::Block | Up::Exit | Up::Suspect(_)) => cx.up(ev),
            other => self.pass(other, cx),
        }
    }

    fn buffered(&self) -> usize {
        self.wait.as_ref().map_or(0, |w| w.held.len())
    }

    fn dump(&self, out: &mut String) {
        out.push_str(&format!(
            "waiting={} asked={:?} outgoing={}",
            self.wait.as_ref().map_or("no".to_string(), |w| format!(
                "held {} begin {:?} have {}",
                w.held.len(),
                w.begin.as_ref().map(|b| b.1),
                w.data.len()
            )),
            self.asked,
            self.out.len()
        ));
    }
}
