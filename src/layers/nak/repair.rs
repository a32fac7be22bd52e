//! `nak`'s repairs: the periodic tick (STATUS for tail loss, NAKs for
//! gaps, cumulative ACKs) and the answers to NAKs (retransmissions, or
//! LOST for what was collected already).

use crate::event::{Down, Rank};
use crate::layer::{Cx, DropReason};
use crate::wire::nak::{emit_ranges, ranges_len, NakHdr, RangeList, Stream};

use super::{push_hdr, NakConfig, NakView, NAK_HDR_LEN};

fn nak(cx: &mut Cx<'_>, stream: Stream, to: Rank, orig: Rank, gaps: &RangeList) {
    // As many ranges as one control buffer holds; the rest go next tick.
    let mut gaps = *gaps;
    gaps.truncate(cx.ctl_capacity().saturating_sub(NAK_HDR_LEN) / ranges_len(1));
    if gaps.is_empty() {
        return;
    }
    let h = NakHdr::Nak {
        stream,
        orig,
        n: gaps.len() as u8,
    };
    cx.stats().naks += 1;
    control(cx, Some(to), h, Some(&gaps));
}

/// Sends a control message of this layer (raw, unsequenced).
fn control(cx: &mut Cx<'_>, to: Option<Rank>, h: NakHdr, ranges: Option<&RangeList>) {
    let Some(mut m) = cx.alloc() else {
        return;
    };
    if let Some(r) = ranges {
        match m.reserve(ranges_len(r.len())) {
            Ok(b) => emit_ranges(r, b),
            Err(_) => return,
        }
    }
    if !push_hdr(&mut m, h, cx) {
        return;
    }
    cx.stats().control += 1;
    cx.down(match to {
        Some(d) => Down::SendRaw(d, m),
        None => Down::CastRaw(m),
    });
}

impl NakView {
    pub(super) fn tick(&mut self, cfg: &NakConfig, cx: &mut Cx<'_>) {
        let now = cx.now();
        // Tail loss: tell receivers how far our casts go if we have been
        // quiet for a tick and something is still unstable.
        if self.cast_out.unacked() && now.since(self.last_cast_at) >= cfg.tick_ns {
            let next = self.cast_out.next;
            control(
                cx,
                None,
                NakHdr::Status {
                    stream: Stream::Cast,
                    next,
                },
                None,
            );
        }
        for d in 0..self.n {
            let out = &self.send_out[d];
            if out.unacked() {
                let h = NakHdr::Status {
                    stream: Stream::Send,
                    next: out.next,
                };
                control(cx, Some(d as Rank), h, None);
            }
        }
        for src in 0..self.n {
            if src == self.me as usize {
                continue;
            }
            let r = src as Rank;
            if self.cast_in[src].missing() {
                let gaps = self.cast_in[src].gaps();
                let to = self.cast_in[src].helper.unwrap_or(r);
                nak(cx, Stream::Cast, to, r, &gaps);
            }
            let si = &mut self.send_in[src];
            let ack = si.ack_due.then_some(si.next);
            si.ack_due = false;
            if si.missing() {
                let gaps = si.gaps();
                nak(cx, Stream::Send, r, r, &gaps);
            }
            if let Some(next) = ack {
                control(cx, Some(r), NakHdr::Ack { next }, None);
            }
        }
        if self.needs_tick() {
            self.ensure_tick(cfg, cx);
        }
    }

    /// Answers a NAK from `from` for messages of `orig` on `stream`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn retransmit(
        &mut self,
        above: &[u8],
        cfg: &NakConfig,
        cx: &mut Cx<'_>,
        from: Rank,
        stream: Stream,
        orig: Rank,
        ranges: &RangeList,
    ) {
        let mut budget = cfg.retrans_max;
        for &(lo, hi) in ranges.as_slice() {
            let mut seq = lo;
            while seq < hi && budget > 0 {
                let base = match stream {
                    Stream::Cast if orig == self.me => Some(self.cast_out.base),
                    Stream::Cast => None,
                    Stream::Send => Some(self.send_out[from as usize].base),
                };
                if let Some(base) = base.filter(|b| seq < *b) {
                    // Collected already: it will never come back.
                    let to = base.min(hi);
                    let h = NakHdr::Lost {
                        stream,
                        orig,
                        from: seq,
                        to,
                    };
                    control(cx, Some(from), h, None);
                    seq = to;
                    budget -= 1;
                    continue;
                }
                let held = match stream {
                    Stream::Cast if orig == self.me => self.cast_out.get(seq),
                    Stream::Cast => self.cast_in[orig as usize].get(seq),
                    Stream::Send => self.send_out[from as usize].get(seq),
                };
                let Some(held) = held else {
                    // Not ours to give (not yet sent, or not held here).
                    break;
                };
                let Some(mut copy) = cx.copy(&held.msg) else {
                    return;
                };
                if held.bare {
                    // The layers above put these on it in the full path.
                    match copy.push(above.len()) {
                        Ok(b) => b.copy_from_slice(above),
                        Err(_) => {
                            cx.dropped(DropReason::NoBuffer);
                            return;
                        }
                    }
                }
                let h = match stream {
                    Stream::Cast => NakHdr::Retrans { orig, seq },
                    Stream::Send => NakHdr::Send { seq },
                };
                if push_hdr(&mut copy, h, cx) {
                    cx.stats().retransmits += 1;
                    cx.down(Down::SendRaw(from, copy));
                }
                seq += 1;
                budget -= 1;
            }
        }
    }
}
