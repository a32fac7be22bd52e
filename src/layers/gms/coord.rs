//! The coordinator's side of a flush: starting it, the cut, and the next
//! view (with its primary-partition candidacy).

use super::msg::{Attempt, Ctrl, ViewMsg};
use super::send_ctrl;
use super::state::{Action, Member};
use crate::event::{Addr, EndpointId, PubKey, Rank, View};
use crate::layer::{Cx, DropReason};

/// The coordinator's side of one flush attempt.
pub(super) struct Coord {
    pub at: Attempt,
    pub participants: Vec<bool>,
    pub leavers: Vec<bool>,
    pub joiners: Vec<(EndpointId, Addr, Option<PubKey>)>,
    pub oks: Vec<Option<Vec<u64>>>,
    pub cut_sent: bool,
    pub cut_oks: Vec<bool>,
    /// This flush ends the view so that it merges into the view
    /// coordinated at this address.
    pub merge_into: Option<Addr>,
    /// This flush takes in another view, flushed already.
    pub merge_from: Option<MergeIn>,
    /// The newest primary view a participant reported: id, members.
    pub newest_primary: ((u64, u64), Vec<EndpointId>),
}

/// A flushed view waiting to be merged in.
#[derive(Clone, Debug)]
pub(super) struct MergeIn {
    pub at: Attempt,
    pub members: Vec<EndpointId>,
    pub addrs: Vec<String>,
    /// Their public keys (secure groups; empty otherwise).
    pub keys: Vec<PubKey>,
    /// The last primary view that side knows: id and members.
    pub last_primary_id: (u64, u64),
    pub last_primary: Vec<EndpointId>,
}

impl Coord {
    /// Participants that stay, in rank order, with their addresses and
    /// (secure groups) keys.
    pub fn survivors(&self, v: &View) -> (Vec<EndpointId>, Vec<String>, Vec<PubKey>) {
        let mut members = Vec::new();
        let mut addrs = Vec::new();
        let mut keys = Vec::new();
        for r in 0..v.size() {
            if self.participants[r] && !self.leavers[r] {
                members.push(v.members[r]);
                addrs.push(v.addrs.get(r).map(|a| a.to_string()).unwrap_or_default());
                if let Some(k) = v.keys.get(r) {
                    keys.push(*k);
                }
            }
        }
        (members, addrs, keys)
    }
}

impl Member {
    pub(super) fn start_flush(&mut self, merge_into: Option<Addr>, cx: &mut Cx<'_>) {
        self.attempts += 1;
        let at = Attempt {
            ltime: self.view.id.ltime,
            vcoord: self.view.id.coord,
            coord: self.me(),
            n: self.attempts,
        };
        let participants: Vec<bool> = self.suspected.iter().map(|s| !s).collect();
        let mut leavers: Vec<bool> = self
            .leave_req
            .iter()
            .zip(&participants)
            .map(|(l, p)| *l && *p)
            .collect();
        leavers[self.me() as usize] = self.want_leave;
        let failed: Vec<Rank> = (0..self.n as Rank)
            .filter(|r| self.suspected[*r as usize])
            .collect();
        let parts: Vec<Rank> = (0..self.n as Rank)
            .filter(|r| participants[*r as usize])
            .collect();
        self.co = Some(Coord {
            at,
            participants,
            leavers,
            joiners: self.joiners.clone(),
            oks: vec![None; self.n],
            cut_sent: false,
            cut_oks: vec![false; self.n],
            merge_into,
            merge_from: self.merging_in.clone(),
            newest_primary: (self.last_primary_id, self.last_primary.clone()),
        });
        let f = Ctrl::Flush {
            at,
            failed,
            participants: parts.clone(),
        };
        for p in parts {
            send_ctrl(cx, p, &f);
        }
    }

    pub(super) fn on_flush_ok(
        &mut self,
        src: Rank,
        at: Attempt,
        delivered: Vec<u64>,
        cx: &mut Cx<'_>,
    ) -> Option<Action> {
        let n = self.n;
        let co = self.co.as_mut().filter(|c| c.at == at)?;
        if delivered.len() != n || !co.participants[src as usize] {
            cx.dropped(DropReason::BadField);
            return None;
        }
        co.oks[src as usize] = Some(delivered);
        let all = (0..n).all(|r| !co.participants[r] || co.oks[r].is_some());
        if !all || co.cut_sent {
            return None;
        }
        co.cut_sent = true;
        let mut cut = vec![0u64; n];
        let mut holder = vec![at.coord; n];
        for s in 0..n {
            for r in 0..n {
                if let Some(d) = &co.oks[r] {
                    if d[s] > cut[s] {
                        cut[s] = d[s];
                        holder[s] = r as Rank;
                    }
                }
            }
        }
        let msg = Ctrl::Cut { at, cut, holder };
        for r in 0..n {
            if co.participants[r] {
                send_ctrl(cx, r as Rank, &msg);
            }
        }
        None
    }

    pub(super) fn on_cut_ok(&mut self, src: Rank, at: Attempt, cx: &mut Cx<'_>) -> Option<Action> {
        let n = self.n;
        let co = self.co.as_mut().filter(|c| c.at == at && c.cut_sent)?;
        if !co.participants[src as usize] {
            return None;
        }
        co.cut_oks[src as usize] = true;
        if !(0..n).all(|r| !co.participants[r] || co.cut_oks[r]) {
            return None;
        }
        // Everyone delivered exactly the cut.
        let co = self.co.take()?;
        match co.merge_into.clone() {
            Some(to) => {
                self.merge_ready(co, to, cx);
                None
            }
            None => self.make_view(co, cx),
        }
    }

    /// The next view after flush `co`, sent to everyone concerned.
    pub(super) fn make_view(&mut self, co: Coord, cx: &mut Cx<'_>) -> Option<Action> {
        let n = self.n;
        let at = co.at;
        let v = &self.view;
        let (mut members, mut addrs, mut keys) = co.survivors(v);
        let secure = self.sec.is_some();
        for (id, a, k) in &co.joiners {
            if members.contains(id) {
                continue;
            }
            match (secure, k) {
                (true, Some(k)) => keys.push(*k),
                // Cannot happen: a secure coordinator admits only joiners
                // with keys.
                (true, None) => continue,
                (false, _) => {}
            }
            members.push(*id);
            addrs.push(a.to_string());
        }
        let mut from = vec![at];
        let mut merged = Vec::new();
        let mut ltime = v.id.ltime + 1;
        if let Some(m) = &co.merge_from {
            for (i, (id, a)) in m.members.iter().zip(&m.addrs).enumerate() {
                if members.contains(id) {
                    continue;
                }
                if secure {
                    // Checked when the merge came in: one key per member.
                    let Some(k) = m.keys.get(i) else {
                        continue;
                    };
                    keys.push(*k);
                }
                members.push(*id);
                addrs.push(a.clone());
            }
            from.push(m.at);
            merged = vec![(v.id.ltime, v.id.coord), (m.at.ltime, m.at.vcoord)];
            ltime = ltime.max(m.at.ltime + 1);
        }
        // Primary partition: the view is a candidate if it holds a
        // majority of the newest primary view any participant (or the
        // other side of a merge) knows; it becomes primary once members
        // holding that majority have installed it.
        let (mut lp_id, mut lp) = co.newest_primary.clone();
        if let Some(m) = &co.merge_from {
            if m.last_primary_id > lp_id {
                (lp_id, lp) = (m.last_primary_id, m.last_primary.clone());
            }
        }
        let primary = self.cfg.primary && Member::majority(&members, &lp);
        let (last_primary_id, last_primary) = (lp_id, lp);
        let me_id = v.me();
        let mut vm = ViewMsg {
            from,
            ltime,
            vcoord: me_id,
            members,
            addrs,
            merged,
            reply_to: self.addr.to_string(),
            primary,
            last_primary_id,
            last_primary,
            keys,
            sealed: Vec::new(),
            sealer: None,
        };
        if let Some(sec) = &self.sec {
            if sec.seal_view(&mut vm).is_err() {
                // A member without a usable key: cannot happen for keys
                // that were authorized (they are valid points).
                cx.dropped(DropReason::BadField);
                return None;
            }
        }
        // Everyone but this member gets the view: new members to install
        // it, leavers to learn they are out.
        let mut to: Vec<(EndpointId, Addr)> = Vec::new();
        for (i, id) in vm.members.iter().enumerate() {
            if *id != me_id {
                to.push((*id, Addr::from(vm.addrs[i].as_str())));
            }
        }
        for r in 0..n {
            if co.leavers[r] && r != self.me() as usize {
                if let Some(a) = v.addrs.get(r) {
                    to.push((v.members[r], a.clone()));
                }
            }
        }
        self.unacked = to;
        self.sent_view = Some(vm.clone());
        self.resend_view(cx);
        if vm.members.contains(&me_id) {
            Some(Action::Install(Box::new(vm)))
        } else {
            self.leaving_done = true;
            Some(Action::Depart)
        }
    }

    /// Rank 0 of a candidate view: `id` installed it. Once members
    /// holding a majority of the last primary view have, it is primary:
    /// tell everyone.
    pub(super) fn on_installed(&mut self, id: EndpointId, cx: &mut Cx<'_>) {
        if !self.proposed || self.primary_now || self.me() != 0 {
            return;
        }
        if self.last_primary.contains(&id) && !self.confirming.contains(&id) {
            self.confirming.push(id);
        }
        if 2 * self.confirming.len() > self.last_primary.len() {
            let p = Ctrl::Primary {
                ltime: self.view.id.ltime,
                vcoord: self.view.id.coord,
            };
            for r in 0..self.n as Rank {
                send_ctrl(cx, r, &p);
            }
            self.proposed = false;
        }
    }
}
