//! `stable`: stability detection.
//!
//! Every member counts, per sender, the casts it has delivered (`received`;
//! in ack mode, the casts the application has acknowledged with
//! `Down::Ack`). Members gossip these vectors, unsequenced; each keeps the
//! latest vector of every member and takes the minimum per sender: the
//! stability vector. Messages below it are held by everybody, so `nak`
//! (told by `Down::Stable`) drops them from its retransmit buffers, and the
//! application gets `Up::Stable`.
//!
//! A member gossips while it has news (its counts grew) or while something
//! it holds is not yet stable. Gossip carries the sender's stability vector
//! too: a member that sees a peer still waiting for counts it could give
//! answers at its next tick. Once every member's stability vector equals
//! its counts, the layer falls silent.

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, StableVec, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::wire::stable::{emit_gossip, gossip_len, parse_gossip, DATA, GOSSIP};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "stable",
    needs: &[Prop::Reliable],
    needs_above: &[],
    provides: &[Prop::Stability],
    bottom: false,
    about: "stability vectors by gossip; garbage collection of retransmit buffers",
};

const TICK: u64 = 1;

/// Parameters of `stable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StableConfig {
    /// Gossip period while something is not yet known stable, ns.
    pub gossip_ns: u64,
    /// Gossip at once when a sender's count grew by this many since the
    /// last gossip (keeps senders' windows open under load).
    pub gossip_every: u64,
    /// Stability counts application acknowledgements (`Down::Ack`), not
    /// deliveries.
    pub app_ack: bool,
}

impl Default for StableConfig {
    fn default() -> Self {
        StableConfig {
            gossip_ns: 1_000_000,
            gossip_every: 256,
            app_ack: false,
        }
    }
}

/// The `stable` layer.
pub struct Stable {
    cfg: StableConfig,
    v: Option<StableView>,
}

struct StableView {
    me: usize,
    n: usize,
    /// Own counts per sender.
    recv: Vec<u64>,
    /// Counts at the last gossip.
    sent: Vec<u64>,
    /// Latest counts of every member: row m is member m's vector.
    matrix: Vec<u64>,
    /// A peer's gossip showed it waiting for our counts.
    reply_due: bool,
    /// Current stability vector.
    stable: Vec<u64>,
    /// Published copy; reused when nobody holds it any more.
    published: StableVec,
    scratch_r: Vec<u64>,
    scratch_s: Vec<u64>,
    armed: bool,
}

impl Stable {
    /// A `stable` layer.
    pub fn new(cfg: StableConfig) -> Stable {
        Stable { cfg, v: None }
    }

    fn install(&mut self, view: &Arc<View>) {
        let n = view.size();
        self.v = Some(StableView {
            me: view.rank as usize,
            n,
            recv: vec![0; n],
            sent: vec![0; n],
            matrix: vec![0; n * n],
            reply_due: false,
            stable: vec![0; n],
            published: Arc::from(vec![0u64; n]),
            scratch_r: vec![0; n],
            scratch_s: vec![0; n],
            armed: false,
        });
    }
}

impl StableView {
    fn arm(&mut self, cfg: &StableConfig, cx: &mut Cx<'_>) {
        if !self.armed {
            self.armed = true;
            cx.arm(cx.now().plus_ns(cfg.gossip_ns), TICK);
        }
    }

    /// Whether another gossip round is needed: new counts to tell, a peer
    /// waiting for ours, or something held here not yet stable.
    fn needs_gossip(&self) -> bool {
        self.reply_due || self.recv != self.sent || self.stable != self.recv
    }

    #[inline]
    fn counted(&mut self, cfg: &StableConfig, src: usize, upto: u64, cx: &mut Cx<'_>) {
        if upto <= self.recv[src] {
            return;
        }
        self.recv[src] = upto;
        if self.recv[src] - self.sent[src] >= cfg.gossip_every {
            self.gossip(cx);
        }
        self.arm(cfg, cx);
    }

    fn recompute(&mut self, cx: &mut Cx<'_>) {
        let n = self.n;
        let me = self.me;
        self.matrix[me * n..(me + 1) * n].copy_from_slice(&self.recv);
        let mut changed = false;
        for s in 0..n {
            let min = (0..n).map(|m| self.matrix[m * n + s]).min().unwrap_or(0);
            if min > self.stable[s] {
                self.stable[s] = min;
                changed = true;
            }
        }
        if changed {
            match Arc::get_mut(&mut self.published) {
                Some(p) => p.copy_from_slice(&self.stable),
                None => self.published = Arc::from(&self.stable[..]),
            }
            cx.up(Up::Stable(self.published.clone()));
            cx.down(Down::Stable(self.published.clone()));
        }
    }

    fn gossip(&mut self, cx: &mut Cx<'_>) {
        self.recompute(cx);
        let Some(mut m) = cx.alloc() else {
            return;
        };
        let len = 1 + gossip_len(self.n);
        let Ok(b) = m.reserve(len) else {
            // A view too large for one buffer: stability by gossip is not
            // available (pbcast is the tool for such groups).
            cx.dropped(DropReason::TooLarge);
            return;
        };
        b[0] = GOSSIP;
        emit_gossip(&self.recv, &self.stable, &mut b[1..]);
        self.sent.copy_from_slice(&self.recv);
        self.reply_due = false;
        cx.stats().control += 1;
        cx.down(Down::CastRaw(m));
    }

    fn on_gossip(&mut self, cfg: &StableConfig, src: Rank, body: &[u8], cx: &mut Cx<'_>) {
        let src = src as usize;
        if src >= self.n || src == self.me {
            cx.dropped(DropReason::BadRank);
            return;
        }
        if let Err(e) = parse_gossip(body, &mut self.scratch_r, &mut self.scratch_s) {
            cx.dropped(e.drop_reason());
            return;
        }
        let n = self.n;
        for s in 0..n {
            let r = &mut self.matrix[src * n + s];
            *r = (*r).max(self.scratch_r[s]);
            // The peer's stability lags what we hold: it may be waiting for
            // our counts (our last gossip may have been lost).
            if self.scratch_s[s] < self.recv[s] {
                self.reply_due = true;
            }
        }
        self.recompute(cx);
        if self.needs_gossip() {
            self.arm(cfg, cx);
        }
    }
}

fn tagged(mut m: Msg, cx: &mut Cx<'_>) -> Option<Msg> {
    match m.push(1) {
        Ok(b) => {
            b[0] = DATA;
            Some(m)
        }
        Err(_) => {
            cx.dropped(DropReason::NoBuffer);
            None
        }
    }
}

/// Pops the type byte; `Some(true)` for data, `Some(false)` for gossip.
fn untag(m: &mut Msg, cx: &mut Cx<'_>) -> Option<bool> {
    let t = *m.front().first().or_else(|| {
        cx.dropped(DropReason::Truncated);
        None
    })?;
    let _ = m.advance(1);
    match t {
        DATA => Some(true),
        GOSSIP => Some(false),
        t => {
            cx.dropped(crate::wire::WireError::UnknownTag(t).drop_reason());
            None
        }
    }
}

impl Stable {
    /// Casts of `src` below `next` are held here (delivered, in reassembly,
    /// or declared lost).
    #[inline]
    fn held(&mut self, src: Rank, next: u64, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        if let Some(v) = self.v.as_mut() {
            if !cfg.app_ack && (src as usize) < v.n {
                v.counted(&cfg, src as usize, next, cx);
            }
        }
    }
}

impl Layer for Stable {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn dump(&self, out: &mut String) {
        if let Some(v) = &self.v {
            out.push_str(&format!(
                "recv={:?} stable={:?} sent={:?} armed={}",
                v.recv, v.stable, v.sent, v.armed
            ));
        }
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        match ev {
            // Sequenced casts carry no tag: gossip is never sequenced.
            Down::Cast(m) => cx.down(Down::Cast(m)),
            Down::Send(d, m) => {
                if let Some(m) = tagged(m, cx) {
                    cx.down(Down::Send(d, m));
                }
            }
            Down::CastRaw(m) => {
                if let Some(m) = tagged(m, cx) {
                    cx.down(Down::CastRaw(m));
                }
            }
            Down::SendRaw(d, m) => {
                if let Some(m) = tagged(m, cx) {
                    cx.down(Down::SendRaw(d, m));
                }
            }
            Down::View(view) => {
                self.install(&view);
                cx.down(Down::View(view));
            }
            Down::Ack { src, seq } => {
                if let Some(v) = self.v.as_mut() {
                    if cfg.app_ack && (src as usize) < v.n {
                        v.counted(&cfg, src as usize, seq.saturating_add(1), cx);
                    }
                }
            }
            Down::Timer(TICK) => {
                if let Some(v) = self.v.as_mut() {
                    v.armed = false;
                    if v.needs_gossip() {
                        v.gossip(cx);
                    }
                    if v.needs_gossip() {
                        v.arm(&cfg, cx);
                    }
                }
            }
            Down::Timer(_) => {}
            other => cx.down(other),
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[])
    }

    #[inline]
    fn fast_up(&mut self, src: Rank, seq: u64, _msg: &mut Option<Msg>, cx: &mut Cx<'_>) {
        self.held(src, seq + 1, cx);
    }

    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        msgs.len()
    }

    #[inline]
    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        true
    }

    /// Counted once for the run: the run ends at the cast that makes a
    /// gossip round due, if any (`fast_run_quiet`).
    #[inline]
    fn fast_up_run(&mut self, src: Rank, seq: u64, n: u64, cx: &mut Cx<'_>) {
        self.held(src, seq + n, cx);
    }

    /// Up to the cast whose count makes a gossip round due.
    #[inline]
    fn fast_run_quiet(&self, src: Rank, seq: u64) -> u64 {
        let cfg = &self.cfg;
        match &self.v {
            Some(v) if !cfg.app_ack && (src as usize) < v.n => {
                let due = v.sent[src as usize] + cfg.gossip_every;
                due.saturating_sub(seq + 1) + 1
            }
            _ => u64::MAX,
        }
    }

    /// Counting can wait for the delivery unless it makes a gossip round
    /// due (which goes on the wire at once).
    #[inline]
    fn fast_up_later(&self, src: Rank, seq: u64) -> bool {
        let cfg = &self.cfg;
        match &self.v {
            Some(v) if !cfg.app_ack && (src as usize) < v.n => {
                let s = src as usize;
                seq < v.recv[s] || (seq + 1).saturating_sub(v.sent[s]) < cfg.gossip_every
            }
            _ => true,
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        match ev {
            Up::Cast { src, seq, msg } => {
                self.held(src, seq + 1, cx);
                cx.up(Up::Cast { src, seq, msg });
            }
            Up::Progress { src, next } => self.held(src, next, cx),
            Up::Lost { src, from, to } => {
                self.held(src, to, cx);
                cx.up(Up::Lost { src, from, to });
            }
            Up::Send { src, seq, mut msg } => {
                if untag(&mut msg, cx) == Some(true) {
                    cx.up(Up::Send { src, seq, msg });
                }
            }
            Up::CastRaw { src, mut msg } => match untag(&mut msg, cx) {
                Some(true) => cx.up(Up::CastRaw { src, msg }),
                Some(false) => {
                    if let Some(v) = self.v.as_mut() {
                        v.on_gossip(&cfg, src, msg.front(), cx);
                    }
                }
                None => {}
            },
            Up::SendRaw { src, mut msg } => {
                if untag(&mut msg, cx) == Some(true) {
                    cx.up(Up::SendRaw { src, msg });
                }
            }
            other => cx.up(other),
        }
    }
}
