//! `gms`: group membership with virtual synchrony.
//!
//! Coordinator-based, after Isis and Ensemble. The coordinator is the
//! lowest-ranked member its peers do not suspect. A view change (failure,
//! join, leave) runs a flush:
//!
//! 1. The coordinator sends `Flush` (failed ranks, participants) to every
//!    participant, itself included.
//! 2. A participant gives the application `Block`; once `BlockOk` comes
//!    down (from the application, from a layer above that must finish
//!    first, or from the stack itself when the application does not take
//!    part: [`GmsConfig::app_block_ok`]), it answers `FlushOk` with its
//!    delivered vector
//!    and from then on holds every new cast of the view instead of
//!    delivering it.
//! 3. With every `FlushOk` in, the coordinator takes the cut (per sender,
//!    the maximum delivered) and a holder for each sender, and sends `Cut`.
//! 4. A participant delivers its held casts up to the cut, asks `nak` to
//!    fetch anything still missing from the holder (`Down::Repair`), and
//!    answers `CutOk` once it has delivered exactly up to the cut.
//! 5. With every `CutOk` in, the coordinator installs the next view and
//!    sends it, in `com` control frames, to every new member (joiners
//!    included) until each acknowledges.
//!
//! So members that install the same next view delivered the same casts
//! in the old one, and a failed member's cast reached all survivors or
//! none. A failure during the flush restarts it (a higher attempt); a
//! coordinator failure makes the next rank coordinate and restart it.
//! Nothing is thrown away before the view is installed, so restarts are
//! safe. A member excluded by a false suspicion keeps its old view until
//! it suspects the others in turn, and carries on in a view of its own.
//!
//! Joining: `Down::Join` names contacts; `Join` goes to each, a member
//! that does not coordinate answers `Redirect`. A process that hears from
//! no group within the join timeout founds one (the lowest address among
//! the contacts first, any after three timeouts).

mod coord;
mod keys;
mod merge;
mod msg;
mod state;

use std::sync::Arc;

use tutti_drivers::Msg;

use crate::event::{
    Addr, Down, EndpointId, GroupKey, JoinReq, Rank, Signer, Time, Up, View, ViewId,
};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::secure::{short, Secure};

use coord::MergeIn;
use keys::SecCtx;
pub use msg::{
    decode_ctrl, decode_outside, decode_xfer, encode, Attempt, Ctrl, Outside, ViewMsg, XferCtrl,
};
use state::{Action, Member};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "gms",
    needs: &[Prop::Reliable, Prop::Fifo, Prop::FailureDetection],
    needs_above: &[],
    provides: &[Prop::Membership],
    bottom: false,
    about: "group membership: joins, leaves, failures, flush with virtual synchrony",
};

const TICK: u64 = 1;
/// Tag of an application message.
const TAG_DATA: u8 = 0;
/// Tag of a control message.
const TAG_CTRL: u8 = 1;
/// Resends of a view to a member that does not acknowledge it before a
/// leaving coordinator gives up and exits.
const EXIT_RESENDS: u32 = 50;

/// Parameters of `gms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GmsConfig {
    /// Retry period (joins, views not yet acknowledged, leave requests), ns.
    pub tick_ns: u64,
    /// A joiner that hears from no group for this long founds one, ns.
    pub join_timeout_ns: u64,
    /// The application answers `Up::Block` with `Down::BlockOk` itself
    /// (otherwise the stack answers for it as the event leaves the top).
    pub app_block_ok: bool,
    /// The application answers `Up::GetState` with `Down::State` (with
    /// `xfer`); otherwise the stack answers with an empty state.
    pub app_state: bool,
    /// Primary-partition mode: only a view holding a majority of the last
    /// primary view may carry casts; a minority view says it is not
    /// primary and refuses casts until it merges back.
    pub primary: bool,
}

impl Default for GmsConfig {
    fn default() -> Self {
        GmsConfig {
            tick_ns: 20_000_000,
            join_timeout_ns: 300_000_000,
            app_block_ok: false,
            app_state: false,
            primary: false,
        }
    }
}

/// Refused keys remembered, so that a joiner retrying is reported once.
const REFUSED_MAX: usize = 64;

/// The `gms` layer.
pub struct Gms {
    cfg: GmsConfig,
    st: St,
    /// Time the current tick timer fires (one timer at a time).
    armed: Option<Time>,
    /// Secure groups: identity and authorized keys.
    sec: Option<Arc<SecCtx>>,
    /// Keys whose joins were refused and reported (bounded).
    refused: Vec<[u8; 32]>,
}

enum St {
    /// No `Join` yet.
    Idle,
    Joining(Joining),
    Member(Box<Member>),
    /// Left: only resends the last view until everyone has it.
    Leaving(Box<Member>, u32),
    Gone,
}

struct Joining {
    req: Arc<JoinReq>,
    contacts: Vec<Addr>,
    started: Time,
    /// When a member last pointed us at its coordinator.
    heard_group: Option<Time>,
}

/// A message of this layer: tag, then the control encoding.
fn ctrl_msg(cx: &mut Cx<'_>, c: &Ctrl) -> Option<Msg> {
    cx.message(&[&[TAG_CTRL], &encode(c)])
}

/// Sends a control message to a rank (itself included: `nak` loops a send
/// to oneself straight back up).
fn send_ctrl(cx: &mut Cx<'_>, to: Rank, c: &Ctrl) {
    if let Some(m) = ctrl_msg(cx, c) {
        cx.stats().control += 1;
        cx.down(Down::Send(to, m));
    }
}

/// Sends a message outside any view.
fn send_outside(cx: &mut Cx<'_>, to: &Addr, o: &Outside) {
    if let Some(m) = cx.message(&[&encode(o)]) {
        cx.stats().control += 1;
        cx.down(Down::Ctl(to.clone(), m));
    }
}

impl Gms {
    /// A `gms` layer.
    pub fn new(cfg: GmsConfig) -> Gms {
        Gms {
            cfg,
            st: St::Idle,
            armed: None,
            sec: None,
            refused: Vec::new(),
        }
    }

    /// The same layer for a secure group (`secure` given): joins carry
    /// this member's key, views carry a fresh group key sealed for each
    /// member, and membership messages are taken only from authorized
    /// signers.
    pub fn secured(mut self, group: u32, secure: Option<Arc<Secure>>) -> Gms {
        self.sec = secure.map(|secure| Arc::new(SecCtx { secure, group }));
        self
    }

    fn arm(&mut self, cx: &mut Cx<'_>) {
        let at = cx.now().plus_ns(self.cfg.tick_ns);
        if self.armed.is_none_or(|t| t <= cx.now()) {
            self.armed = Some(at);
            cx.arm(at, TICK);
        }
    }

    fn join(&mut self, req: Arc<JoinReq>, cx: &mut Cx<'_>) {
        if !matches!(self.st, St::Idle) {
            return;
        }
        let contacts: Vec<Addr> = req
            .contacts
            .iter()
            .filter(|a| **a != req.addr)
            .cloned()
            .collect();
        let j = Joining {
            req,
            contacts,
            started: cx.now(),
            heard_group: None,
        };
        send_joins(&j, self.sec.as_deref(), cx);
        self.st = St::Joining(j);
        self.arm(cx);
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        self.armed = None;
        let now = cx.now();
        let cfg = self.cfg;
        match &mut self.st {
            St::Idle | St::Gone => return,
            St::Joining(j) => {
                let waited = now.since(j.started);
                let lowest = j.contacts.iter().all(|c| **c > *j.req.addr);
                // A group that answered once but never let us in for three
                // timeouts may be gone (every member failed): found anew.
                let found = match j.heard_group {
                    None => {
                        (lowest && waited >= cfg.join_timeout_ns)
                            || waited >= 3 * cfg.join_timeout_ns
                    }
                    Some(t) => now.since(t) >= 3 * cfg.join_timeout_ns,
                };
                if found {
                    let req = j.req.clone();
                    // Primary partition: only the designated founder (the
                    // lowest address) starts a primary view; a process
                    // that founds because it heard from nobody waits, in a
                    // minority view, to merge with it.
                    let primary = !cfg.primary || lowest;
                    let mut vm = ViewMsg {
                        from: Vec::new(),
                        ltime: 1,
                        vcoord: req.me,
                        members: vec![req.me],
                        addrs: vec![req.addr.to_string()],
                        merged: Vec::new(),
                        reply_to: req.addr.to_string(),
                        primary,
                        last_primary_id: if primary { (1, req.me) } else { (0, 0) },
                        last_primary: if primary { vec![req.me] } else { Vec::new() },
                        keys: Vec::new(),
                        sealed: Vec::new(),
                        sealer: None,
                    };
                    if let Some(sec) = &self.sec {
                        vm.keys = vec![sec.secure.public()];
                        if sec.seal_view(&mut vm).is_err() {
                            cx.dropped(DropReason::BadField);
                            self.arm(cx);
                            return;
                        }
                    }
                    self.install_own(&vm, req.me, req.addr.clone(), cx);
                } else {
                    send_joins(j, self.sec.as_deref(), cx);
                }
            }
            St::Member(m) => {
                if let Some(Action::Install(vm)) = m.tick(cx) {
                    let (me, addr) = (m.view.me(), m.addr.clone());
                    self.install_own(&vm, me, addr, cx);
                }
            }
            St::Leaving(m, n) => {
                *n += 1;
                if m.unacked.is_empty() || *n > EXIT_RESENDS {
                    self.st = St::Gone;
                    cx.up(Up::Exit);
                    return;
                }
                m.resend_view(cx);
            }
        }
        self.arm(cx);
    }

    /// Installs a view this member made.
    fn install_own(&mut self, vm: &ViewMsg, me: EndpointId, addr: Addr, cx: &mut Cx<'_>) {
        match self.check_view(vm, me, None) {
            Ok(key) => self.install(vm, me, addr, key, cx),
            // Cannot happen: the key was sealed here a moment ago.
            Err(_) => cx.dropped(DropReason::NoKey),
        }
    }

    /// Installs `vm` (this endpoint is `me` at `addr`) with its group key
    /// (secure groups). Leaves the group if it is not among the members.
    fn install(
        &mut self,
        vm: &ViewMsg,
        me: EndpointId,
        addr: Addr,
        key: Option<GroupKey>,
        cx: &mut Cx<'_>,
    ) {
        let Some(rank) = vm.members.iter().position(|m| *m == me) else {
            return;
        };
        let addrs: Vec<Addr> = vm.addrs.iter().map(|a| Addr::from(a.as_str())).collect();
        let view = View::new(
            ViewId {
                ltime: vm.ltime,
                coord: vm.vcoord,
            },
            vm.members.clone(),
            rank as Rank,
        )
        .and_then(|v| v.with_addrs(addrs));
        let Ok(mut view) = view else {
            cx.dropped(DropReason::BadField);
            return;
        };
        view.keys = vm.keys.clone();
        view.key = key;
        // Primary-partition mode: a founding view of the designated founder
        // is primary at once; any other candidate once confirmed.
        let founding_primary = vm.from.is_empty() && vm.primary;
        view.primary = !self.cfg.primary || founding_primary;
        view.merged = vm
            .merged
            .iter()
            .map(|(ltime, coord)| ViewId {
                ltime: *ltime,
                coord: *coord,
            })
            .collect();
        let view = Arc::new(view);
        let old = std::mem::replace(&mut self.st, St::Idle);
        let mut m = match old {
            St::Member(old) => Box::new(old.next(view.clone(), addr, vm)),
            St::Joining(j) => {
                let mut m = Member::new(self.cfg, self.sec.clone(), view.clone(), addr);
                m.set_last_primary(vm);
                for c in j.contacts {
                    m.learn(c);
                }
                Box::new(m)
            }
            _ => {
                let mut m = Member::new(self.cfg, self.sec.clone(), view.clone(), addr);
                m.set_last_primary(vm);
                Box::new(m)
            }
        };
        cx.down(Down::View(view.clone()));
        cx.up(Up::View(view));
        let ack = Outside::ViewAck {
            ltime: vm.ltime,
            vcoord: vm.vcoord,
            id: me,
        };
        if vm.reply_to != *m.addr {
            send_outside(cx, &Addr::from(vm.reply_to.as_str()), &ack);
        }
        if self.cfg.primary && founding_primary {
            m.primary_now = true;
            m.last_primary_id = (vm.ltime, vm.vcoord);
            m.last_primary = vm.members.clone();
        }
        m.proposed = vm.primary && !m.primary_now;
        m.after_install(cx);
        self.st = St::Member(m);
        self.arm(cx);
    }

    /// Checks a view from `signer` (secure groups; `None`: a view this
    /// member made) and opens this member's group key. A view without
    /// this member (it left) needs only a good signer.
    fn check_view(
        &self,
        vm: &ViewMsg,
        me: EndpointId,
        signer: Option<&Signer>,
    ) -> Result<Option<GroupKey>, &'static str> {
        let Some(sec) = &self.sec else {
            return Ok(None);
        };
        if vm.members.contains(&me) {
            return sec.open_view(vm, me, signer).map(Some);
        }
        match (signer, vm.sealer) {
            (Some(s), Some(k)) if s.key == k && s.authorized => Ok(None),
            _ => Err("view not signed by its sealer"),
        }
    }

    /// Refuses a joiner: tells it (signed, so it can trust the refusal)
    /// and reports it once per key.
    fn refuse(&mut self, key: [u8; 32], addr: &str, why: String, cx: &mut Cx<'_>) {
        if !self.refused.contains(&key) {
            if self.refused.len() >= REFUSED_MAX {
                self.refused.remove(0);
            }
            self.refused.push(key);
            cx.up(Up::Refused(Arc::from(why.as_str())));
        }
        send_outside(cx, &Addr::from(addr), &Outside::Refused { why });
    }

    /// Secure groups: whether `o` may be handled, given who signed it.
    /// Refuses unauthorized joiners; ends a join the group refused.
    fn screen(&mut self, o: &Outside, signer: Option<Signer>, cx: &mut Cx<'_>) -> bool {
        let Some(sec) = self.sec.clone() else {
            return true;
        };
        let Some(signer) = signer else {
            cx.dropped(DropReason::Unauthorized);
            return false;
        };
        match o {
            Outside::Join { id, addr, key } if matches!(self.st, St::Member(_)) => {
                match sec.admit(*id, addr, *key, &signer) {
                    Ok(_) => true,
                    Err(why) => {
                        self.refuse(signer.key, addr, why, cx);
                        false
                    }
                }
            }
            _ if !signer.authorized => {
                cx.dropped(DropReason::Unauthorized);
                false
            }
            Outside::Refused { why } => {
                if let St::Joining(_) = self.st {
                    let line = format!("join refused by {}: {why}", short(&signer.key));
                    cx.up(Up::Refused(Arc::from(line.as_str())));
                    self.st = St::Gone;
                    cx.up(Up::Exit);
                }
                false
            }
            _ => true,
        }
    }

    fn on_outside(&mut self, msg: Msg, signer: Option<Signer>, cx: &mut Cx<'_>) {
        let o = match decode_outside(msg.front()) {
            Ok(o) => o,
            Err(_) => {
                cx.dropped(DropReason::BadField);
                return;
            }
        };
        drop(msg);
        if !self.screen(&o, signer, cx) {
            return;
        }
        match (&mut self.st, o) {
            (St::Joining(j), Outside::Redirect { coord }) => {
                j.heard_group = Some(cx.now());
                let a = Addr::from(coord.as_str());
                if a != j.req.addr && !j.contacts.contains(&a) {
                    j.contacts.insert(0, a.clone());
                }
                let join = join_msg(&j.req, self.sec.as_deref());
                send_outside(cx, &a, &join);
            }
            (St::Joining(j), Outside::View(vm))
                if vm.members.contains(&j.req.me) && vm.check().is_ok() =>
            {
                let (me, addr) = (j.req.me, j.req.addr.clone());
                match self.check_view(&vm, me, signer.as_ref()) {
                    Ok(key) => self.install(&vm, me, addr, key, cx),
                    Err(_) => cx.dropped(DropReason::Unauthorized),
                }
            }
            (St::Member(m), Outside::View(vm)) => {
                if vm.check().is_err() {
                    cx.dropped(DropReason::BadField);
                    return;
                }
                let me = m.view.me();
                let key = match self.check_view(&vm, me, signer.as_ref()) {
                    Ok(k) => k,
                    Err(_) => {
                        cx.dropped(DropReason::Unauthorized);
                        return;
                    }
                };
                let St::Member(m) = &mut self.st else {
                    return;
                };
                match m.accept_view(&vm, cx) {
                    state::ViewVerdict::Install => {
                        let (me, addr) = (m.view.me(), m.addr.clone());
                        if vm.members.contains(&me) {
                            self.install(&vm, me, addr, key, cx);
                        } else {
                            // This member asked to leave: done.
                            self.st = St::Gone;
                            cx.up(Up::Exit);
                        }
                    }
                    state::ViewVerdict::Ignore => {}
                }
            }
            (St::Member(m), Outside::Join { id, addr, key }) => m.on_join(id, addr, key, cx),
            (
                St::Member(m),
                Outside::Beacon {
                    ltime,
                    vcoord,
                    coord,
                },
            ) => m.on_beacon(ltime, vcoord, coord, cx),
            (
                St::Member(m),
                Outside::MergeRequest {
                    ltime,
                    vcoord,
                    reply_to,
                },
            ) => m.on_merge_request(ltime, vcoord, reply_to, cx),
            (St::Member(m), Outside::MergeGrant { .. }) => m.on_merge_grant(cx),
            (
                St::Member(m),
                Outside::MergeReady {
                    at,
                    members,
                    addrs,
                    keys,
                    last_primary_id,
                    last_primary,
                },
            ) => m.on_merge_ready(
                MergeIn {
                    at,
                    members,
                    addrs,
                    keys,
                    last_primary_id,
                    last_primary,
                },
                cx,
            ),
            (St::Member(m), Outside::ViewAck { ltime, vcoord, id })
            | (St::Leaving(m, _), Outside::ViewAck { ltime, vcoord, id })
                if (ltime, vcoord) == m.sent_view_id() =>
            {
                m.unacked.retain(|(i, _)| *i != id);
            }
            _ => {}
        }
    }
}

/// This process's join request.
fn join_msg(req: &JoinReq, sec: Option<&SecCtx>) -> Outside {
    Outside::Join {
        id: req.me,
        addr: req.addr.to_string(),
        key: sec.map(|s| s.secure.public()),
    }
}

fn send_joins(j: &Joining, sec: Option<&SecCtx>, cx: &mut Cx<'_>) {
    let join = join_msg(&j.req, sec);
    for c in &j.contacts {
        send_outside(cx, c, &join);
    }
}

impl Gms {
    /// A coordinator that made a view without itself only resends it from
    /// now on (whichever event finished that flush: a message or a tick).
    fn after_departure(&mut self) {
        if matches!(&self.st, St::Member(m) if m.leaving_done) {
            if let St::Member(m) = std::mem::replace(&mut self.st, St::Gone) {
                self.st = St::Leaving(m, 0);
            }
        }
    }
}

impl Layer for Gms {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        match ev {
            Down::Join(req) => self.join(req, cx),
            Down::Timer(TICK) => {
                self.tick(cx);
                self.after_departure();
            }
            Down::Timer(_) => {}
            Down::View(v) => {
                // A static view from the caller: adopt it as the first view.
                if let St::Idle = self.st {
                    let me = v.me();
                    let addr = v.addrs.get(v.rank as usize).cloned().unwrap_or_default();
                    let vm = ViewMsg::of(&v, Vec::new(), &addr);
                    // A secure static view brings its (pre-shared) key.
                    self.install(&vm, me, addr, v.key.clone(), cx);
                }
            }
            Down::Cast(m) => match &mut self.st {
                St::Member(mb) => mb.cast(m, cx),
                _ => cx.dropped(DropReason::NoView),
            },
            Down::Send(d, m) => match &mut self.st {
                St::Member(_) => {
                    if let Some(m) = cx.tagged(m, TAG_DATA) {
                        cx.down(Down::Send(d, m));
                    }
                }
                _ => cx.dropped(DropReason::NoView),
            },
            Down::BlockOk => {
                if let St::Member(m) = &mut self.st {
                    m.block_ok(cx);
                }
            }
            Down::Leave => match &mut self.st {
                St::Member(m) => m.leave(cx),
                St::Joining(_) | St::Idle => {
                    self.st = St::Gone;
                    cx.up(Up::Exit);
                }
                _ => {}
            },
            other => cx.down(other),
        }
        self.after_departure();
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Ctl(msg, signer) => self.on_outside(msg, signer.map(|s| *s), cx),
            // Casts carry no tag: the flush's messages are sends.
            Up::Cast { src, seq, msg } => {
                if let St::Member(m) = &mut self.st {
                    m.on_cast(src, seq, msg, cx);
                }
            }
            Up::Send { src, seq, mut msg } => {
                let St::Member(m) = &mut self.st else {
                    return;
                };
                match msg.front().first().copied() {
                    Some(TAG_DATA) => {
                        let _ = msg.advance(1);
                        cx.up(Up::Send { src, seq, msg });
                    }
                    Some(TAG_CTRL) => match decode_ctrl(&msg.front()[1..]) {
                        Ok(c) => {
                            drop(msg);
                            if let Some(Action::Install(vm)) = m.on_ctrl(src, c, cx) {
                                let (me, addr) = (m.view.me(), m.addr.clone());
                                self.install_own(&vm, me, addr, cx);
                            }
                        }
                        Err(_) => cx.dropped(DropReason::BadField),
                    },
                    Some(_) => cx.dropped(DropReason::UnknownTag),
                    None => cx.dropped(DropReason::Truncated),
                }
            }
            Up::Suspect(ranks) => {
                if let St::Member(m) = &mut self.st {
                    m.on_suspect(&ranks, cx);
                }
                cx.up(Up::Suspect(ranks));
            }
            // Raw messages of layers above: none exist above gms today.
            Up::CastRaw { .. } | Up::SendRaw { .. } => cx.dropped(DropReason::UnknownTag),
            other => cx.up(other),
        }
        self.after_departure();
    }

    fn ready(&self) -> bool {
        match &self.st {
            St::Member(m) => m.ready(),
            _ => false,
        }
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[])
    }

    /// A member not flushing sends at once (and delivers its own cast).
    #[inline]
    fn fast_down_ok(&self, _msg: &Msg) -> bool {
        matches!(&self.st, St::Member(m) if m.ok_sent.is_none())
    }

    #[inline]
    fn fast_up_ok(&self, src: Rank, seq: u64) -> bool {
        matches!(&self.st, St::Member(m) if m.ok_sent.is_none()
            && m.delivered.get(src as usize).is_some_and(|d| seq >= *d))
    }

    /// `on_cast` when not flushing.
    #[inline]
    fn fast_up(&mut self, src: Rank, seq: u64, _msg: &mut Option<Msg>, _cx: &mut Cx<'_>) {
        if let St::Member(m) = &mut self.st {
            m.delivered[src as usize] = seq + 1;
        }
    }

    /// The delivered count is read only by later events, which run the
    /// post-processing first.
    #[inline]
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    /// All, when not flushing (`fast_down_ok` does not look at the
    /// message).
    #[inline]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        match msgs.first() {
            Some(m) if self.fast_down_ok(m) => msgs.len(),
            _ => 0,
        }
    }

    #[inline]
    fn fast_up_run_ok(&self, src: Rank, seq: u64, _n: u64) -> bool {
        self.fast_up_ok(src, seq)
    }

    #[inline]
    fn fast_up_run(&mut self, src: Rank, seq: u64, n: u64, cx: &mut Cx<'_>) {
        if n > 0 {
            self.fast_up(src, seq + n - 1, &mut None, cx);
        }
    }

    fn buffered(&self) -> usize {
        match &self.st {
            St::Member(m) => m.buffered(),
            _ => 0,
        }
    }

    fn dump(&self, out: &mut String) {
        match &self.st {
            St::Idle => out.push_str("idle"),
            St::Joining(j) => out.push_str(&format!(
                "joining since {} contacts={:?} heard={:?}",
                j.started, j.contacts, j.heard_group
            )),
            St::Member(m) => m.dump(out),
            St::Leaving(m, n) => {
                out.push_str(&format!("leaving (resend {n}) "));
                m.dump(out);
            }
            St::Gone => out.push_str("gone"),
        }
    }
}
