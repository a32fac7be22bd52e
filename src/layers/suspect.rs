//! `suspect`: heartbeat failure detector.
//!
//! Every member multicasts a heartbeat every `timeout / 4` unless its own
//! traffic went out in that period (data is proof of life too). A member
//! from which nothing at all arrived for `timeout` is suspected: the layer
//! reports `Up::Suspect` with the newly suspected ranks, once per
//! silence (a member heard from again is reported again if it falls
//! silent again). `gms` above turns suspicions into a view change. The
//! application may suspect members itself with `Down::Suspect`.
//!
//! Only this layer's own raw messages carry its one-byte tag; sequenced
//! data passes untouched, so the common path costs no header.

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Time, Up, View};
use crate::layer::{Cx, DropReason, FastCast, FastRun, Layer, LayerInfo, Prop};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "suspect",
    needs: &[Prop::Reliable],
    needs_above: &[Prop::Membership],
    provides: &[Prop::FailureDetection],
    bottom: false,
    about: "heartbeat failure detector; reports silent members as suspected",
};

const TICK: u64 = 1;
/// Tag of a raw message from a layer above.
const TAG_ABOVE: u8 = 0;
/// Tag of a heartbeat.
const TAG_HEARTBEAT: u8 = 1;

/// Parameters of `suspect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspectConfig {
    /// Silence after which a member is suspected, ns. Heartbeats go out
    /// every quarter of it.
    pub timeout_ns: u64,
}

impl SuspectConfig {
    /// Default for shared memory on one host.
    pub const SHM: SuspectConfig = SuspectConfig {
        timeout_ns: 50_000_000,
    };
    /// Default for a LAN.
    pub const LAN: SuspectConfig = SuspectConfig {
        timeout_ns: 500_000_000,
    };
}

impl Default for SuspectConfig {
    fn default() -> Self {
        SuspectConfig::LAN
    }
}

/// The `suspect` layer.
pub struct Suspect {
    cfg: SuspectConfig,
    v: Option<SuspectView>,
}

struct SuspectView {
    me: Rank,
    /// Last time anything arrived from each member.
    heard: Vec<Time>,
    /// Already reported.
    suspected: Vec<bool>,
    /// Last time this member sent anything.
    sent: Time,
}

impl Suspect {
    /// A `suspect` layer.
    pub fn new(cfg: SuspectConfig) -> Suspect {
        Suspect { cfg, v: None }
    }

    fn period(&self) -> u64 {
        (self.cfg.timeout_ns / 4).max(1)
    }

    fn install(&mut self, view: &Arc<View>, cx: &mut Cx<'_>) {
        let now = cx.now();
        let first = self.v.is_none();
        self.v = Some(SuspectView {
            me: view.rank,
            heard: vec![now; view.size()],
            suspected: vec![false; view.size()],
            sent: Time::ZERO,
        });
        if first {
            cx.arm(now.plus_ns(self.period()), TICK);
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let period = self.period();
        let now = cx.now();
        cx.arm(now.plus_ns(period), TICK);
        let Some(v) = self.v.as_mut() else {
            return;
        };
        if v.heard.len() > 1 && now.since(v.sent) >= period {
            if let Some(mut m) = cx.alloc() {
                if let Ok(b) = m.reserve(1) {
                    b[0] = TAG_HEARTBEAT;
                    v.sent = now;
                    cx.stats().control += 1;
                    cx.down(Down::CastRaw(m));
                }
            }
        }
        let mut newly = Vec::new();
        for (r, h) in v.heard.iter().enumerate() {
            if r != v.me as usize && !v.suspected[r] && now.since(*h) >= self.cfg.timeout_ns {
                newly.push(r as Rank);
            }
        }
        if !newly.is_empty() {
            for r in &newly {
                v.suspected[*r as usize] = true;
            }
            cx.up(Up::Suspect(newly.into()));
        }
    }

    /// Something arrived from `src`: it is alive, and is suspected again
    /// (reported anew) if it falls silent again.
    fn heard(&mut self, src: Rank, now: Time) {
        if let Some(v) = self.v.as_mut() {
            if let Some(h) = v.heard.get_mut(src as usize) {
                *h = now;
                v.suspected[src as usize] = false;
            }
        }
    }

    fn sent(&mut self, now: Time) {
        if let Some(v) = self.v.as_mut() {
            v.sent = now;
        }
    }
}

impl Layer for Suspect {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::View(view) => {
                self.install(&view, cx);
                cx.down(Down::View(view));
            }
            Down::Timer(TICK) => self.tick(cx),
            Down::Timer(_) => {}
            Down::CastRaw(m) => {
                if let Some(m) = cx.tagged(m, TAG_ABOVE) {
                    self.sent(cx.now());
                    cx.down(Down::CastRaw(m));
                }
            }
            Down::SendRaw(d, m) => {
                if let Some(m) = cx.tagged(m, TAG_ABOVE) {
                    cx.down(Down::SendRaw(d, m));
                }
            }
            Down::Cast(m) => {
                self.sent(cx.now());
                cx.down(Down::Cast(m));
            }
            Down::Suspect(ranks) => {
                if let Some(v) = self.v.as_mut() {
                    let mut newly: Vec<Rank> = Vec::new();
                    for &r in ranks.iter() {
                        let i = r as usize;
                        if i < v.suspected.len() && r != v.me && !v.suspected[i] {
                            v.suspected[i] = true;
                            newly.push(r);
                        }
                    }
                    if !newly.is_empty() {
                        cx.up(Up::Suspect(newly.into()));
                    }
                }
            }
            other => cx.down(other),
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[])
    }

    #[inline]
    fn fast_down(&mut self, _fc: &mut FastCast, cx: &mut Cx<'_>) {
        self.sent(cx.now());
    }

    #[inline]
    fn fast_up(&mut self, src: Rank, _seq: u64, _msg: &mut Option<Msg>, cx: &mut Cx<'_>) {
        self.heard(src, cx.now());
    }

    /// Hearing from the sender (at the time the cast arrived, which the
    /// post-processing is given) can wait for the delivery.
    #[inline]
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        msgs.len()
    }

    #[inline]
    fn fast_down_run(&mut self, _run: &mut FastRun<'_>, cx: &mut Cx<'_>) {
        self.sent(cx.now());
    }

    #[inline]
    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        true
    }

    #[inline]
    fn fast_up_run(&mut self, src: Rank, _seq: u64, _n: u64, cx: &mut Cx<'_>) {
        self.heard(src, cx.now());
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let now = cx.now();
        match ev {
            Up::CastRaw { src, mut msg } => match msg.front().first().copied() {
                Some(TAG_ABOVE) => {
                    self.heard(src, now);
                    let _ = msg.advance(1);
                    cx.up(Up::CastRaw { src, msg });
                }
                Some(TAG_HEARTBEAT) => self.heard(src, now),
                Some(_) => cx.dropped(DropReason::UnknownTag),
                None => cx.dropped(DropReason::Truncated),
            },
            Up::SendRaw { src, mut msg } => match msg.front().first().copied() {
                Some(TAG_ABOVE) => {
                    self.heard(src, now);
                    let _ = msg.advance(1);
                    cx.up(Up::SendRaw { src, msg });
                }
                Some(_) => cx.dropped(DropReason::UnknownTag),
                None => cx.dropped(DropReason::Truncated),
            },
            Up::Cast { src, seq, msg } => {
                self.heard(src, now);
                cx.up(Up::Cast { src, seq, msg });
            }
            Up::Send { src, seq, msg } => {
                self.heard(src, now);
                cx.up(Up::Send { src, seq, msg });
            }
            Up::Progress { src, next } => {
                self.heard(src, now);
                cx.up(Up::Progress { src, next });
            }
            other => cx.up(other),
        }
    }

    fn dump(&self, out: &mut String) {
        match &self.v {
            None => out.push_str("no view"),
            Some(v) => out.push_str(&format!("heard={:?} suspected={:?}", v.heard, v.suspected)),
        }
    }
}
