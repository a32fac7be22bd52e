//! The simulated processes' application: casting (one at a time or in
//! bursts) while members, recording what each delivers for the checker,
//! taking state transfers, and the intruder that tries to join a secure
//! group without the key.

use tutti_drivers::Msg;

use super::check::{self, Tag, HDR};
use super::{Ev, Life, Sim, MS};
use crate::engine::Packer;
use crate::event::{EndpointId, Up, View};

impl Sim<'_> {
    pub(super) fn cast(&mut self, i: usize) {
        let p = &mut self.procs[i];
        if p.life != Life::Alive || p.leaving || p.intruder || p.casts >= self.plan.casts {
            return;
        }
        let Some(v) = p.view.clone() else {
            return;
        };
        if p.stack.ready() {
            if self.plan.burst > 1 {
                self.cast_burst(i, &v);
            } else {
                self.cast_one(i, &v);
            }
            self.pump(i);
        }
        let gap = self.rng.range(1, self.plan.cast_gap_ns);
        self.at(self.now.plus_ns(gap), Ev::Cast(i));
    }

    /// Cast `index` of process `i`, tagged for the checker.
    fn next_cast(&mut self, i: usize, index: u32, v: &View) -> Option<Msg> {
        let b = self.next_bytes(i, index, v);
        self.procs[i].tx.alloc_copy(&b).ok()
    }

    /// The bytes of cast `index` of process `i`, tagged for the checker.
    fn next_bytes(&mut self, i: usize, index: u32, v: &View) -> Vec<u8> {
        let len = HDR + self.rng.below(200) as usize;
        let tag = Tag {
            src: self.procs[i].id,
            index,
            view: v.id.tag(),
        };
        tag.encode(len)
    }

    /// Process `i`'s application takes cast `b` of `src_id` (delivered,
    /// or its own when the stack does not deliver those).
    fn take(&mut self, i: usize, src_id: EndpointId, b: &[u8]) {
        let id = self.procs[i].id;
        self.check.deliver(id, src_id, b);
        if let Some(t) = Tag::decode(b) {
            // A giver that kept its own casts before they were ordered
            // hands them over in its state, and the joiner then has them
            // delivered as well (see `Checker::own_unordered`).
            if !self.procs[i].state.insert((t.src, t.index)) && !self.check.own_unordered {
                self.check.violations.push(format!(
                    "{id} delivered message {} of {} that its state already held",
                    t.index, t.src
                ));
            }
        }
    }

    /// A cast (`b`) was taken (or refused for `kind`).
    fn casted(&mut self, i: usize, b: &[u8], refused: Option<crate::stack::SendErrorKind>) {
        let p = &mut self.procs[i];
        match refused {
            None => {
                p.casts += 1;
                let (id, n) = (p.id, p.casts - 1);
                self.check.cast(id, n);
                if self.plan.discard_own {
                    // Its own casts never come back up: it keeps each at
                    // once (self-delivery, as the application sees it).
                    self.take(i, id, b);
                }
            }
            Some(crate::stack::SendErrorKind::WouldBlock) => {}
            Some(kind) => self
                .check
                .violations
                .push(format!("{}: cast refused: {kind}", p.id)),
        }
    }

    fn cast_one(&mut self, i: usize, v: &View) {
        let Some(m) = self.next_cast(i, self.procs[i].casts, v) else {
            return;
        };
        let b = m.to_vec();
        let r = self.procs[i].stack.cast(self.now, m).err().map(|e| e.kind);
        self.casted(i, &b, r);
    }

    /// Up to `burst` casts as one batch (`cast_batch`: the fast path packs
    /// them and takes them as runs). Each is tagged with the index it gets
    /// if taken; those not taken are dropped (the next burst makes them
    /// again).
    fn cast_burst(&mut self, i: usize, v: &View) {
        let mut q = std::collections::VecDeque::new();
        let first = self.procs[i].casts;
        let mut packer: Option<Packer> = None;
        for k in 0..self.plan.burst {
            if first + k >= self.plan.casts {
                break;
            }
            if !self.plan.in_place {
                match self.next_cast(i, first + k, v) {
                    Some(m) => q.push_back(m),
                    None => break,
                }
                continue;
            }
            // Written in place, into as many frames as the burst takes.
            let b = self.next_bytes(i, first + k, v);
            if let Some(room) = packer.as_mut().and_then(|p| p.cast(b.len())) {
                room.copy_from_slice(&b);
                continue;
            }
            // Full (or none yet): the next frame.
            if let Some(full) = packer.take() {
                full.finish(&mut q);
            }
            packer = self.procs[i].tx.alloc().map(Packer::new);
            match packer.as_mut().and_then(|p| p.cast(b.len())) {
                Some(room) => room.copy_from_slice(&b),
                None => break,
            }
        }
        if let Some(p) = packer {
            p.finish(&mut q);
        }
        let bytes: Vec<Vec<u8>> = q.iter().map(|m| m.to_vec()).collect();
        let (n, refused) = match self.procs[i].stack.cast_batch(self.now, &mut q) {
            Ok(n) => (n, None),
            Err((n, e)) => (n, Some(e.kind)),
        };
        for b in &bytes[..n] {
            self.casted(i, b, None);
        }
        if refused.is_some() {
            let b = bytes.get(n).map_or(&[][..], |b| b);
            self.casted(i, b, refused);
        }
    }

    /// Drains process `i`'s events and frames until both are empty.
    pub(super) fn pump(&mut self, i: usize) {
        loop {
            let mut moved = false;
            while let Some(ev) = self.procs[i].stack.poll_event() {
                moved = true;
                self.app(i, ev);
            }
            while let Some((dst, frame)) = self.procs[i].stack.poll_transmit() {
                moved = true;
                self.route(i, dst, frame);
            }
            if !moved {
                break;
            }
        }
        if let Some(t) = self.procs[i].stack.poll_timeout() {
            let t = t.max(self.now);
            if self.procs[i].wake != Some(t) {
                self.procs[i].wake = Some(t);
                self.at(t, Ev::Wake(i));
            }
        }
    }

    /// What the intruder sees: it may found a group of its own, but no
    /// honest process may ever be in a view with it.
    fn intruder_app(&mut self, i: usize, ev: Up) {
        match ev {
            Up::View(v) => {
                let honest: Vec<EndpointId> = self
                    .procs
                    .iter()
                    .filter(|p| !p.intruder)
                    .map(|p| p.id)
                    .collect();
                if v.members.iter().any(|m| honest.contains(m)) {
                    self.check.violations.push(format!(
                        "the intruder installed a view with honest members: {:?}",
                        v.members
                    ));
                }
                self.procs[i].view = Some(v);
            }
            Up::Refused(_) => self.intruder_refused = true,
            Up::Exit => {
                self.procs[i].life = Life::Left;
                self.procs[i].view = None;
            }
            _ => {}
        }
    }

    fn app(&mut self, i: usize, ev: Up) {
        if self.procs[i].intruder {
            self.intruder_app(i, ev);
            return;
        }
        let id = self.procs[i].id;
        match ev {
            Up::View(v) => {
                if let Some(x) = self.intruder.filter(|x| v.members.contains(x)) {
                    self.check
                        .violations
                        .push(format!("{id} installed a view with the intruder {x}"));
                }
                if self.plan.secure && v.key.is_none() {
                    self.check
                        .violations
                        .push(format!("{id} installed a view without a group key"));
                }
                let p = &mut self.procs[i];
                let base = p
                    .state
                    .iter()
                    .fold(0u64, |h, (s, x)| h.wrapping_add(check::mix(*s, *x)));
                let transferred = std::mem::take(&mut p.transferred);
                self.delivery = crate::event::fnv1a(self.delivery ^ id, &v.id.ltime.to_le_bytes());
                self.delivery_others =
                    crate::event::fnv1a(self.delivery_others ^ id, &v.id.ltime.to_le_bytes());
                let n = p.state.len() as u64;
                self.check
                    .view(id, v.id, &v.members, (base, n), transferred);
                if self.plan.primary {
                    self.check.primary(v.id, &v.members, v.primary);
                }
                let first = self.procs[i].view.is_none();
                self.procs[i].view = Some(v);
                if first {
                    let gap = self.rng.range(1, self.plan.cast_gap_ns);
                    self.at(self.now.plus_ns(gap), Ev::Cast(i));
                }
            }
            Up::Block if self.plan.app_block_ok => {
                let d = self.rng.range(0, 5 * MS);
                self.at(self.now.plus_ns(d), Ev::BlockOk(i));
            }
            Up::Cast { src, msg, .. } => {
                let src_id = self.procs[i]
                    .view
                    .as_ref()
                    .and_then(|v| v.members.get(src as usize).copied())
                    .unwrap_or(0);
                let b = msg.to_vec();
                self.delivery = crate::event::fnv1a(self.delivery ^ id ^ src_id, &b);
                if src_id != id {
                    self.delivery_others =
                        crate::event::fnv1a(self.delivery_others ^ id ^ src_id, &b);
                } else {
                    self.own_delivered += 1;
                    if self.plan.discard_own {
                        self.check
                            .violations
                            .push(format!("{id} was delivered its own cast (discard_own)"));
                    }
                }
                self.take(i, src_id, &b);
            }
            Up::Primary => {
                if let Some(v) = &self.procs[i].view {
                    self.check.primary(v.id, &v.members, true);
                }
            }
            Up::GetState => {
                let mut b = Vec::with_capacity(12 * self.procs[i].state.len());
                for (s, x) in &self.procs[i].state {
                    b.extend_from_slice(&s.to_be_bytes());
                    b.extend_from_slice(&x.to_be_bytes());
                }
                self.procs[i]
                    .stack
                    .handle_down(self.now, crate::event::Down::State(b.into()));
            }
            Up::State(st) => {
                let p = &mut self.procs[i];
                p.state.clear();
                p.transferred = true;
                if let Some(b) = st {
                    if b.len() % 12 != 0 {
                        self.check
                            .violations
                            .push(format!("{id}: state of {} bytes", b.len()));
                    }
                    for c in b.chunks_exact(12) {
                        let s = u64::from_be_bytes(c[0..8].try_into().unwrap_or_default());
                        let x = u32::from_be_bytes(c[8..12].try_into().unwrap_or_default());
                        p.state.insert((s, x));
                    }
                }
            }
            Up::Exit => {
                self.procs[i].life = Life::Left;
                self.procs[i].view = None;
            }
            _ => {}
        }
    }
}
