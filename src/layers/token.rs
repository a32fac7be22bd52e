//! `token`: total order within a view by a rotating token (Horus TOTAL).
//!
//! A token carries the next global sequence number. Only its holder casts
//! data, numbering each cast; every member delivers casts in number order.
//! A member with casts to send and no token casts a REQUEST; the holder,
//! once it has sent what it had (at most a batch), casts TOKEN naming the
//! next requester after it in rank order and the next number, so the token
//! moves only among members that have something to send; an idle group
//! leaves it where it is. Each pass is numbered: passes from different
//! members travel on different FIFO channels, so a member can hear of an
//! older pass after a newer one, and ignores it. Everything travels as
//! ordinary casts through `gms`, virtually synchronous, so every survivor
//! holds the same casts at a view change. There each survivor delivers what it holds in
//! number order (a gap left by a holder that failed is skipped the same way
//! everywhere), and the token starts again at rank 0 with number 0.
//!
//! A cast waits here until this member holds the token; one still waiting
//! when the view changes goes out in the next view (the application's cast
//! returned at once; the message is sent when the token comes). So does a
//! cast numbered in one view that the layers below could only send in the
//! next (a batch larger than their window): data carries its view's tag,
//! members drop numbered casts of another view, and the sender, which
//! keeps each of its casts until it delivers it itself, numbers the ones
//! it did not deliver again in the next view.

use std::collections::{BTreeMap, VecDeque};

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "token",
    needs: &[Prop::Membership],
    needs_above: &[],
    provides: &[Prop::TotalOrder],
    bottom: false,
    about: "total order within a view by a token rotating among the members that send",
};

const TAG_DATA: u8 = 0;
const TAG_REQUEST: u8 = 1;
const TAG_TOKEN: u8 = 2;
/// Data header: tag, number, view tag.
const DATA_HDR: usize = 13;
/// Casts a holder sends before it passes the token to a requester.
const BATCH: usize = 512;
/// Casts waiting for the token before `ready()` says no.
const BACKLOG: usize = 1024;
/// Numbers further ahead of the next to deliver are refused.
const AHEAD_MAX: u64 = 1 << 20;

/// The `token` layer.
#[derive(Default)]
pub struct Token {
    v: Option<TokenView>,
    /// Casts waiting for the token (they outlive a view change).
    backlog: VecDeque<Msg>,
}

struct TokenView {
    me: Rank,
    n: usize,
    holder: Rank,
    /// Next number (meaningful at the holder).
    next: u64,
    /// Passes of the token in this view, as far as this member knows.
    /// Passes from different members travel on different FIFO channels,
    /// so an older pass can arrive after a newer one: it is ignored.
    passes: u64,
    /// Members that asked for the token.
    wants: Vec<bool>,
    /// A REQUEST of ours is out.
    asked: bool,
    /// Casts received, by number, not yet delivered.
    pending: BTreeMap<u64, (Rank, u64, Msg)>,
    /// Next number to deliver.
    deliver: u64,
    /// `BlockOk` went down: nothing more is sent in this view.
    stopped: bool,
    /// Tag of the view (numbers mean something only within it).
    tag: u32,
    /// This member's casts numbered in this view and not yet delivered
    /// here, by number (sent again in the next view if they never are).
    mine: BTreeMap<u64, Msg>,
}

impl TokenView {
    fn new(v: &View) -> TokenView {
        TokenView {
            me: v.rank,
            n: v.size(),
            holder: 0,
            next: 0,
            passes: 0,
            wants: vec![false; v.size()],
            asked: false,
            pending: BTreeMap::new(),
            deliver: 0,
            stopped: false,
            tag: v.id.tag(),
            mine: BTreeMap::new(),
        }
    }

    fn deliver(&mut self, cx: &mut Cx<'_>) {
        while let Some((src, seq, msg)) = self.pending.remove(&self.deliver) {
            if src == self.me {
                self.mine.remove(&self.deliver);
            }
            self.deliver += 1;
            cx.up(Up::Cast { src, seq, msg });
        }
    }

    /// The holder sends a batch, then passes the token to the next member
    /// that asked for it; a member without the token asks.
    fn work(&mut self, backlog: &mut VecDeque<Msg>, cx: &mut Cx<'_>) {
        if self.stopped {
            return;
        }
        if self.holder != self.me {
            if !backlog.is_empty() && !self.asked {
                if let Some(m) = cx.message(&[&[TAG_REQUEST]]) {
                    self.asked = true;
                    cx.stats().control += 1;
                    cx.down(Down::Cast(m));
                }
            }
            return;
        }
        // With nobody waiting, send everything; otherwise a batch, then
        // pass.
        let waiting = self
            .wants
            .iter()
            .enumerate()
            .any(|(r, w)| *w && r != self.me as usize);
        let limit = if waiting { BATCH } else { usize::MAX };
        let mut sent = 0;
        while sent < limit {
            let Some(mut m) = backlog.pop_front() else {
                break;
            };
            let keep = m.share();
            match m.push(DATA_HDR) {
                Ok(b) => {
                    b[0] = TAG_DATA;
                    b[1..9].copy_from_slice(&self.next.to_be_bytes());
                    b[9..13].copy_from_slice(&self.tag.to_be_bytes());
                    self.mine.insert(self.next, keep);
                    self.next += 1;
                    cx.down(Down::Cast(m));
                    sent += 1;
                }
                Err(_) => cx.dropped(DropReason::NoBuffer),
            }
        }
        // Pass to the next member after us that asked.
        let to = (1..self.n)
            .map(|k| ((self.me as usize + k) % self.n) as Rank)
            .find(|r| self.wants[*r as usize]);
        if let Some(to) = to {
            let mut body = [0u8; 18];
            body[..2].copy_from_slice(&to.to_be_bytes());
            body[2..10].copy_from_slice(&self.next.to_be_bytes());
            body[10..].copy_from_slice(&(self.passes + 1).to_be_bytes());
            if let Some(m) = cx.message(&[&[TAG_TOKEN], &body]) {
                cx.stats().control += 1;
                cx.down(Down::Cast(m));
                self.passes += 1;
                self.holder = to;
                self.wants[to as usize] = false;
                self.asked = false;
                // Still something to send: ask for it back.
                self.work(backlog, cx);
            }
        }
    }

    fn on_cast(
        &mut self,
        src: Rank,
        seq: u64,
        mut msg: Msg,
        backlog: &mut VecDeque<Msg>,
        cx: &mut Cx<'_>,
    ) {
        let b = msg.front();
        match b.first().copied() {
            Some(TAG_DATA) if b.len() >= DATA_HDR => {
                let g = u64::from_be_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]]);
                let tag = u32::from_be_bytes([b[9], b[10], b[11], b[12]]);
                if tag != self.tag {
                    // Numbered in another view, sent late: its sender
                    // numbers it again.
                    cx.dropped(DropReason::WrongView);
                    return;
                }
                let _ = msg.advance(DATA_HDR);
                if g < self.deliver || self.pending.contains_key(&g) {
                    cx.dropped(DropReason::Duplicate);
                    return;
                }
                if g - self.deliver > AHEAD_MAX {
                    // No honest holder numbers that far ahead.
                    cx.dropped(DropReason::OutOfWindow);
                    return;
                }
                self.pending.insert(g, (src, seq, msg));
                self.deliver(cx);
            }
            Some(TAG_REQUEST) => {
                if let Some(w) = self.wants.get_mut(src as usize) {
                    *w = true;
                }
                if self.holder == self.me {
                    self.work(backlog, cx);
                }
            }
            Some(TAG_TOKEN) if b.len() >= 19 => {
                let to = u16::from_be_bytes([b[1], b[2]]);
                let next = u64::from_be_bytes([b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10]]);
                let passes =
                    u64::from_be_bytes([b[11], b[12], b[13], b[14], b[15], b[16], b[17], b[18]]);
                if to as usize >= self.n {
                    cx.dropped(DropReason::BadRank);
                    return;
                }
                if src == self.me {
                    // Our own pass, looped back: done already.
                    return;
                }
                if passes <= self.passes {
                    // An older pass, overtaken by a newer one.
                    return;
                }
                self.passes = passes;
                self.holder = to;
                self.next = next;
                self.wants[to as usize] = false;
                if to == self.me {
                    self.asked = false;
                    self.work(backlog, cx);
                }
            }
            Some(TAG_DATA) | Some(TAG_TOKEN) => cx.dropped(DropReason::Truncated),
            Some(_) => cx.dropped(DropReason::UnknownTag),
            None => cx.dropped(DropReason::Truncated),
        }
    }

    /// Ends the view: what is held, in number order, gaps skipped. Own
    /// casts that never came back go to the front of `backlog`, in order.
    fn finish(&mut self, backlog: &mut VecDeque<Msg>, cx: &mut Cx<'_>) {
        for (g, (src, seq, msg)) in std::mem::take(&mut self.pending) {
            if src == self.me {
                self.mine.remove(&g);
            }
            cx.up(Up::Cast { src, seq, msg });
        }
        for (_, m) in std::mem::take(&mut self.mine).into_iter().rev() {
            backlog.push_front(m);
        }
    }
}

impl Token {
    /// A `token` layer.
    pub fn new() -> Token {
        Token::default()
    }
}

impl Layer for Token {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::Cast(m) => {
                self.backlog.push_back(m);
                if let Some(v) = self.v.as_mut() {
                    v.work(&mut self.backlog, cx);
                }
            }
            Down::BlockOk => {
                if let Some(v) = self.v.as_mut() {
                    // A holder sends what it has before the flush.
                    if v.holder == v.me {
                        while !self.backlog.is_empty() && !v.stopped {
                            let before = self.backlog.len();
                            v.work(&mut self.backlog, cx);
                            if self.backlog.len() == before || v.holder != v.me {
                                break;
                            }
                        }
                    }
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
                Some(v) => v.on_cast(src, seq, msg, &mut self.backlog, cx),
                None => cx.dropped(DropReason::NoView),
            },
            Up::View(view) => {
                if let Some(v) = self.v.as_mut() {
                    v.finish(&mut self.backlog, cx);
                }
                let mut v = TokenView::new(&view);
                cx.up(Up::View(view));
                v.work(&mut self.backlog, cx);
                self.v = Some(v);
            }
            Up::Exit => {
                if let Some(v) = self.v.as_mut() {
                    v.finish(&mut self.backlog, cx);
                }
                self.v = None;
                cx.up(Up::Exit);
            }
            other => cx.up(other),
        }
    }

    fn ready(&self) -> bool {
        self.backlog.len() < BACKLOG && self.v.as_ref().is_some_and(|v| !v.stopped)
    }

    fn buffered(&self) -> usize {
        self.backlog.len() + self.v.as_ref().map_or(0, |v| v.pending.len())
    }

    fn dump(&self, out: &mut String) {
        match &self.v {
            None => out.push_str("no view"),
            Some(v) => out.push_str(&format!(
                "holder={} next={} deliver={} pending={} wants={:?} asked={} backlog={} stopped={}",
                v.holder,
                v.next,
                v.deliver,
                v.pending.len(),
                v.wants,
                v.asked,
                self.backlog.len(),
                v.stopped
            )),
        }
    }
}
