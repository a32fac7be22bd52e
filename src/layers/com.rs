//! `com`: the bottom of every stack. Frames messages (magic, version,
//! group, stack, view, sender, destination), addresses them, and checks
//! every arriving frame before anything above sees it.

use std::sync::Arc;

use crate::event::{Addr, Dest, Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::wire::com::{ComRepr, DST_ALL, LEN};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "com",
    needs: &[],
    needs_above: &[],
    provides: &[Prop::Framing],
    bottom: true,
    about: "framing and addressing; checks every arriving frame",
};

/// The `com` layer.
pub struct Com {
    group: u32,
    stack: u16,
    view: Option<ComView>,
}

#[derive(Clone, Copy)]
struct ComView {
    me: Rank,
    n: u16,
    tag: u32,
}

impl Com {
    /// A `com` layer for group `group` running the stack with id `stack`.
    pub fn new(group: u32, stack: u16) -> Com {
        Com {
            group,
            stack,
            view: None,
        }
    }

    fn install(&mut self, v: &Arc<View>) {
        self.view = Some(ComView {
            me: v.rank,
            n: v.size() as u16,
            tag: v.id.tag(),
        });
    }

    fn frame(&self, cx: &mut Cx<'_>, dst: Dest, mut msg: tutti_drivers::Msg) {
        let Some(v) = self.view else {
            cx.dropped(DropReason::NoView);
            return;
        };
        let dst_rank = match dst {
            Dest::All => DST_ALL,
            Dest::Rank(r) if r < v.n && r != v.me => r,
            Dest::Rank(_) => {
                cx.dropped(DropReason::BadRank);
                return;
            }
            Dest::Addr(a) => {
                self.control(cx, a, msg);
                return;
            }
        };
        let repr = ComRepr {
            ctl: false,
            p2p: dst_rank != DST_ALL,
            group: self.group,
            stack: self.stack,
            src: v.me,
            dst: dst_rank,
            view: v.tag,
        };
        match msg.push(LEN) {
            Ok(h) => repr.emit(h),
            Err(_) => {
                cx.dropped(DropReason::NoBuffer);
                return;
            }
        }
        cx.transmit(dst, msg);
    }

    /// Frames a membership control message to a transport address (no
    /// view needed: joiners have none).
    fn control(&self, cx: &mut Cx<'_>, to: Addr, mut msg: tutti_drivers::Msg) {
        match msg.push(LEN) {
            Ok(h) => ComRepr::control(self.group, self.stack).emit(h),
            Err(_) => {
                cx.dropped(DropReason::NoBuffer);
                return;
            }
        }
        cx.transmit(Dest::Addr(to), msg);
    }
}

impl Layer for Com {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::Cast(m) | Down::CastRaw(m) => self.frame(cx, Dest::All, m),
            Down::Send(d, m) | Down::SendRaw(d, m) => self.frame(cx, Dest::Rank(d), m),
            Down::View(v) => {
                self.install(&v);
                cx.installed(v);
            }
            Down::Ctl(to, m) => self.control(cx, to, m),
            // Bottom of the stack: nothing below to pass other events to.
            _ => {}
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let Up::Recv(mut frame) = ev else {
            cx.up(ev);
            return;
        };
        cx.stats().frames_in += 1;
        let repr = match ComRepr::parse(frame.front()) {
            Ok(r) => r,
            Err(e) => {
                cx.dropped(e.drop_reason());
                return;
            }
        };
        if repr.ctl {
            let why = if repr.group != self.group {
                Some(DropReason::WrongGroup)
            } else if repr.stack != self.stack {
                Some(DropReason::WrongStack)
            } else {
                None
            };
            match why {
                Some(r) => cx.dropped(r),
                None if frame.advance(LEN).is_err() => cx.dropped(DropReason::Truncated),
                None => cx.up(Up::Ctl(frame, None)),
            }
            return;
        }
        let Some(v) = self.view else {
            cx.dropped(DropReason::NoView);
            return;
        };
        let why = if repr.group != self.group {
            Some(DropReason::WrongGroup)
        } else if repr.stack != self.stack {
            Some(DropReason::WrongStack)
        } else if repr.view != v.tag {
            Some(DropReason::WrongView)
        } else if repr.src >= v.n || (repr.p2p && repr.dst >= v.n) {
            Some(DropReason::BadRank)
        } else if repr.src == v.me {
            Some(DropReason::OwnFrame)
        } else if repr.p2p && repr.dst != v.me {
            Some(DropReason::NotForMe)
        } else {
            None
        };
        if let Some(r) = why {
            cx.dropped(r);
            return;
        }
        // Cannot fail: parse checked the length.
        if frame.advance(LEN).is_err() {
            cx.dropped(DropReason::Truncated);
            return;
        }
        let src = repr.src;
        cx.up(if repr.p2p {
            Up::SendRaw { src, msg: frame }
        } else {
            Up::CastRaw { src, msg: frame }
        });
    }
}
