//! Checkers for membership runs: view agreement, virtual synchrony,
//! delivery in the sending view, self-delivery, FIFO without duplicates,
//! nothing invented, and liveness.
//!
//! Each process's history is the list of views it installed, with what it
//! delivered and cast in each. The checks run on the histories at the end
//! (FIFO and invention as deliveries happen).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::event::{EndpointId, ViewId};

const MAGIC: u32 = 0x5653_594e;
/// Bytes of the payload header: magic, sender, index, view tag.
pub const HDR: usize = 24;

/// A payload's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Sender endpoint.
    pub src: EndpointId,
    /// Index in the sender's casts.
    pub index: u32,
    /// Tag of the view the sender cast it in.
    pub view: u32,
}

impl Tag {
    /// Payload bytes: header, then filler derived from it.
    pub fn encode(&self, len: usize) -> Vec<u8> {
        let mut b = Vec::with_capacity(len.max(HDR));
        b.extend_from_slice(&MAGIC.to_be_bytes());
        b.extend_from_slice(&self.src.to_be_bytes());
        b.extend_from_slice(&self.index.to_be_bytes());
        b.extend_from_slice(&self.view.to_be_bytes());
        let mut x = self.src ^ ((self.index as u64) << 20);
        while b.len() < len {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            b.push((x >> 56) as u8);
        }
        b
    }

    /// Reads and verifies a payload.
    pub fn decode(b: &[u8]) -> Option<Tag> {
        if b.len() < HDR || b[0..4] != MAGIC.to_be_bytes() {
            return None;
        }
        let t = Tag {
            src: u64::from_be_bytes(b[4..12].try_into().ok()?),
            index: u32::from_be_bytes(b[12..16].try_into().ok()?),
            view: u32::from_be_bytes(b[16..20].try_into().ok()?),
        };
        (t.encode(b.len()) == b).then_some(t)
    }
}

/// One view as one process lived it.
#[derive(Clone, Debug, Default)]
pub struct Epoch {
    /// The view.
    pub id: ViewId,
    /// Its members.
    pub members: Vec<EndpointId>,
    /// Casts delivered in it: (sender, index), in delivery order.
    pub delivered: Vec<(EndpointId, u32)>,
    /// Casts this process made in it.
    pub cast: Vec<u32>,
    /// The application's state when the view was installed: a
    /// commutative hash of the casts it holds, and their count.
    pub base: (u64, u64),
    /// The state came by transfer with this view (a joiner's first).
    pub transferred: bool,
}

/// Hash of one cast in an application state (summed: order-free).
pub fn mix(src: EndpointId, index: u32) -> u64 {
    let mut x = src ^ ((index as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Collects histories and judges them.
#[derive(Default)]
pub struct Checker {
    /// Per process (by endpoint id), its views in order.
    pub history: BTreeMap<EndpointId, Vec<Epoch>>,
    /// Last index delivered per (receiver, sender).
    last: HashMap<(EndpointId, EndpointId), u32>,
    /// Casts made per sender.
    sent: HashMap<EndpointId, u32>,
    /// Violations found so far.
    pub violations: Vec<String>,
    /// Casts delivered, all processes.
    pub delivered: u64,
    /// Views installed, all processes.
    pub views: u64,
    /// Primary views seen: id and members.
    primaries: BTreeMap<ViewId, Vec<EndpointId>>,
    /// Casts may go out in a later view than the one the application cast
    /// them in (a token layer holds them until the token comes): the
    /// view-of-sending check is off and self-delivery is checked over the
    /// whole run for processes alive at the end.
    pub late_sends: bool,
    /// The application keeps its own casts as it makes them (a stack
    /// that does not deliver them, `discard_own`, under total order):
    /// they sit in its history where it cast them, not where the group
    /// ordered them. Total order compares two processes over the others'
    /// casts only, and state transfer is not judged: a giver's state holds
    /// its own casts before the group ordered them, so a joiner gets them
    /// twice (in the state and delivered), which is what an application
    /// that keeps its own casts at once does to its joiners under total
    /// order.
    pub own_unordered: bool,
}

impl Checker {
    /// `p` installed a view, holding state `base`; `transferred`: it
    /// came with the view by state transfer.
    pub fn view(
        &mut self,
        p: EndpointId,
        id: ViewId,
        members: &[EndpointId],
        base: (u64, u64),
        transferred: bool,
    ) {
        self.views += 1;
        self.history.entry(p).or_default().push(Epoch {
            id,
            members: members.to_vec(),
            base,
            transferred,
            ..Epoch::default()
        });
    }

    /// A view was installed; `primary`: as it says of itself.
    pub fn primary(&mut self, id: ViewId, members: &[EndpointId], primary: bool) {
        if primary {
            self.primaries.entry(id).or_insert_with(|| members.to_vec());
        }
    }

    /// Primary partition: the primary views, in logical-time order, form
    /// one chain: each holds a majority of the one before, and no two
    /// share a logical time.
    pub fn primary_chain(&mut self) {
        let mut prev: Option<(&ViewId, &Vec<EndpointId>)> = None;
        for (id, m) in &self.primaries {
            if let Some((pid, pm)) = prev {
                let have = pm.iter().filter(|x| m.contains(x)).count();
                if pid.ltime == id.ltime || 2 * have <= pm.len() {
                    self.violations.push(format!(
                        "primary partition: view {}.{} {:?} follows primary view {}.{} {:?} \
                         without a majority of it",
                        id.ltime, id.coord, m, pid.ltime, pid.coord, pm
                    ));
                }
            }
            prev = Some((id, m));
        }
    }

    /// `p` cast message `index`.
    pub fn cast(&mut self, p: EndpointId, index: u32) {
        *self.sent.entry(p).or_default() = index + 1;
        match self.history.get_mut(&p).and_then(|h| h.last_mut()) {
            Some(e) => e.cast.push(index),
            None => self
                .violations
                .push(format!("{p} cast message {index} before any view")),
        }
    }

    /// `p` delivered `payload` from the member its stack named `src_id`.
    pub fn deliver(&mut self, p: EndpointId, src_id: EndpointId, payload: &[u8]) {
        self.delivered += 1;
        let Some(t) = Tag::decode(payload) else {
            self.violations
                .push(format!("{p} delivered a corrupt or invented payload"));
            return;
        };
        if t.src != src_id {
            self.violations.push(format!(
                "{p} delivered message {} of {} as coming from {src_id}",
                t.index, t.src
            ));
        }
        if t.index >= self.sent.get(&t.src).copied().unwrap_or(0) {
            self.violations.push(format!(
                "{p} delivered message {} of {} that was never cast",
                t.index, t.src
            ));
        }
        if let Some(l) = self.last.insert((p, t.src), t.index) {
            if t.index <= l {
                self.violations.push(format!(
                    "{p} delivered message {} of {} after {l} (duplicate or out of order)",
                    t.index, t.src
                ));
            }
        }
        match self.history.get_mut(&p).and_then(|h| h.last_mut()) {
            Some(e) => {
                if e.id.tag() != t.view && !self.late_sends {
                    self.violations.push(format!(
                        "{p} delivered message {} of {} in view {}.{}, not the view it was cast in",
                        t.index, t.src, e.id.ltime, e.id.coord
                    ));
                }
                e.delivered.push((t.src, t.index));
            }
            None => self
                .violations
                .push(format!("{p} delivered before any view")),
        }
    }

    /// Total order: in every view, two processes that went on to the same
    /// next view (or both ended in it) delivered their casts in the same
    /// order. Across a partition each side ends the view with the casts
    /// it lacks an order for in its own (deterministic) order, as Isis and
    /// Horus total order do; a process cut off and crashed may have seen
    /// the other side's order.
    pub fn total_order(&mut self) {
        type Seq<'a> = (EndpointId, Option<ViewId>, &'a Vec<(EndpointId, u32)>);
        let mut by_view: HashMap<ViewId, Vec<Seq<'_>>> = HashMap::new();
        for (p, h) in &self.history {
            for (k, e) in h.iter().enumerate() {
                let next = h.get(k + 1).map(|n| n.id);
                by_view
                    .entry(e.id)
                    .or_default()
                    .push((*p, next, &e.delivered));
            }
        }
        for (v, who) in by_view {
            for (i, (p, np, a)) in who.iter().enumerate() {
                let pos: HashMap<&(EndpointId, u32), usize> =
                    a.iter().enumerate().map(|(k, m)| (m, k)).collect();
                for (q, nq, b) in &who[i + 1..] {
                    if np != nq {
                        continue;
                    }
                    let mut last = None;
                    let theirs =
                        |m: &&(EndpointId, u32)| !self.own_unordered || (m.0 != *p && m.0 != *q);
                    for m in b.iter().filter(theirs) {
                        if let Some(&k) = pos.get(m) {
                            if last.is_some_and(|l| k < l) {
                                self.violations.push(format!(
                                    "total order: in view {}.{} {p} and {q} delivered {m:?} in different orders",
                                    v.ltime, v.coord
                                ));
                                break;
                            }
                            last = Some(k);
                        }
                    }
                }
            }
        }
    }

    /// The end-of-run checks. `live` are the processes that should form one
    /// view (alive, not left), `exited` those that left.
    pub fn finish(&mut self, live: &[EndpointId]) {
        // View agreement: one member list per view id.
        let mut lists: HashMap<ViewId, (&Vec<EndpointId>, EndpointId)> = HashMap::new();
        for (p, h) in &self.history {
            for e in h {
                match lists.get(&e.id) {
                    Some((m, q)) if *m != &e.members => self.violations.push(format!(
                        "view {}.{}: {p} has members {:?}, {q} has {:?}",
                        e.id.ltime, e.id.coord, e.members, m
                    )),
                    Some(_) => {}
                    None => {
                        lists.insert(e.id, (&e.members, *p));
                    }
                }
                if !e.members.contains(p) {
                    self.violations.push(format!(
                        "{p} installed view {}.{} without being in it",
                        e.id.ltime, e.id.coord
                    ));
                }
            }
        }
        // Virtual synchrony: processes that go from view v to the same
        // next view delivered the same casts in v.
        let mut moves: HashMap<(ViewId, ViewId), Vec<(EndpointId, &Epoch)>> = HashMap::new();
        for (p, h) in &self.history {
            for w in h.windows(2) {
                moves
                    .entry((w[0].id, w[1].id))
                    .or_default()
                    .push((*p, &w[0]));
            }
        }
        let cumulative = |e: &Epoch| {
            let h = e
                .delivered
                .iter()
                .fold(e.base.0, |h, (s, i)| h.wrapping_add(mix(*s, *i)));
            (h, e.base.1 + e.delivered.len() as u64)
        };
        for ((v, w), who) in &moves {
            let (p0, e0) = who[0];
            let set0: BTreeSet<&(EndpointId, u32)> = e0.delivered.iter().collect();
            // State transfer: a joiner's state and its deliveries in its
            // first view add up to what the member that gave it the state
            // (rank 0) held at the end of that view.
            let giver = who
                .iter()
                .find(|(p, e)| e.members.first() == Some(p))
                .filter(|_| !self.own_unordered);
            for (p, e) in who.iter().filter(|(_, e)| e.transferred) {
                if let Some((g, ge)) = giver {
                    if cumulative(e) != cumulative(ge) {
                        self.violations.push(format!(
                            "state transfer: joiner {p} ended view {}.{} holding (hash, count) {:?}, \
                             the state's giver {g} {:?}",
                            v.ltime,
                            v.coord,
                            cumulative(e),
                            cumulative(ge)
                        ));
                    }
                }
            }
            for (p, e) in &who[1..] {
                if e.transferred || e0.transferred {
                    continue;
                }
                let set: BTreeSet<&(EndpointId, u32)> = e.delivered.iter().collect();
                if set != set0 {
                    let only0: Vec<_> = set0.difference(&set).take(5).collect();
                    let only: Vec<_> = set.difference(&set0).take(5).collect();
                    self.violations.push(format!(
                        "virtual synchrony: {p0} and {p} went from view {}.{} to {}.{} \
                         but delivered different sets (only {p0}: {only0:?}; only {p}: {only:?})",
                        v.ltime, v.coord, w.ltime, w.coord
                    ));
                }
            }
            // Self-delivery: a process that moves on delivered its own casts.
            for (p, e) in who.iter().filter(|_| !self.late_sends) {
                let own: BTreeSet<u32> = e
                    .delivered
                    .iter()
                    .filter(|(s, _)| s == p)
                    .map(|(_, i)| *i)
                    .collect();
                if let Some(i) = e.cast.iter().find(|i| !own.contains(i)) {
                    self.violations.push(format!(
                        "self-delivery: {p} cast message {i} in view {}.{} but did not deliver it there",
                        v.ltime, v.coord
                    ));
                }
            }
        }
        if self.late_sends {
            for p in live {
                let Some(h) = self.history.get(p) else {
                    continue;
                };
                let own: BTreeSet<u32> = h
                    .iter()
                    .flat_map(|e| e.delivered.iter())
                    .filter(|(s, _)| s == p)
                    .map(|(_, i)| *i)
                    .collect();
                let cast = h.iter().flat_map(|e| e.cast.iter());
                if let Some(i) = cast.clone().find(|i| !own.contains(i)) {
                    self.violations.push(format!(
                        "self-delivery: {p} cast message {i} and never delivered it"
                    ));
                }
            }
        }
        // Liveness: the live processes ended in one view of exactly them.
        let mut live_sorted = live.to_vec();
        live_sorted.sort_unstable();
        let mut last: Option<(EndpointId, &Epoch)> = None;
        for p in live {
            let Some(e) = self.history.get(p).and_then(|h| h.last()) else {
                self.violations
                    .push(format!("liveness: {p} is alive but never got a view"));
                continue;
            };
            let mut m = e.members.clone();
            m.sort_unstable();
            if m != live_sorted {
                self.violations.push(format!(
                    "liveness: {p} ended in view {}.{} with members {:?}, live are {:?}",
                    e.id.ltime, e.id.coord, e.members, live_sorted
                ));
            }
            if let Some((q, f)) = last {
                if f.id != e.id {
                    self.violations.push(format!(
                        "liveness: {q} ended in view {}.{}, {p} in {}.{}",
                        f.id.ltime, f.id.coord, e.id.ltime, e.id.coord
                    ));
                }
            }
            last = Some((*p, e));
        }
    }
}
