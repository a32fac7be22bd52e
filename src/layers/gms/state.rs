//! A member's membership state in one view: its side of the flush, and the
//! coordinator's side when it coordinates.

use std::collections::VecDeque;
use std::sync::Arc;

use tutti_drivers::Msg;

use super::coord::{Coord, MergeIn};
use super::keys::SecCtx;
use super::merge::Merge;
use super::msg::{Attempt, Ctrl, Outside, ViewMsg};
use super::{send_ctrl, send_outside, GmsConfig};
use crate::event::{Addr, Down, EndpointId, PubKey, Rank, Up, View};
use crate::layer::{Cx, DropReason};

/// What the layer must do after a control message.
pub(super) enum Action {
    /// Install this view (this member is in it).
    Install(Box<ViewMsg>),
    /// This member coordinated its own departure: the view is sent, wait
    /// for acknowledgements, then exit.
    Depart,
}

/// What to do with a view that arrived.
pub(super) enum ViewVerdict {
    Install,
    Ignore,
}

pub(super) struct Member {
    pub(super) cfg: GmsConfig,
    /// Secure groups: identity, authorized keys.
    pub(super) sec: Option<Arc<SecCtx>>,
    pub view: Arc<View>,
    pub addr: Addr,
    pub(super) n: usize,
    /// Per sender, one past the highest sequence number delivered.
    pub(super) delivered: Vec<u64>,
    /// Suspected by the detector or failed in an accepted flush.
    pub(super) suspected: Vec<bool>,
    /// The flush this member follows.
    pub(super) accepted: Option<Attempt>,
    /// `Block` given to the application in this view.
    pub(super) blocked: bool,
    /// The application answered `BlockOk`.
    pub(super) app_ok: bool,
    /// `FlushOk` sent for this attempt: casts are held from then on.
    pub(super) ok_sent: Option<Attempt>,
    pub(super) hold: Vec<VecDeque<(u64, Msg)>>,
    pub(super) cut: Option<(Attempt, Vec<u64>, Vec<Rank>)>,
    pub(super) repaired: bool,
    pub(super) cut_ok_sent: Option<Attempt>,
    /// Casts made while blocked: they go out in the next view.
    pub(super) pending: VecDeque<Msg>,
    pub(super) want_leave: bool,
    // Coordinator.
    pub(super) co: Option<Coord>,
    pub(super) attempts: u32,
    pub(super) leave_req: Vec<bool>,
    pub(super) joiners: Vec<(EndpointId, Addr, Option<PubKey>)>,
    /// The last view this member made and sent, and who has not
    /// acknowledged it.
    pub(super) sent_view: Option<ViewMsg>,
    pub unacked: Vec<(EndpointId, Addr)>,
    /// This member coordinated a flush that removes it.
    pub leaving_done: bool,
    // Merging.
    /// Every address heard of (beacons go to those outside the view).
    pub(super) known: Vec<Addr>,
    pub(super) merge: Merge,
    /// A flushed view to take in with the next flush.
    pub(super) merging_in: Option<MergeIn>,
    /// Ticks since the view was installed.
    pub(super) ticks: u32,
    /// The newest primary view known (primary-partition mode): id,
    /// members.
    pub(super) last_primary_id: (u64, u64),
    pub(super) last_primary: Vec<EndpointId>,
    /// The current view is primary (confirmed).
    pub(super) primary_now: bool,
    /// The current view is a candidate to be primary.
    pub(super) proposed: bool,
    /// Rank 0 of a candidate view: the last primary's members that
    /// installed it.
    pub(super) confirming: Vec<EndpointId>,
}

impl Member {
    pub fn new(cfg: GmsConfig, sec: Option<Arc<SecCtx>>, view: Arc<View>, addr: Addr) -> Member {
        let n = view.size();
        let mut m = Member {
            cfg,
            sec,
            view,
            addr,
            n,
            delivered: vec![0; n],
            suspected: vec![false; n],
            accepted: None,
            blocked: false,
            app_ok: false,
            ok_sent: None,
            hold: (0..n).map(|_| VecDeque::new()).collect(),
            cut: None,
            repaired: false,
            cut_ok_sent: None,
            pending: VecDeque::new(),
            want_leave: false,
            co: None,
            attempts: 0,
            leave_req: vec![false; n],
            joiners: Vec::new(),
            sent_view: None,
            unacked: Vec::new(),
            leaving_done: false,
            known: Vec::new(),
            merge: Merge::Idle,
            merging_in: None,
            ticks: 0,
            last_primary_id: (0, 0),
            last_primary: Vec::new(),
            primary_now: !cfg.primary,
            proposed: false,
            confirming: Vec::new(),
        };
        m.learn_view();
        m
    }

    /// The state for the next view, carrying what outlives a view.
    pub fn next(self, view: Arc<View>, addr: Addr, vm: &ViewMsg) -> Member {
        let mut m = Member::new(self.cfg, self.sec.clone(), view, addr);
        m.set_last_primary(vm);
        m.pending = self.pending;
        m.want_leave = self.want_leave;
        m.joiners = self
            .joiners
            .into_iter()
            .filter(|(id, _, _)| m.view.rank_of(*id).is_none())
            .collect();
        m.sent_view = self.sent_view;
        m.unacked = self.unacked;
        m.known = self.known;
        m.learn_view();
        m.carry_merge(self.merge);
        m
    }

    pub(super) fn me(&self) -> Rank {
        self.view.rank
    }

    /// The lowest-ranked member not suspected.
    pub(super) fn coordinator(&self) -> Rank {
        self.suspected.iter().position(|s| !s).unwrap_or(0) as Rank
    }

    pub(super) fn is_coord(&self) -> bool {
        self.coordinator() == self.me()
    }

    pub fn ready(&self) -> bool {
        self.ok_sent.is_none() && !self.want_leave && self.primary_now
    }

    /// Takes the last primary view a view message names.
    pub fn set_last_primary(&mut self, vm: &ViewMsg) {
        self.last_primary_id = vm.last_primary_id;
        self.last_primary = vm.last_primary.clone();
    }

    /// Whether `members` hold a majority of `of`.
    pub(super) fn majority(members: &[EndpointId], of: &[EndpointId]) -> bool {
        let have = of.iter().filter(|m| members.contains(m)).count();
        2 * have > of.len()
    }

    pub fn buffered(&self) -> usize {
        self.hold.iter().map(|h| h.len()).sum::<usize>() + self.pending.len()
    }

    pub fn sent_view_id(&self) -> (u64, u64) {
        self.sent_view
            .as_ref()
            .map_or((0, 0), |v| (v.ltime, v.vcoord))
    }

    /// After the view is installed: casts made while blocked go out, and
    /// a coordinator with work left starts the next flush.
    pub fn after_install(&mut self, cx: &mut Cx<'_>) {
        if self.proposed {
            let i = Ctrl::Installed {
                ltime: self.view.id.ltime,
                vcoord: self.view.id.coord,
            };
            send_ctrl(cx, 0, &i);
        }
        self.send_pending(cx);
        self.maybe_flush(cx);
    }

    /// Casts made while blocked go out once the view may carry casts.
    pub(super) fn send_pending(&mut self, cx: &mut Cx<'_>) {
        if !self.primary_now {
            return;
        }
        while let Some(m) = self.pending.pop_front() {
            cx.down(Down::Cast(m));
        }
    }

    pub fn tick(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        self.ticks += 1;
        self.resend_view(cx);
        if let Some(a) = self.merge_tick(cx) {
            return Some(a);
        }
        if self.want_leave && !self.is_coord() && self.accepted.is_none() {
            let c = self.coordinator();
            send_ctrl(cx, c, &Ctrl::Leave);
        }
        self.maybe_flush(cx);
        None
    }

    /// No flush coordinated here is under way.
    pub(super) fn co_idle(&self) -> bool {
        self.co.is_none()
    }

    /// Drops the flush under way (it restarts as a new attempt).
    pub(super) fn abandon_flush(&mut self) {
        self.co = None;
    }

    pub fn resend_view(&mut self, cx: &mut Cx<'_>) {
        if let Some(vm) = &self.sent_view {
            let o = Outside::View(vm.clone());
            for (_, a) in &self.unacked {
                send_outside(cx, a, &o);
            }
        }
    }

    pub fn cast(&mut self, m: Msg, cx: &mut Cx<'_>) {
        if self.ok_sent.is_some() {
            self.pending.push_back(m);
        } else {
            cx.down(Down::Cast(m));
        }
    }

    pub fn block_ok(&mut self, cx: &mut Cx<'_>) {
        if self.blocked {
            self.app_ok = true;
            self.maybe_send_ok(cx);
        }
    }

    pub fn leave(&mut self, cx: &mut Cx<'_>) {
        if self.want_leave {
            return;
        }
        self.want_leave = true;
        if self.is_coord() {
            self.maybe_flush(cx);
        } else {
            let c = self.coordinator();
            send_ctrl(cx, c, &Ctrl::Leave);
        }
    }

    pub fn on_cast(&mut self, src: Rank, seq: u64, msg: Msg, cx: &mut Cx<'_>) {
        let s = src as usize;
        if s >= self.n {
            cx.dropped(DropReason::BadRank);
            return;
        }
        if seq < self.delivered[s] {
            cx.dropped(DropReason::Duplicate);
            return;
        }
        if self.ok_sent.is_some() {
            self.hold[s].push_back((seq, msg));
            self.progress_cut(cx);
        } else {
            self.delivered[s] = seq + 1;
            cx.up(Up::Cast { src, seq, msg });
        }
    }

    pub fn on_suspect(&mut self, ranks: &[Rank], cx: &mut Cx<'_>) {
        let mut restart = false;
        for r in ranks {
            let r = *r as usize;
            if r < self.n && r != self.me() as usize && !self.suspected[r] {
                self.suspected[r] = true;
                if self.co.as_ref().is_some_and(|c| c.participants[r]) {
                    restart = true;
                }
            }
        }
        if restart {
            self.co = None;
        }
        self.maybe_flush(cx);
    }

    pub fn on_join(&mut self, id: EndpointId, addr: String, key: Option<PubKey>, cx: &mut Cx<'_>) {
        if !self.is_coord() {
            let c = self.coordinator() as usize;
            let coord = self.view.addrs.get(c).map(|a| a.to_string());
            if let Some(coord) = coord {
                send_outside(cx, &Addr::from(addr.as_str()), &Outside::Redirect { coord });
            }
            return;
        }
        if self.view.rank_of(id).is_some() {
            // Joined already; the view will be resent until acknowledged.
            return;
        }
        if !self.joiners.iter().any(|(j, _, _)| *j == id) {
            self.joiners.push((id, Addr::from(addr.as_str()), key));
        }
        self.maybe_flush(cx);
    }

    pub fn accept_view(&mut self, vm: &ViewMsg, cx: &mut Cx<'_>) -> ViewVerdict {
        let cur = (self.view.id.ltime, self.view.id.coord);
        if (vm.ltime, vm.vcoord) == cur {
            // Installed already; the acknowledgement was lost.
            let ack = Outside::ViewAck {
                ltime: vm.ltime,
                vcoord: vm.vcoord,
                id: self.view.me(),
            };
            send_outside(cx, &Addr::from(vm.reply_to.as_str()), &ack);
            return ViewVerdict::Ignore;
        }
        // Ours if it concludes the flush this member finished.
        let ours = vm.from.iter().any(|from| {
            (from.ltime, from.vcoord) == cur
                && self.accepted == Some(*from)
                && self.cut_ok_sent == Some(*from)
        });
        if ours {
            ViewVerdict::Install
        } else {
            ViewVerdict::Ignore
        }
    }

    pub fn on_ctrl(&mut self, src: Rank, c: Ctrl, cx: &mut Cx<'_>) -> Option<Action> {
        if src as usize >= self.n {
            cx.dropped(DropReason::BadRank);
            return None;
        }
        let here = |at: &Attempt| at.ltime == self.view.id.ltime && at.vcoord == self.view.id.coord;
        match c {
            Ctrl::Flush {
                at,
                failed,
                participants,
            } if here(&at) => self.on_flush(src, at, &failed, &participants, cx),
            Ctrl::FlushOk {
                at,
                delivered,
                last_primary_id,
                last_primary,
            } if here(&at) => {
                if let Some(co) = self.co.as_mut().filter(|c| c.at == at) {
                    if last_primary_id > co.newest_primary.0 {
                        co.newest_primary = (last_primary_id, last_primary);
                    }
                }
                return self.on_flush_ok(src, at, delivered, cx);
            }
            Ctrl::Installed { ltime, vcoord }
                if (ltime, vcoord) == (self.view.id.ltime, self.view.id.coord) =>
            {
                let id = self.view.members[src as usize];
                self.on_installed(id, cx);
            }
            Ctrl::Primary { ltime, vcoord } => {
                let cur = (self.view.id.ltime, self.view.id.coord);
                if (ltime, vcoord) == cur && !self.primary_now && src == 0 {
                    self.primary_now = true;
                    self.last_primary_id = cur;
                    self.last_primary = self.view.members.clone();
                    cx.up(Up::Primary);
                    self.send_pending(cx);
                }
            }
            Ctrl::Cut { at, cut, holder } if here(&at) => self.on_cut(src, at, cut, holder, cx),
            Ctrl::CutOk { at } if here(&at) => return self.on_cut_ok(src, at, cx),
            Ctrl::Leave => {
                self.leave_req[src as usize] = true;
                self.maybe_flush(cx);
            }
            // For another view: late or early, harmless.
            _ => {}
        }
        None
    }

    pub(super) fn maybe_flush(&mut self, cx: &mut Cx<'_>) {
        if self.co.is_some() || !self.is_coord() || self.leaving_done || self.merge.waiting() {
            return;
        }
        let work = self.suspected.iter().any(|s| *s)
            || self.leave_req.iter().any(|l| *l)
            || !self.joiners.is_empty()
            || self.want_leave
            || self.merging_in.is_some();
        if work {
            self.start_flush(None, cx);
        }
    }

    pub(super) fn on_flush(
        &mut self,
        src: Rank,
        at: Attempt,
        failed: &[Rank],
        participants: &[Rank],
        cx: &mut Cx<'_>,
    ) {
        let n = self.n as Rank;
        let sane = src == at.coord
            && failed.iter().all(|r| *r < n && *r != at.coord)
            && participants.iter().all(|r| *r < n)
            && (0..at.coord).all(|r| failed.contains(&r))
            && participants.contains(&self.me());
        if !sane {
            // Not for us (excluded) or from a coordinator that cannot be.
            return;
        }
        if let Some(a) = self.accepted {
            if (at.coord, at.n) <= (a.coord, a.n) {
                return;
            }
        }
        // Adopt the coordinator's verdict: it is alive (it just spoke),
        // and the ranks it lists failed are out for good.
        self.suspected[at.coord as usize] = false;
        for r in failed {
            self.suspected[*r as usize] = true;
        }
        if at.coord != self.me() {
            // Another member coordinates now.
            self.co = None;
        }
        self.accepted = Some(at);
        self.cut = None;
        self.repaired = false;
        if !self.blocked {
            self.blocked = true;
            cx.up(Up::Block);
        }
        self.maybe_send_ok(cx);
    }

    pub(super) fn maybe_send_ok(&mut self, cx: &mut Cx<'_>) {
        let Some(at) = self.accepted else {
            return;
        };
        if self.ok_sent == Some(at) || !self.app_ok {
            return;
        }
        self.ok_sent = Some(at);
        let ok = Ctrl::FlushOk {
            at,
            delivered: self.delivered.clone(),
            last_primary_id: self.last_primary_id,
            last_primary: self.last_primary.clone(),
        };
        send_ctrl(cx, at.coord, &ok);
    }

    pub(super) fn on_cut(
        &mut self,
        src: Rank,
        at: Attempt,
        cut: Vec<u64>,
        holder: Vec<Rank>,
        cx: &mut Cx<'_>,
    ) {
        if src != at.coord || self.accepted != Some(at) || self.ok_sent != Some(at) {
            return;
        }
        if cut.len() != self.n
            || holder.len() != self.n
            || holder.iter().any(|h| *h as usize >= self.n)
        {
            cx.dropped(DropReason::BadField);
            return;
        }
        self.cut = Some((at, cut, holder));
        self.repaired = false;
        self.progress_cut(cx);
    }

    /// Delivers held casts up to the cut; fetches what is missing; answers
    /// `CutOk` once exactly the cut is delivered.
    fn progress_cut(&mut self, cx: &mut Cx<'_>) {
        let Some((at, cut, holder)) = &self.cut else {
            return;
        };
        let mut missing = false;
        for (s, &upto) in cut.iter().enumerate() {
            while let Some((seq, _)) = self.hold[s].front() {
                if *seq >= upto {
                    break;
                }
                let Some((seq, msg)) = self.hold[s].pop_front() else {
                    break;
                };
                self.delivered[s] = seq + 1;
                cx.up(Up::Cast {
                    src: s as Rank,
                    seq,
                    msg,
                });
            }
            if self.delivered[s] < upto {
                missing = true;
            }
        }
        let at = *at;
        if missing {
            if !self.repaired {
                self.repaired = true;
                for s in 0..self.n {
                    if self.delivered[s] < cut[s] {
                        cx.down(Down::Repair {
                            orig: s as Rank,
                            upto: cut[s],
                            from: holder[s],
                        });
                    }
                }
            }
        } else if self.cut_ok_sent != Some(at) {
            self.cut_ok_sent = Some(at);
            send_ctrl(cx, at.coord, &Ctrl::CutOk { at });
        }
    }

    pub fn dump(&self, out: &mut String) {
        out.push_str(&format!(
            "view {}.{} rank {} of {} delivered={:?} suspected={:?} accepted={:?} \
             ok_sent={:?} cut={:?} cut_ok={:?} held={} pending={} coord={:?} joiners={} unacked={}",
            self.view.id.ltime,
            self.view.id.coord,
            self.view.rank,
            self.n,
            self.delivered,
            self.suspected,
            self.accepted.map(|a| (a.coord, a.n)),
            self.ok_sent.map(|a| (a.coord, a.n)),
            self.cut.as_ref().map(|c| &c.1),
            self.cut_ok_sent.map(|a| (a.coord, a.n)),
            self.buffered(),
            self.pending.len(),
            self.co.as_ref().map(|c| (
                c.at.n,
                c.oks.iter().filter(|o| o.is_some()).count(),
                c.cut_sent
            )),
            self.joiners.len(),
            self.unacked.len(),
        ));
    }
}
