//! `frag`: fragmentation and reassembly.
//!
//! A message larger than one buffer is a chain of slots; `frag` sends each
//! slot as one frame (FIRST carries the total length, then MIDDLE..., then
//! LAST) and the receiver links the arriving frames back into a chain: no
//! payload byte is copied on either side. It relies on a reliable FIFO
//! stream below, so fragments of one message arrive in order and
//! unmixed; anything else is a protocol violation, counted and dropped.

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::wire::frag::FragHdr;

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "frag",
    needs: &[Prop::Reliable, Prop::Fifo],
    needs_above: &[],
    provides: &[Prop::Large],
    bottom: false,
    about: "fragmentation and zero-copy reassembly of messages larger than a buffer",
};

/// Default largest message accepted: 64 MiB.
pub const MAX_MSG_DEFAULT: u64 = 64 << 20;

/// The `frag` layer.
pub struct Frag {
    max_msg: u64,
    me: Rank,
    /// Reassembly per sender: casts, then point-to-point.
    casts: Vec<Asm>,
    sends: Vec<Asm>,
}

#[derive(Default)]
enum Asm {
    #[default]
    Idle,
    Building {
        chain: Msg,
        total: u64,
    },
    /// A refused message: drop its fragments until its LAST.
    Skipping,
}

impl Frag {
    /// A `frag` layer accepting messages up to `max_msg` bytes.
    pub fn new(max_msg: u64) -> Frag {
        Frag {
            max_msg,
            me: 0,
            casts: Vec::new(),
            sends: Vec::new(),
        }
    }

    fn install(&mut self, v: &Arc<View>) {
        self.me = v.rank;
        self.casts = (0..v.size()).map(|_| Asm::Idle).collect();
        self.sends = (0..v.size()).map(|_| Asm::Idle).collect();
    }

    fn send_down(&mut self, m: Msg, cx: &mut Cx<'_>, mk: impl Fn(Msg) -> Down) {
        if m.nsegs() == 1 {
            if let Some(m) = with_hdr(m, FragHdr::Whole, cx) {
                cx.down(mk(m));
            }
            return;
        }
        let total = m.len() as u64;
        let last = m.nsegs() - 1;
        for (i, seg) in m.split().enumerate() {
            let h = match i {
                0 => FragHdr::First { total },
                i if i == last => FragHdr::Last,
                _ => FragHdr::Middle,
            };
            if let Some(seg) = with_hdr(seg, h, cx) {
                cx.down(mk(seg));
            }
        }
    }

    /// Handles one arriving message of the sequenced stream `p2p` from
    /// `src`; returns a whole message when one is complete.
    fn arrive(&mut self, p2p: bool, src: Rank, mut m: Msg, cx: &mut Cx<'_>) -> Option<Msg> {
        let (h, len) = match FragHdr::parse(m.front()) {
            Ok(x) => x,
            Err(e) => {
                cx.dropped(e.drop_reason());
                return None;
            }
        };
        let _ = m.advance(len);
        let table = if p2p {
            &mut self.sends
        } else {
            &mut self.casts
        };
        let Some(asm) = table.get_mut(src as usize) else {
            cx.dropped(DropReason::BadRank);
            return None;
        };
        let state = match (h, std::mem::take(asm)) {
            // A new message ends any skipping (its LAST may have been lost).
            (FragHdr::Whole | FragHdr::First { .. }, Asm::Skipping) => Asm::Idle,
            (_, s) => s,
        };
        match (h, state) {
            (FragHdr::Whole, Asm::Idle) => Some(m),
            (FragHdr::First { total }, Asm::Idle) => {
                if total > self.max_msg {
                    cx.dropped(DropReason::TooLarge);
                    *asm = Asm::Skipping;
                } else if m.len() as u64 > total {
                    cx.dropped(DropReason::BadFragment);
                    *asm = Asm::Skipping;
                } else {
                    *asm = Asm::Building { chain: m, total };
                }
                None
            }
            (FragHdr::Middle | FragHdr::Last, Asm::Building { mut chain, total }) => {
                if chain.len() as u64 + m.len() as u64 > total {
                    cx.dropped(DropReason::BadFragment);
                    *asm = if h == FragHdr::Last {
                        Asm::Idle
                    } else {
                        Asm::Skipping
                    };
                    return None;
                }
                if chain.link(m).is_err() {
                    cx.dropped(DropReason::NoBuffer);
                    *asm = if h == FragHdr::Last {
                        Asm::Idle
                    } else {
                        Asm::Skipping
                    };
                    return None;
                }
                if h == FragHdr::Middle {
                    *asm = Asm::Building { chain, total };
                    return None;
                }
                if chain.len() as u64 != total {
                    cx.dropped(DropReason::BadFragment);
                    return None;
                }
                Some(chain)
            }
            (FragHdr::Middle, Asm::Skipping) => {
                *asm = Asm::Skipping;
                None
            }
            (FragHdr::Last, Asm::Skipping) => None,
            (_, _) => {
                // Out of sequence: whatever was being built is corrupt.
                cx.dropped(DropReason::BadFragment);
                None
            }
        }
    }
}

fn with_hdr(mut m: Msg, h: FragHdr, cx: &mut Cx<'_>) -> Option<Msg> {
    match m.push(h.len()) {
        Ok(b) => {
            h.emit(b);
            Some(m)
        }
        Err(_) => {
            cx.dropped(DropReason::NoBuffer);
            None
        }
    }
}

/// Pops the WHOLE header of an unsequenced message.
fn raw_up(mut m: Msg, cx: &mut Cx<'_>) -> Option<Msg> {
    match FragHdr::parse(m.front()) {
        Ok((FragHdr::Whole, len)) => {
            let _ = m.advance(len);
            Some(m)
        }
        Ok(_) => {
            cx.dropped(DropReason::BadFragment);
            None
        }
        Err(e) => {
            cx.dropped(e.drop_reason());
            None
        }
    }
}

impl Layer for Frag {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::Cast(m) => self.send_down(m, cx, Down::Cast),
            Down::Send(d, m) => self.send_down(m, cx, |m| Down::Send(d, m)),
            Down::CastRaw(m) | Down::SendRaw(_, m) if m.nsegs() != 1 => {
                // Unsequenced messages cannot be fragmented.
                cx.dropped(DropReason::TooLarge);
            }
            Down::CastRaw(m) => {
                if let Some(m) = with_hdr(m, FragHdr::Whole, cx) {
                    cx.down(Down::CastRaw(m));
                }
            }
            Down::SendRaw(d, m) => {
                if let Some(m) = with_hdr(m, FragHdr::Whole, cx) {
                    cx.down(Down::SendRaw(d, m));
                }
            }
            Down::View(v) => {
                self.install(&v);
                cx.down(Down::View(v));
            }
            Down::Timer(_) => {}
            other => cx.down(other),
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { src, seq, msg } => match self.arrive(false, src, msg, cx) {
                Some(msg) => cx.up(Up::Cast { src, seq, msg }),
                None => cx.up(Up::Progress { src, next: seq + 1 }),
            },
            Up::Send { src, seq, msg } => {
                if let Some(msg) = self.arrive(true, src, msg, cx) {
                    cx.up(Up::Send { src, seq, msg });
                }
            }
            Up::CastRaw { src, msg } => {
                if let Some(msg) = raw_up(msg, cx) {
                    cx.up(Up::CastRaw { src, msg });
                }
            }
            Up::SendRaw { src, msg } => {
                if let Some(msg) = raw_up(msg, cx) {
                    cx.up(Up::SendRaw { src, msg });
                }
            }
            Up::Lost { src, from, to } => {
                // A lost fragment ruins the message it belonged to.
                if let Some(a) = self.casts.get_mut(src as usize) {
                    if matches!(a, Asm::Building { .. }) {
                        *a = Asm::Skipping;
                    }
                }
                cx.up(Up::Lost { src, from, to });
            }
            other => cx.up(other),
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        // FragHdr::Whole.
        Some(&[0])
    }

    /// One buffer, and its own delivery comes back whole.
    #[inline]
    fn fast_down_ok(&self, msg: &Msg) -> bool {
        msg.nsegs() == 1 && self.fast_up_ok(self.me, 0)
    }

    #[inline]
    fn fast_up_ok(&self, src: Rank, _seq: u64) -> bool {
        matches!(
            self.casts.get(src as usize),
            Some(Asm::Idle | Asm::Skipping)
        )
    }

    /// A WHOLE message: it ends any skipping.
    #[inline]
    fn fast_up(&mut self, src: Rank, _seq: u64, _msg: &mut Option<Msg>, _cx: &mut Cx<'_>) {
        if let Some(a) = self.casts.get_mut(src as usize) {
            *a = Asm::Idle;
        }
    }

    /// Ending a skip changes nothing the delivery depends on.
    #[inline]
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        if !self.fast_up_ok(self.me, 0) {
            return 0;
        }
        msgs.iter().take_while(|m| m.nsegs() == 1).count()
    }

    /// WHOLE messages: the first ends any skipping.
    #[inline]
    fn fast_up_run_ok(&self, src: Rank, seq: u64, _n: u64) -> bool {
        self.fast_up_ok(src, seq)
    }

    #[inline]
    fn fast_up_run(&mut self, src: Rank, seq: u64, _n: u64, cx: &mut Cx<'_>) {
        self.fast_up(src, seq, &mut None, cx);
    }

    fn dump(&self, out: &mut String) {
        for (s, a) in self.casts.iter().enumerate() {
            let st = match a {
                Asm::Idle => continue,
                Asm::Building { chain, total } => format!("building {}/{}", chain.len(), total),
                Asm::Skipping => "skipping".to_string(),
            };
            out.push_str(&format!(" [cast {s}: {st}]"));
        }
    }

    fn buffered(&self) -> usize {
        self.casts
            .iter()
            .chain(self.sends.iter())
            .filter(|a| matches!(a, Asm::Building { .. }))
            .count()
    }
}
