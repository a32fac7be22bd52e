//! `com`: the bottom of every stack. Frames messages (magic, version,
//! group, stack, view, sender, destination), addresses them, and checks
//! every arriving frame before anything above sees it.
//!
//! Header compression: in a stack whose layers all have a common case,
//! a data cast (or its retransmission) whose layer headers are the common
//! case goes out in the compact format of [`crate::wire::fast`]: 8 bytes
//! in place of `com`'s 20 and the layers' headers. `com` recognizes such
//! casts on the full path too, so the wire is the same whichever path made
//! a frame. On the fast path it also packs the casts of a batch into one
//! frame. An arriving compact frame that the fast path cannot take is
//! expanded here back into the layers' headers (a copy, off the common
//! case).

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{Addr, Dest, Down, Rank, Up, View};
use crate::layer::{Cx, DropReason, Env, FastCast, FastRun, Layer, LayerInfo, Prop};
use crate::wire::com::{ComRepr, DST_ALL, LEN};
use crate::wire::fast::{self, Compact, Entries};
use crate::wire::nak::NakHdr;

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
    /// The common-case tags of the layers above `nak` (set at build when
    /// every layer has a common case): the compact format's template.
    tmpl: Option<Box<[u8]>>,
    /// Payload bytes of a control buffer (where packed frames are built
    /// and compact frames expanded).
    ctl_cap: usize,
    /// Casts of the batch under way, not yet framed.
    pack: Option<Pack>,
}

struct ComView {
    me: Rank,
    n: u16,
    tag: u32,
    /// Cookie of each rank's compact frames in this view.
    cookies: Vec<u32>,
    /// (cookie, rank), sorted by cookie; empty when two ranks' cookies
    /// collide (the view then uses the full format only).
    by_cookie: Vec<(u32, Rank)>,
}

/// Casts gathered for one packed frame.
struct Pack {
    seq0: u64,
    n: u64,
    /// Bytes the frame will have.
    len: usize,
    /// The first cast, framed alone if nothing joins it.
    first: Option<Msg>,
    /// The packed frame's entries, once a second cast joined.
    buf: Option<Msg>,
    /// `buf` is the frame the casts were written in (see `in_place`).
    in_place: bool,
}

impl Com {
    /// A `com` layer for group `group` running the stack with id `stack`.
    pub fn new(group: u32, stack: u16) -> Com {
        Com {
            group,
            stack,
            view: None,
            tmpl: None,
            ctl_cap: 0,
            pack: None,
        }
    }

    fn install(&mut self, v: &Arc<View>) {
        let tag = v.id.tag();
        let cookies: Vec<u32> = (0..v.size())
            .map(|r| fast::cookie(self.group, self.stack, tag, r as Rank))
            .collect();
        let mut by_cookie: Vec<(u32, Rank)> = cookies
            .iter()
            .enumerate()
            .map(|(r, c)| (*c, r as Rank))
            .collect();
        by_cookie.sort_unstable();
        if by_cookie.windows(2).any(|w| w[0].0 == w[1].0) {
            by_cookie.clear();
        }
        self.view = Some(ComView {
            me: v.rank,
            n: v.size() as u16,
            tag,
            cookies,
            by_cookie,
        });
    }

    /// The compact header for `msg` (a `nak` CAST or RETRANS followed by
    /// the template), and the bytes it replaces; `None` when `msg` must go
    /// in the full format.
    fn compressible(&self, v: &ComView, dst: &Dest, msg: &Msg) -> Option<(Compact, usize)> {
        let tmpl = self.tmpl.as_deref()?;
        if v.by_cookie.is_empty() {
            return None;
        }
        let b = msg.front();
        let (h, hl) = NakHdr::parse(b).ok()?;
        let (orig, seq) = match (h, dst) {
            (NakHdr::Cast { seq }, Dest::All) => (v.me, seq),
            (NakHdr::Retrans { orig, seq }, Dest::Rank(_)) if orig < v.n => (orig, seq),
            _ => return None,
        };
        let cut = hl + tmpl.len();
        if seq >= fast::SEQ_LIMIT || b.get(hl..cut)? != tmpl || msg.nsegs() != 1 {
            return None;
        }
        // Whoever expands it must have room for the full headers.
        if msg.len() - cut + hl + tmpl.len() > self.ctl_cap {
            return None;
        }
        let c = Compact {
            cookie: v.cookies[orig as usize],
            seq,
            packed: false,
        };
        Some((c, cut))
    }

    fn frame(&self, cx: &mut Cx<'_>, dst: Dest, mut msg: tutti_drivers::Msg) {
        let Some(v) = &self.view else {
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
        if let Some((c, cut)) = self.compressible(v, &dst, &msg) {
            let _ = msg.advance(cut);
            match msg.push(fast::LEN) {
                Ok(h) => c.emit(h),
                Err(_) => {
                    cx.dropped(DropReason::NoBuffer);
                    return;
                }
            }
            cx.transmit(dst, msg);
            return;
        }
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

    /// Puts own compact header on `frame`. False without a view, or
    /// without headroom (counted): the frame cannot go; `nak` keeps the
    /// casts, and a STATUS makes the receivers ask for them.
    #[inline]
    fn compact_header(&self, cx: &mut Cx<'_>, seq: u64, packed: bool, frame: &mut Msg) -> bool {
        let Some(v) = &self.view else {
            return false;
        };
        let c = Compact {
            cookie: v.cookies[v.me as usize],
            seq,
            packed,
        };
        match frame.push(fast::LEN) {
            Ok(h) => {
                c.emit(h);
                true
            }
            Err(_) => {
                cx.dropped(DropReason::NoBuffer);
                false
            }
        }
    }

    /// Frames `frame` in the compact format and multicasts it.
    fn send_compact(&self, cx: &mut Cx<'_>, seq: u64, packed: bool, mut frame: Msg) {
        if self.compact_header(cx, seq, packed, &mut frame) {
            if packed {
                // Written for good: its lines go to the shared cache (see
                // `Msg::demote`), where the receivers read them without
                // snooping this core while it packs the next frame. Not a
                // lone cast's frame, the application's own buffer: slots
                // that come back and are written again at once lose by it
                // (the raw driver's frames, demoted, went at half speed).
                frame.demote();
            }
            cx.transmit(Dest::All, frame);
        }
    }

    /// Adds cast `seq` to the batch's packed frame (copying its payload
    /// once), framing what was gathered when it does not follow on. The
    /// message stays with the caller (it is the sender's own delivery);
    /// the first of a pack is kept by reference, to go alone if nothing
    /// joins it.
    fn pack(&mut self, cx: &mut Cx<'_>, seq: u64, msg: &Msg, room: usize) {
        let add = fast::ENTRY_LEN + msg.len();
        if let Some(p) = &mut self.pack {
            if seq == p.seq0 + p.n && p.len + add <= self.ctl_cap {
                if p.buf.is_none() {
                    let pair = p
                        .first
                        .as_ref()
                        .and_then(|f| in_place(f, std::slice::from_ref(msg), self.ctl_cap));
                    if let Some((frame, 2, len)) = pair {
                        p.first = None;
                        p.buf = Some(frame);
                        p.in_place = true;
                        p.n += 1;
                        p.len = len;
                        return;
                    }
                }
                if p.buf.is_none() {
                    if let Some(mut b) = cx.alloc() {
                        // The frame's lines are likely in a receiver's
                        // cache: fetch them all now, not one per cast.
                        // (`room`: what the caller expects from here on,
                        // the first cast's entry too.)
                        b.prefetch_room(room.saturating_add(p.len).min(self.ctl_cap));
                        if let Some(first) = p.first.take() {
                            let ok = entry(&mut b, &first);
                            p.first = if ok { None } else { Some(first) };
                        }
                        if p.first.is_none() {
                            p.buf = Some(b);
                        }
                    }
                }
                if let Some(b) = &mut p.buf {
                    if entry(b, msg) {
                        p.n += 1;
                        p.len += add;
                        return;
                    }
                }
            }
            self.flush_pack(cx);
        }
        self.pack = Some(Pack {
            seq0: seq,
            n: 1,
            len: fast::LEN + add,
            first: Some(msg.share()),
            buf: None,
            in_place: false,
        });
    }

    /// `pack` for each cast of a run (`seq0` on): where the frame being
    /// packed has its buffer, as many casts as fit join it with one
    /// reservation; the frames are those `pack` makes one at a time.
    fn pack_run(&mut self, cx: &mut Cx<'_>, seq0: u64, msgs: &[Msg]) {
        let mut i = 0;
        while i < msgs.len() {
            if let Some((frame, n, len)) = in_place(&msgs[i], &msgs[i + 1..], self.ctl_cap) {
                // Written as a packed frame's entries already (a
                // `Packer`'s): that frame is this one, as it lies.
                self.flush_pack(cx);
                self.pack = Some(Pack {
                    seq0: seq0 + i as u64,
                    n: n as u64,
                    len,
                    first: None,
                    buf: Some(frame),
                    in_place: true,
                });
                i += n;
                continue;
            }
            if let Some(p) = &mut self.pack {
                if let Some(b) = p.buf.as_mut().filter(|_| seq0 + i as u64 == p.seq0 + p.n) {
                    let mut len = p.len;
                    let mut j = i;
                    for m in &msgs[i..] {
                        let add = fast::ENTRY_LEN + m.len();
                        if !packable(m) || len + add > self.ctl_cap {
                            break;
                        }
                        len += add;
                        j += 1;
                    }
                    if j > i && entries(b, &msgs[i..j], len - p.len) {
                        p.n += (j - i) as u64;
                        p.len = len;
                        i = j;
                        continue;
                    }
                }
            }
            // The frame's room that the rest of the run will likely take.
            let room = (msgs.len() - i) * (fast::ENTRY_LEN + msgs[i].len());
            self.pack(cx, seq0 + i as u64, &msgs[i], room);
            i += 1;
        }
    }

    /// The largest payload a compact frame carries, when the view has
    /// cookies (the fast path's condition), else `None`.
    #[inline]
    fn fast_max(&self) -> Option<usize> {
        match (&self.view, &self.tmpl) {
            (Some(v), Some(t)) if !v.by_cookie.is_empty() => self.ctl_cap.checked_sub(t.len() + 9),
            _ => None,
        }
    }

    fn flush_pack(&mut self, cx: &mut Cx<'_>) {
        let Some(p) = self.pack.take() else {
            return;
        };
        if let Some(first) = p.first {
            self.send_compact(cx, p.seq0, false, first);
            return;
        }
        if let Some(b) = p.buf {
            cx.stats().packed_frames += 1;
            cx.stats().packed_casts += p.n;
            if p.in_place {
                cx.stats().in_place += p.n;
            }
            self.send_compact(cx, p.seq0, true, b);
        }
    }

    /// Reads a compact frame's header against the view.
    #[inline]
    fn parse_compact(&self, frame: &[u8]) -> Result<(Rank, Compact), DropReason> {
        let Some(v) = &self.view else {
            return Err(DropReason::NoView);
        };
        let c = Compact::parse(frame).map_err(|e| e.drop_reason())?;
        let Ok(i) = v.by_cookie.binary_search_by_key(&c.cookie, |e| e.0) else {
            return Err(DropReason::WrongView);
        };
        let src = v.by_cookie[i].1;
        if src == v.me {
            return Err(DropReason::OwnFrame);
        }
        Ok((src, c))
    }

    /// Full path: a compact frame goes up as the frames it stands for.
    fn expand_up(&self, cx: &mut Cx<'_>, frame: Msg) {
        let Some(tmpl) = self.tmpl.as_deref() else {
            cx.dropped(DropReason::BadMagic);
            return;
        };
        let (src, c) = match self.parse_compact(frame.front()) {
            Ok(x) => x,
            Err(r) => {
                cx.dropped(r);
                return;
            }
        };
        let body = &frame.front()[fast::LEN..];
        cx.stats().fast_missed += 1;
        if !c.packed {
            if let Some(m) = expand(cx.env(), tmpl, c.seq, body) {
                cx.up(Up::CastRaw { src, msg: m });
            }
            return;
        }
        for (i, e) in Entries::new(body).enumerate() {
            let Ok((off, len)) = e else { break };
            if let Some(m) = expand(cx.env(), tmpl, c.seq + i as u64, &body[off..off + len]) {
                cx.up(Up::CastRaw { src, msg: m });
            }
        }
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

/// The room of a packed frame prefetched when casts are packed one at a
/// time, not knowing how many follow: what a 2 KB slot held.
const ONE_AT_A_TIME_ROOM: usize = 1880;

/// Whether `m` can be a packed-frame entry: one buffer, a length that
/// fits the entry's 16 bits.
#[inline]
fn packable(m: &Msg) -> bool {
    m.nsegs() == 1 && m.len() <= u16::MAX as usize
}

/// `first` and the front of `rest` when at least two of them are windows
/// on one buffer laid out as a packed frame's entries (each behind its
/// length, back to back, from the buffer's claim mark on, as a `Packer`
/// writes them) and fit a frame of `cap` bytes: a handle on those entries,
/// how many casts they are and the frame's length with its header. The
/// lengths between the windows are read back, not trusted.
#[inline]
fn in_place(first: &Msg, rest: &[Msg], cap: usize) -> Option<(Msg, usize, usize)> {
    if !follows_entry(first, rest.first()?) || first.headroom() < fast::ENTRY_LEN + fast::LEN {
        return None;
    }
    // Off the claim mark (the rest of a frame cut before), nothing more
    // is looked at.
    let mut frame = first.span(fast::ENTRY_LEN)?;
    let mut len = fast::LEN + frame.len();
    let (mut n, mut prev) = (0, first);
    for m in rest {
        let add = fast::ENTRY_LEN + m.len();
        if !follows_entry(prev, m) || len + add > cap {
            break;
        }
        len += add;
        n += 1;
        prev = m;
    }
    let own_len =
        matches!(Entries::new(frame.front()).next(), Some(Ok((_, l))) if l == first.len());
    let grown = n > 0 && len <= cap && own_len && grow_over(&mut frame, &rest[..n], &rest[n - 1]);
    grown.then_some((frame, n + 1, len))
}

/// Whether `m` is a packed-frame entry in the same buffer right behind
/// `prev` (one buffer each, a length between them).
#[inline]
fn follows_entry(prev: &Msg, m: &Msg) -> bool {
    prev.precedes(m, fast::ENTRY_LEN) && m.len() <= u16::MAX as usize
}

/// Appends one packed-frame entry; false when it does not fit.
fn entry(b: &mut Msg, m: &Msg) -> bool {
    packable(m) && entries(b, std::slice::from_ref(m), fast::ENTRY_LEN + m.len())
}

/// Entries for `msgs` (each `packable`; `total` bytes with their
/// lengths) at the end of `b`, reserved at once; or, where `b` is a frame
/// going out as it was written (see `in_place`), taken as they lie
/// when they are its next entries.
fn entries(b: &mut Msg, msgs: &[Msg], total: usize) -> bool {
    let Ok(mut out) = b.reserve(total) else {
        return entries_in_place(b, msgs);
    };
    for m in msgs {
        let body = m.front();
        let (l, rest) = std::mem::take(&mut out).split_at_mut(fast::ENTRY_LEN);
        l.copy_from_slice(&(body.len() as u16).to_be_bytes());
        let (d, rest) = rest.split_at_mut(body.len());
        d.copy_from_slice(body);
        out = rest;
    }
    true
}

/// `entries` for a frame written in place: `b` grows over `msgs` when
/// they are the entries behind its end, lengths included.
fn entries_in_place(b: &mut Msg, msgs: &[Msg]) -> bool {
    let Some(last) = msgs.last() else {
        return true;
    };
    let mut prev = &*b;
    for m in msgs {
        if !follows_entry(prev, m) {
            return false;
        }
        prev = m;
    }
    grow_over(b, msgs, last)
}

/// `b` grows over `msgs` (`last` the last of them), entries laid out
/// behind it back to back, when the lengths between read back right.
fn grow_over(b: &mut Msg, msgs: &[Msg], last: &Msg) -> bool {
    let Some(bytes) = b.behind(last) else {
        return false;
    };
    let lens_match = Entries::new(bytes)
        .zip(msgs)
        .all(|(e, m)| matches!(e, Ok((_, l)) if l == m.len()));
    lens_match && b.extend_to(last)
}

/// Cast `seq` with the layers' common-case headers in front of `payload`
/// (a compact frame's meaning), in a control buffer; `None`, counted,
/// when no buffer is free or it does not fit one. The full path (here)
/// and the fast path's fallback (`Stack`) both expand with this.
pub fn expand(env: &mut Env, tmpl: &[u8], seq: u64, payload: &[u8]) -> Option<Msg> {
    let h = NakHdr::Cast { seq };
    let mut nh = [0u8; 16];
    let nl = h.len();
    h.emit(&mut nh[..nl]);
    env.message(&[&nh[..nl], tmpl, payload])
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
                self.flush_pack(cx);
                self.install(&v);
                cx.installed(v);
            }
            Down::Ctl(to, m) => self.control(cx, to, m),
            // Bottom of the stack: nothing below to pass other events to.
            _ => {}
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[])
    }

    /// Its `fast_up` does nothing (the parse was the frame's part).
    #[inline]
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    fn fast_setup(&mut self, above: &[u8], ctl_capacity: usize) {
        // `above` starts with `nak`'s tag, which is empty: the stack only
        // sets this up with `nak` right above `com`.
        self.tmpl = Some(above.into());
        self.ctl_cap = ctl_capacity;
    }

    #[inline]
    fn fast_down_ok(&self, msg: &Msg) -> bool {
        self.fast_max().is_some_and(|max| msg.len() <= max)
    }

    #[inline(always)]
    fn fast_down(&mut self, fc: &mut FastCast, cx: &mut Cx<'_>) {
        if cx.packing() {
            if let Some(msg) = &fc.msg {
                // How many more casts the batch holds is not known here.
                self.pack(cx, fc.seq, msg, ONE_AT_A_TIME_ROOM);
            }
        } else if let Some(mut msg) = fc.msg.take() {
            // Framed while the message has no other handle (no atomic);
            // the stack sends it and gives the layer above the bare
            // payload of it (`fast_sent`).
            if !self.compact_header(cx, fc.seq, false, &mut msg) {
                // Kept unsent above: receivers will ask for it.
                fc.msg = Some(msg);
                return;
            }
            fc.frame = Some(msg);
        }
    }

    #[inline]
    fn fast_parse(&self, frame: &[u8]) -> Option<Result<(Rank, Compact), DropReason>> {
        self.tmpl.as_ref()?;
        Some(self.parse_compact(frame))
    }

    fn fast_flush(&mut self, cx: &mut Cx<'_>) {
        self.flush_pack(cx);
    }

    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        match self.fast_max() {
            Some(max) => msgs.iter().take_while(|m| m.len() <= max).count(),
            None => 0,
        }
    }

    /// Packs each cast of the run (a run is a batch's: always packing).
    #[inline]
    fn fast_down_run(&mut self, run: &mut FastRun<'_>, cx: &mut Cx<'_>) {
        self.pack_run(cx, run.seq, run.msgs);
    }

    #[inline]
    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        true
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let Up::Recv(mut frame) = ev else {
            cx.up(ev);
            return;
        };
        cx.stats().frames_in += 1;
        if fast::is_compact(frame.front()) {
            self.expand_up(cx, frame);
            return;
        }
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
        let Some(v) = &self.view else {
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
