//! `nak`: reliable FIFO delivery for multicast and point-to-point.
//!
//! Each sender numbers its casts 0, 1, 2... per view, and its sends per
//! destination. A receiver delivers each sender's messages in order, drops
//! duplicates by sequence number, and on a gap sends a NAK naming the
//! missing ranges. Tail loss (the last messages of a burst lost) is caught
//! by STATUS messages the sender multicasts while it has unstable messages
//! and has been quiet for a tick. Point-to-point channels are acknowledged
//! cumulatively (ACK).
//!
//! Buffers are bounded: a sender keeps at most `window` unstable casts (and
//! `window` unacknowledged sends per destination); more wait in a backlog
//! that the application sees through `ready()`. Receivers keep out-of-order
//! arrivals within `window` of the next expected message, and retain up to
//! `window` delivered casts per sender until they are stable, so that any
//! member can repair any other. Cast buffers are collected by the stability
//! vectors that the `stable` layer above sends down.
//!
//! The layer arms a single periodic tick, and only while something is
//! unstable, unacknowledged or missing: an idle group is silent.

mod repair;
mod stream;

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Time, Up, View};
use crate::layer::{Cx, DropReason, FastCast, FastRun, Layer, LayerInfo, Prop};
use crate::wire::fast::SEQ_LIMIT;
use crate::wire::nak::{parse_ranges, NakHdr, Stream};

pub use stream::{InStream, Insert, Kept, OutStream};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "nak",
    needs: &[Prop::Framing],
    needs_above: &[Prop::Stability],
    provides: &[Prop::Reliable, Prop::Fifo],
    bottom: false,
    about: "sequence numbers, NAK retransmission, duplicate suppression, bounded buffers",
};

const TICK: u64 = 1;
/// Length of a NAK header before its ranges.
const NAK_HDR_LEN: usize = 5;

/// Parameters of `nak`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NakConfig {
    /// Most unstable casts a sender keeps out (and unacknowledged sends
    /// per destination); also the receive window. The default (4096) has
    /// to cover a receiver that is off its core for a scheduler time
    /// slice (a few ms) at millions of casts per second: with 1024, three
    /// processes sharing two cores stalled the sender on stability.
    pub window: u64,
    /// Period of the repair tick (NAKs, STATUS, ACKs), nanoseconds.
    pub tick_ns: u64,
    /// Most messages retransmitted in answer to one NAK.
    pub retrans_max: usize,
}

impl Default for NakConfig {
    fn default() -> Self {
        NakConfig {
            window: 4096,
            tick_ns: 1_000_000,
            retrans_max: 64,
        }
    }
}

/// The `nak` layer.
pub struct Nak {
    cfg: NakConfig,
    v: Option<NakView>,
    /// The common-case tags of the layers above: a bare (fast-path)
    /// message gets them back when it is retransmitted.
    above: Box<[u8]>,
}

struct NakView {
    me: Rank,
    n: usize,
    cast_out: OutStream,
    send_out: Vec<OutStream>,
    cast_in: Vec<InStream>,
    send_in: Vec<InStream>,
    /// Last time own data went out (STATUS is skipped while data flows).
    last_cast_at: Time,
    tick_armed: bool,
}

impl Nak {
    /// A `nak` layer.
    pub fn new(cfg: NakConfig) -> Nak {
        Nak {
            cfg,
            v: None,
            above: Box::default(),
        }
    }

    fn install(&mut self, view: &Arc<View>) {
        let n = view.size();
        let mk_out = || (0..n).map(|_| OutStream::default()).collect();
        let mk_in = || (0..n).map(|_| InStream::default()).collect();
        self.v = Some(NakView {
            me: view.rank,
            n,
            cast_out: OutStream::default(),
            send_out: mk_out(),
            cast_in: mk_in(),
            send_in: mk_in(),
            last_cast_at: Time::ZERO,
            tick_armed: false,
        });
    }
}

fn push_hdr(msg: &mut Msg, h: NakHdr, cx: &mut Cx<'_>) -> bool {
    match msg.push(h.len()) {
        Ok(b) => {
            h.emit(b);
            true
        }
        Err(_) => {
            cx.dropped(DropReason::NoBuffer);
            false
        }
    }
}

/// Delivers `s`'s in-order messages; casts stay retained (up to a window)
/// for retransmission on behalf of their sender.
fn deliver_ready(s: &mut InStream, stream: Stream, src: Rank, cfg: &NakConfig, cx: &mut Cx<'_>) {
    let retain = stream == Stream::Cast;
    while let Some((seq, msg)) = s.pop_next(retain) {
        cx.up(match stream {
            Stream::Cast => Up::Cast { src, seq, msg },
            Stream::Send => Up::Send { src, seq, msg },
        });
    }
    if retain {
        s.trim_retained(cfg.window);
    }
}

impl NakView {
    fn ensure_tick(&mut self, cfg: &NakConfig, cx: &mut Cx<'_>) {
        if !self.tick_armed {
            self.tick_armed = true;
            cx.arm(cx.now().plus_ns(cfg.tick_ns), TICK);
        }
    }

    fn needs_tick(&self) -> bool {
        self.cast_out.unacked()
            || self.send_out.iter().any(|o| o.unacked())
            || self.cast_in.iter().any(|i| i.missing())
            || self.send_in.iter().any(|i| i.missing() || i.ack_due)
    }

    fn send_cast(&mut self, cfg: &NakConfig, mut m: Msg, cx: &mut Cx<'_>) {
        let seq = self.cast_out.next;
        let keep = m.share();
        let mine = m.share();
        if !push_hdr(&mut m, NakHdr::Cast { seq }, cx) {
            // Keep it: a STATUS will make receivers NAK and we retransmit.
        } else {
            cx.down(Down::Cast(m));
        }
        self.cast_out.next += 1;
        self.cast_out.buf.push_back(Kept::full(keep));
        self.last_cast_at = cx.now();
        cx.up(Up::Cast {
            src: self.me,
            seq,
            msg: mine,
        });
        self.ensure_tick(cfg, cx);
    }

    fn send_p2p(&mut self, cfg: &NakConfig, dst: Rank, mut m: Msg, cx: &mut Cx<'_>) {
        let out = &mut self.send_out[dst as usize];
        let seq = out.next;
        out.next += 1;
        out.buf.push_back(Kept::full(m.share()));
        if push_hdr(&mut m, NakHdr::Send { seq }, cx) {
            cx.down(Down::Send(dst, m));
        }
        self.ensure_tick(cfg, cx);
    }

    /// Sends backlogged messages while windows are open.
    fn drain_backlogs(&mut self, cfg: &NakConfig, cx: &mut Cx<'_>) {
        while self.cast_out.open(cfg.window) {
            let Some(m) = self.cast_out.backlog.pop_front() else {
                break;
            };
            self.send_cast(cfg, m, cx);
        }
        for d in 0..self.n {
            while self.send_out[d].open(cfg.window) {
                let Some(m) = self.send_out[d].backlog.pop_front() else {
                    break;
                };
                self.send_p2p(cfg, d as Rank, m, cx);
            }
        }
    }

    /// Stores an arriving sequenced message and delivers what became
    /// deliverable.
    fn arrive(
        &mut self,
        cfg: &NakConfig,
        stream: Stream,
        src: Rank,
        seq: u64,
        m: Msg,
        cx: &mut Cx<'_>,
    ) {
        let s = match stream {
            Stream::Cast => &mut self.cast_in[src as usize],
            Stream::Send => &mut self.send_in[src as usize],
        };
        if stream == Stream::Send {
            s.ack_due = true;
        }
        match s.insert(seq, m, cfg.window) {
            Insert::Duplicate => cx.dropped(DropReason::Duplicate),
            Insert::OutOfWindow => cx.dropped(DropReason::OutOfWindow),
            Insert::Stored { deliverable: true } => deliver_ready(s, stream, src, cfg, cx),
            Insert::Stored { deliverable: false } => {}
        }
        self.ensure_tick(cfg, cx);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_raw(
        &mut self,
        above: &[u8],
        cfg: &NakConfig,
        src: Rank,
        p2p: bool,
        mut m: Msg,
        cx: &mut Cx<'_>,
    ) {
        let (h, len) = match NakHdr::parse(m.front()) {
            Ok(x) => x,
            Err(e) => {
                cx.dropped(e.drop_reason());
                return;
            }
        };
        // Cannot fail: parse checked the length.
        let _ = m.advance(len);
        match h {
            NakHdr::Cast { seq } if !p2p => self.arrive(cfg, Stream::Cast, src, seq, m, cx),
            NakHdr::Send { seq } if p2p => self.arrive(cfg, Stream::Send, src, seq, m, cx),
            NakHdr::Raw => cx.up(if p2p {
                Up::SendRaw { src, msg: m }
            } else {
                Up::CastRaw { src, msg: m }
            }),
            NakHdr::Retrans { orig, seq } => {
                if orig as usize >= self.n {
                    cx.dropped(DropReason::BadRank);
                } else if orig == self.me {
                    cx.dropped(DropReason::Duplicate);
                } else {
                    self.arrive(cfg, Stream::Cast, orig, seq, m, cx);
                }
            }
            NakHdr::Nak { stream, orig, n } => {
                let ranges = match parse_ranges(m.front(), n) {
                    Ok(r) => r,
                    Err(e) => {
                        cx.dropped(e.drop_reason());
                        return;
                    }
                };
                let ok = match stream {
                    Stream::Cast => (orig as usize) < self.n,
                    Stream::Send => orig == self.me,
                };
                if ok {
                    self.retransmit(above, cfg, cx, src, stream, orig, &ranges);
                } else {
                    cx.dropped(DropReason::BadRank);
                }
            }
            NakHdr::Status { stream, next } => {
                let s = match stream {
                    Stream::Cast if !p2p => &mut self.cast_in[src as usize],
                    Stream::Send if p2p => &mut self.send_in[src as usize],
                    _ => {
                        cx.dropped(DropReason::BadField);
                        return;
                    }
                };
                if next > s.next.saturating_add(cfg.window) {
                    cx.dropped(DropReason::OutOfWindow);
                    return;
                }
                s.high = s.high.max(next);
                if stream == Stream::Send {
                    s.ack_due = true;
                }
                if s.missing() || s.ack_due {
                    self.ensure_tick(cfg, cx);
                }
            }
            NakHdr::Ack { next } => {
                if !self.send_out[src as usize].collect(next) {
                    cx.dropped(DropReason::BadField);
                }
                self.drain_backlogs(cfg, cx);
            }
            NakHdr::Lost {
                stream,
                orig,
                from,
                to,
            } => {
                // Only the original sender may declare its messages lost.
                let s = match stream {
                    Stream::Cast if orig == src => &mut self.cast_in[src as usize],
                    Stream::Send if orig == src => &mut self.send_in[src as usize],
                    _ => {
                        cx.dropped(DropReason::BadRank);
                        return;
                    }
                };
                if from > s.next || to <= s.next || to > s.next.saturating_add(cfg.window) {
                    return;
                }
                let lost_from = s.next;
                s.skip_to(to);
                cx.up(Up::Lost {
                    src,
                    from: lost_from,
                    to,
                });
                deliver_ready(s, stream, src, cfg, cx);
            }
            NakHdr::Cast { .. } | NakHdr::Send { .. } => cx.dropped(DropReason::BadField),
        }
    }
}

impl Layer for Nak {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        match ev {
            Down::View(view) => {
                self.install(&view);
                cx.down(Down::View(view));
            }
            Down::Timer(TICK) => {
                if let Some(v) = self.v.as_mut() {
                    v.tick_armed = false;
                    v.tick(&cfg, cx);
                }
            }
            Down::Timer(_) => {}
            // Membership control passes by, view or not.
            ev @ (Down::Ctl(..) | Down::Join(_)) => cx.down(ev),
            Down::Repair { orig, upto, from } => {
                let Some(v) = self.v.as_mut() else {
                    return;
                };
                if (orig as usize) < v.n && (from as usize) < v.n && orig != v.me {
                    let s = &mut v.cast_in[orig as usize];
                    s.high = s.high.max(upto);
                    if from != v.me {
                        s.helper = Some(from);
                    }
                    if s.missing() {
                        v.ensure_tick(&cfg, cx);
                    }
                }
            }
            ev => {
                let Some(v) = self.v.as_mut() else {
                    cx.dropped(DropReason::NoView);
                    return;
                };
                match ev {
                    Down::Cast(m) => {
                        if v.cast_out.backlog.is_empty() && v.cast_out.open(cfg.window) {
                            v.send_cast(&cfg, m, cx);
                        } else {
                            v.cast_out.backlog.push_back(m);
                        }
                    }
                    Down::Send(d, m) if d == v.me => {
                        let out = &mut v.send_out[d as usize];
                        let seq = out.next;
                        out.next += 1;
                        out.base = out.next;
                        cx.up(Up::Send {
                            src: d,
                            seq,
                            msg: m,
                        });
                    }
                    Down::Send(d, m) if (d as usize) < v.n => {
                        let out = &mut v.send_out[d as usize];
                        if out.backlog.is_empty() && out.open(cfg.window) {
                            v.send_p2p(&cfg, d, m, cx);
                        } else {
                            out.backlog.push_back(m);
                        }
                    }
                    Down::Send(..) => cx.dropped(DropReason::BadRank),
                    Down::CastRaw(mut m) => {
                        if push_hdr(&mut m, NakHdr::Raw, cx) {
                            cx.down(Down::CastRaw(m));
                        }
                    }
                    Down::SendRaw(d, mut m) => {
                        if push_hdr(&mut m, NakHdr::Raw, cx) {
                            cx.down(Down::SendRaw(d, m));
                        }
                    }
                    Down::Stable(vec) => {
                        if vec.len() == v.n {
                            v.cast_out.collect(vec[v.me as usize].min(v.cast_out.next));
                            for (s, inn) in v.cast_in.iter_mut().enumerate() {
                                if s != v.me as usize {
                                    inn.collect(vec[s]);
                                }
                            }
                            v.drain_backlogs(&cfg, cx);
                        }
                        cx.down(Down::Stable(vec));
                    }
                    other => cx.down(other),
                }
            }
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        let Some(v) = self.v.as_mut() else {
            match ev {
                Up::CastRaw { .. } | Up::SendRaw { .. } => cx.dropped(DropReason::NoView),
                other => cx.up(other),
            }
            return;
        };
        match ev {
            Up::CastRaw { src, msg } => v.on_raw(&self.above, &cfg, src, false, msg, cx),
            Up::SendRaw { src, msg } => v.on_raw(&self.above, &cfg, src, true, msg, cx),
            other => cx.up(other),
        }
    }

    fn ready(&self) -> bool {
        match &self.v {
            Some(v) => v.cast_out.backlog.is_empty() && v.cast_out.open(self.cfg.window),
            None => false,
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        // The compact format carries the sequence number in `com`'s place.
        Some(&[])
    }

    fn fast_setup(&mut self, above: &[u8], _ctl_capacity: usize) {
        self.above = above.into();
    }

    #[inline]
    fn fast_down_ok(&self, _msg: &Msg) -> bool {
        match &self.v {
            Some(v) => {
                let o = &v.cast_out;
                o.backlog.is_empty() && o.open(self.cfg.window) && o.next < SEQ_LIMIT
            }
            None => false,
        }
    }

    /// `send_cast`'s numbering (the frame carries the number); keeping and
    /// the own delivery come in `fast_sent`.
    #[inline]
    fn fast_down(&mut self, fc: &mut FastCast, _cx: &mut Cx<'_>) {
        let Some(v) = self.v.as_mut() else {
            return;
        };
        fc.src = v.me;
        fc.seq = v.cast_out.next;
        v.cast_out.next += 1;
        fc.own_due = true;
    }

    /// `send_cast`'s bookkeeping after the frame left: the payload (the
    /// frame's own handle advanced past the header, or the message when
    /// packed) is kept for retransmission and becomes the own delivery.
    /// Keeping it after the frame left spares the frame an atomic count
    /// before it goes.
    #[inline(always)]
    fn fast_sent(&mut self, fc: &mut FastCast, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        let (Some(v), Some(m)) = (self.v.as_mut(), fc.msg.take()) else {
            return;
        };
        v.cast_out.buf.push_back(Kept::bare(m.share()));
        v.last_cast_at = cx.now();
        fc.own = Some(m);
        v.ensure_tick(&cfg, cx);
    }

    #[inline]
    fn fast_up_ok(&self, src: Rank, seq: u64) -> bool {
        let Some(v) = &self.v else {
            return false;
        };
        match v.cast_in.get(src as usize) {
            Some(s) => src != v.me && seq == s.next && !s.missing(),
            None => false,
        }
    }

    /// `arrive` when the message is the next one and nothing waits.
    #[inline(always)]
    fn fast_up(&mut self, src: Rank, _seq: u64, msg: &mut Option<Msg>, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        let Some(v) = self.v.as_mut() else {
            *msg = None;
            return;
        };
        let s = &mut v.cast_in[src as usize];
        if cx.posting() {
            // Post-processing: `msg` is the handle put aside to keep.
            let Some(kept) = msg.take() else {
                return;
            };
            s.push_next(kept);
        } else {
            let Some(m) = msg.as_ref() else {
                return;
            };
            s.push_next(cx.keep(m));
        }
        s.trim_retained(cfg.window);
        v.ensure_tick(&cfg, cx);
    }

    /// Keeping, trimming and the repair tick can wait until the cast is
    /// delivered: nothing of it goes on the wire.
    #[inline]
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    /// As many casts as the window has room for (`fast_down_ok` holds for
    /// each in turn until it is full).
    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        match &self.v {
            Some(v) if v.cast_out.backlog.is_empty() => {
                let o = &v.cast_out;
                let open = self.cfg.window.saturating_sub(o.next - o.base);
                let room = open.min(SEQ_LIMIT.saturating_sub(o.next));
                msgs.len().min(usize::try_from(room).unwrap_or(usize::MAX))
            }
            _ => 0,
        }
    }

    #[inline]
    fn fast_next_cast(&self) -> Option<(Rank, u64)> {
        self.v.as_ref().map(|v| (v.me, v.cast_out.next))
    }

    /// `fast_down` for a run: consecutive numbers.
    #[inline]
    fn fast_down_run(&mut self, run: &mut FastRun<'_>, _cx: &mut Cx<'_>) {
        let Some(v) = self.v.as_mut() else {
            return;
        };
        run.src = v.me;
        run.seq = v.cast_out.next;
        v.cast_out.next += run.len();
        run.own_due = true;
    }

    /// `fast_sent` for a run of packed casts: each is kept for
    /// retransmission (a second handle on each: the run's own become the
    /// own deliveries, unless the sender does not take those).
    #[inline]
    fn fast_sent_run(&mut self, run: &mut FastRun<'_>, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        let Some(v) = self.v.as_mut() else {
            return;
        };
        if run.msgs.is_empty() {
            // Not delivered to the sender (`Env::discard_own`): the
            // handles themselves are kept (the run's are the first of
            // `run_keep`).
            let keep = cx.run_keep();
            let n = (run.len() as usize).min(keep.len());
            debug_assert_eq!(n as u64, run.len(), "a run without its handles");
            v.cast_out.buf.extend(keep.drain(..n).map(Kept::bare));
        } else {
            v.cast_out
                .buf
                .extend(run.msgs.iter().map(|m| Kept::bare(m.share())));
        }
        v.last_cast_at = cx.now();
        v.ensure_tick(&cfg, cx);
    }

    /// The next ones expected, with nothing missing: each is then the next
    /// in turn.
    #[inline]
    fn fast_up_run_ok(&self, src: Rank, seq: u64, _n: u64) -> bool {
        self.fast_up_ok(src, seq)
    }

    /// `fast_up` for each: kept (the stack hands the handles in order),
    /// trimmed as one at a time would.
    #[inline]
    fn fast_up_run(&mut self, src: Rank, _seq: u64, n: u64, cx: &mut Cx<'_>) {
        let cfg = self.cfg;
        let Some(v) = self.v.as_mut() else {
            return;
        };
        debug_assert_eq!(cx.run_keep().len() as u64, n);
        v.cast_in[src as usize].push_run(cx.run_keep(), cfg.window);
        v.ensure_tick(&cfg, cx);
    }

    fn dump(&self, out: &mut String) {
        use std::fmt::Write;
        let Some(v) = &self.v else {
            out.push_str("no view");
            return;
        };
        let o = &v.cast_out;
        let _ = write!(
            out,
            "casts out next={} base={} backlog={}; in:",
            o.next,
            o.base,
            o.backlog.len()
        );
        for (s, i) in v.cast_in.iter().enumerate() {
            let _ = write!(
                out,
                " [{s}: next={} base={} high={} held={}]",
                i.next,
                i.base,
                i.high,
                i.held()
            );
        }
        out.push_str("; sends in:");
        for (s, i) in v.send_in.iter().enumerate() {
            let _ = write!(
                out,
                " [{s}: next={} high={} ack_due={}]",
                i.next, i.high, i.ack_due
            );
        }
        let _ = write!(out, "; tick_armed={}", v.tick_armed);
    }

    fn buffered(&self) -> usize {
        let Some(v) = &self.v else { return 0 };
        let outs = std::iter::once(&v.cast_out).chain(v.send_out.iter());
        let out: usize = outs.map(|o| o.buf.len() + o.backlog.len()).sum();
        let inn: usize = v
            .cast_in
            .iter()
            .chain(v.send_in.iter())
            .map(|i| i.held())
            .sum();
        out + inn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nak_header_length_constant_matches_wire() {
        let h = NakHdr::Nak {
            stream: Stream::Cast,
            orig: 0,
            n: 1,
        };
        assert_eq!(h.len(), NAK_HDR_LEN);
    }
}
