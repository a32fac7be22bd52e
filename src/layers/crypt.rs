//! `crypt`: encrypts and authenticates every frame of a view under the
//! view's group key (AES-256-GCM), once per frame, with replay
//! protection.
//!
//! It sits right above `sign` and `com`, so everything a frame carries
//! above the framing header (sequence numbers, acknowledgements, the
//! flush's control messages, the payload) is sealed, and a retransmission
//! is a new frame with a new counter. A sealed frame is the sender's
//! 64-bit frame counter, the ciphertext, and a 16-byte tag; the nonce is
//! the sender's rank and counter, and the associated data binds group,
//! stack, view, sender and destination, so a frame cannot be moved to
//! another view, member or group. Each sender's counters go through a
//! 1024-wide replay window (checked before decryption, updated after).
//!
//! The group key arrives with the view (`gms` unseals it); a view
//! without one carries nothing (the layer fails closed). The bytes are
//! encrypted where they lie when this layer holds the only handle on
//! them; otherwise (a frame `nak` keeps for retransmission, a frame read
//! in place from another process's memory) they are copied once, and
//! the copy is encrypted or decrypted in place.

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::secure::{FrameAad, FrameKey, ReplayWindow, CTR_LEN, TAG_LEN};
use crate::wire::com::DST_ALL;

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "crypt",
    needs: &[Prop::Framing, Prop::Authenticated],
    needs_above: &[Prop::Membership],
    provides: &[Prop::Encrypted],
    bottom: false,
    about:
        "encrypts and authenticates every frame under the view's group key, with replay protection",
};

/// The `crypt` layer.
pub struct Crypt {
    group: u32,
    stack: u16,
    view: ViewState,
}

enum ViewState {
    /// No view installed yet.
    None,
    /// A view without a group key: nothing goes in or out.
    Keyless,
    Keyed(Box<Keyed>),
}

struct Keyed {
    key: FrameKey,
    tag: u32,
    me: Rank,
    /// Next frame counter of this member.
    next: u64,
    windows: Vec<ReplayWindow>,
}

impl Crypt {
    /// A `crypt` layer for group `group`, stack `stack`.
    pub fn new(group: u32, stack: u16) -> Crypt {
        Crypt {
            group,
            stack,
            view: ViewState::None,
        }
    }

    fn install(&mut self, v: &Arc<View>) {
        self.view = match &v.key {
            None => ViewState::Keyless,
            Some(k) => ViewState::Keyed(Box::new(Keyed {
                key: FrameKey::new(k),
                tag: v.id.tag(),
                me: v.rank,
                next: 0,
                windows: vec![ReplayWindow::default(); v.size()],
            })),
        };
    }

    /// The current view if it has a key (drops counted otherwise).
    fn keyed(&mut self, cx: &mut Cx<'_>) -> Option<&mut Keyed> {
        match &mut self.view {
            ViewState::None => {
                cx.dropped(DropReason::NoView);
                None
            }
            ViewState::Keyless => {
                cx.dropped(DropReason::NoKey);
                None
            }
            ViewState::Keyed(kv) => Some(kv),
        }
    }

    fn seal(&mut self, dst: u16, msg: Msg, cx: &mut Cx<'_>) -> Option<Msg> {
        let (group, stack) = (self.group, self.stack);
        let kv = self.keyed(cx)?;
        let aad = FrameAad {
            group,
            stack,
            view: kv.tag,
            src: kv.me,
            dst,
            ctr: kv.next,
        };
        let mut m = writable(msg, cx)?;
        let (h, len) = (m.offset() as usize, m.len());
        let Ok(slot) = m.slot_mut() else {
            cx.dropped(DropReason::NoBuffer);
            return None;
        };
        if h < CTR_LEN || h + len + TAG_LEN > slot.len() {
            cx.dropped(DropReason::TooLarge);
            return None;
        }
        slot[h - CTR_LEN..h].copy_from_slice(&aad.ctr.to_be_bytes());
        let tag = kv.key.seal(&aad, &mut slot[h..h + len])?;
        slot[h + len..h + len + TAG_LEN].copy_from_slice(&tag);
        m.set_window(h - CTR_LEN, h + len + TAG_LEN).ok()?;
        kv.next += 1;
        Some(m)
    }

    /// Opens a frame from `src`, sent to everyone or (`p2p`) to this member.
    fn open(&mut self, src: Rank, p2p: bool, msg: Msg, cx: &mut Cx<'_>) -> Option<Msg> {
        let (group, stack) = (self.group, self.stack);
        let kv = self.keyed(cx)?;
        let dst = if p2p { kv.me } else { DST_ALL };
        let f = msg.front();
        if msg.nsegs() != 1 || f.len() < CTR_LEN + TAG_LEN {
            cx.dropped(DropReason::Truncated);
            return None;
        }
        let mut c = [0u8; CTR_LEN];
        c.copy_from_slice(&f[..CTR_LEN]);
        let ctr = u64::from_be_bytes(c);
        let Some(window) = kv.windows.get_mut(src as usize) else {
            cx.dropped(DropReason::BadRank);
            return None;
        };
        if !window.fresh(ctr) {
            cx.dropped(DropReason::Replayed);
            return None;
        }
        let aad = FrameAad {
            group,
            stack,
            view: kv.tag,
            src,
            dst,
            ctr,
        };
        let mut m = writable(msg, cx)?;
        let (h, len) = (m.offset() as usize, m.len());
        let Ok(slot) = m.slot_mut() else {
            cx.dropped(DropReason::NoBuffer);
            return None;
        };
        let body = h + CTR_LEN..h + len - TAG_LEN;
        let (data, tag) = slot[..h + len].split_at_mut(body.end);
        if !kv.key.open(&aad, &mut data[body.start..], tag) {
            cx.dropped(DropReason::Forged);
            return None;
        }
        kv.windows[src as usize].accept(ctr);
        m.set_window(body.start, body.end).ok()?;
        Some(m)
    }
}

/// `msg` if this handle may write its bytes, else a private copy of it
/// (in its own pool when that has room, the control pool otherwise).
fn writable(msg: Msg, cx: &mut Cx<'_>) -> Option<Msg> {
    if msg.nsegs() != 1 {
        cx.dropped(DropReason::TooLarge);
        return None;
    }
    if msg.is_unique() && !msg.pool().is_foreign() {
        return Some(msg);
    }
    if !msg.pool().is_foreign() {
        if let Ok(c) = msg.copy_into(&msg.pool()) {
            return Some(c);
        }
    }
    let c = cx.copy(&msg);
    if c.is_none() {
        cx.dropped(DropReason::NoBuffer);
    }
    c
}

impl Layer for Crypt {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::Cast(m) => {
                if let Some(m) = self.seal(DST_ALL, m, cx) {
                    cx.down(Down::Cast(m));
                }
            }
            Down::CastRaw(m) => {
                if let Some(m) = self.seal(DST_ALL, m, cx) {
                    cx.down(Down::CastRaw(m));
                }
            }
            Down::Send(d, m) => {
                if let Some(m) = self.seal(d, m, cx) {
                    cx.down(Down::Send(d, m));
                }
            }
            Down::SendRaw(d, m) => {
                if let Some(m) = self.seal(d, m, cx) {
                    cx.down(Down::SendRaw(d, m));
                }
            }
            Down::View(v) => {
                self.install(&v);
                cx.down(Down::View(v));
            }
            other => cx.down(other),
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::CastRaw { src, msg } => {
                if let Some(msg) = self.open(src, false, msg, cx) {
                    cx.up(Up::CastRaw { src, msg });
                }
            }
            Up::SendRaw { src, msg } => {
                if let Some(msg) = self.open(src, true, msg, cx) {
                    cx.up(Up::SendRaw { src, msg });
                }
            }
            other => cx.up(other),
        }
    }

    fn dump(&self, out: &mut String) {
        match &self.view {
            ViewState::None => out.push_str("no view"),
            ViewState::Keyless => out.push_str("view without a key"),
            ViewState::Keyed(k) => out.push_str(&format!("view tag {:08x} sent={}", k.tag, k.next)),
        }
    }
}
