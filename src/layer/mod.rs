//! The `Layer` trait (Horus's HCPI in Rust) and the context a layer acts
//! through.
//!
//! A layer is a small state machine. It gets events from above (`down`) and
//! from below (`up`), pushes or pops its own header, and emits events in
//! either direction through its [`Cx`]. It arms timers by asking `Cx` and
//! gets them back as [`Down::Timer`]. It never performs I/O and never reads
//! a clock: [`Cx::now`] is the time the caller of the stack passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use tutti_drivers::{Msg, Pool};

use crate::event::{Dest, Down, Rank, Time, Up};
use crate::wire::fast::Compact;

mod fast;
pub use fast::{FastCast, FastRun};

/// Something a layer provides to the layers above it, or needs from the
/// layers below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prop {
    /// Frames carry a group, a stack, a sender and a destination.
    Framing,
    /// Every message sent is delivered once (retransmission, no duplicates).
    Reliable,
    /// Messages of one sender are delivered in the order sent.
    Fifo,
    /// Stability is known and retransmit buffers are collected.
    Stability,
    /// Membership control frames are signed by authorized keys.
    Authenticated,
    /// Frames are encrypted and authenticated under the view's group key.
    Encrypted,
    /// Messages larger than one buffer are carried.
    Large,
    /// Members that fall silent are reported as suspected.
    FailureDetection,
    /// Views change with membership (joins, leaves, failures), with
    /// virtual synchrony.
    Membership,
    /// Every member delivers the casts of a view in the same order.
    TotalOrder,
    /// Joiners get the application's state with their first view.
    StateTransfer,
}

impl Prop {
    /// Name used in specs and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Prop::Framing => "framing",
            Prop::Reliable => "reliable",
            Prop::Fifo => "fifo",
            Prop::Stability => "stability",
            Prop::Authenticated => "authenticated-control",
            Prop::Encrypted => "encryption",
            Prop::Large => "large-messages",
            Prop::FailureDetection => "failure-detection",
            Prop::Membership => "membership",
            Prop::TotalOrder => "total-order",
            Prop::StateTransfer => "state-transfer",
        }
    }
}

impl fmt::Display for Prop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a layer is, for spec checking.
#[derive(Debug)]
pub struct LayerInfo {
    /// Name in stack specs.
    pub name: &'static str,
    /// Properties that some layer below must provide.
    pub needs: &'static [Prop],
    /// Properties that some layer above must provide (for example `nak`
    /// relies on a stability layer above it to collect its buffers).
    pub needs_above: &'static [Prop],
    /// Properties this layer adds for the layers above.
    pub provides: &'static [Prop],
    /// Must sit at the bottom of the stack.
    pub bottom: bool,
    /// One line on what the layer does.
    pub about: &'static str,
}

/// A micro-protocol layer.
pub trait Layer: Send + 'static {
    /// Static description (name, needs, provides).
    fn info(&self) -> &'static LayerInfo;

    /// An event from above (or a timer this layer armed).
    fn down(&mut self, ev: Down, cx: &mut Cx<'_>);

    /// An event from below.
    fn up(&mut self, ev: Up, cx: &mut Cx<'_>);

    /// Whether an application cast entering now would go out at once
    /// rather than wait in this layer (window open).
    fn ready(&self) -> bool {
        true
    }

    /// Messages this layer holds (retransmit buffers, reassembly, backlog).
    fn buffered(&self) -> usize {
        0
    }

    /// Appends a one-line description of the layer's state (diagnostics:
    /// the simulator prints it when a run fails).
    fn dump(&self, _out: &mut String) {}

    // The Protocol Accelerator (see `stack::accel`). Each layer states its
    // own common case; the composition inlines them into the fast path.
    // A layer has a common case when it names its tag (`fast_tag`); the
    // default `None` says it has none, and a stack holding such a layer
    // takes the full path for every message. The other defaults are those
    // of a layer that does nothing to a cast (always its common case).

    /// The header bytes this layer puts in front of a data cast in its
    /// common case (`Some(&[])`: none). A compact frame implies them.
    fn fast_tag(&self) -> Option<&'static [u8]> {
        None
    }

    /// Told once, at build: the common-case tags of the layers above
    /// (nearest first) and the payload bytes of a control buffer.
    fn fast_setup(&mut self, _above: &[u8], _ctl_capacity: usize) {}

    /// Whether a cast of `msg` entering now is this layer's common case,
    /// including its own delivery coming back up. No side effects.
    fn fast_down_ok(&self, _msg: &Msg) -> bool {
        true
    }

    /// This layer's part of a common-case cast: what `down(Cast)` does,
    /// without the header.
    fn fast_down(&mut self, _fc: &mut FastCast, _cx: &mut Cx<'_>) {}

    /// Whether cast `seq` of `src`, arriving in the compact format, is
    /// this layer's common case. No side effects.
    fn fast_up_ok(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    /// This layer's part of delivering it: what `up(Cast)` does, without
    /// the header. `msg` holds the message (always `Some` when called);
    /// the layer leaves it there to pass it up, or takes it when it keeps
    /// it (it delivers later through [`Cx::up`]) or drops it. By reference,
    /// so that a layer that only looks costs no move of the message.
    fn fast_up(&mut self, _src: Rank, _seq: u64, _msg: &mut Option<Msg>, _cx: &mut Cx<'_>) {}

    /// Whether this layer's `fast_up` for cast `seq` of `src` may run after
    /// the cast has reached the application (the Accelerator's
    /// post-processing, see `stack::accel`): it leaves the message where it
    /// is and emits nothing (it may arm timers, and the layer that keeps
    /// the cast takes the handle put aside for it, [`Cx::posting`]).
    /// No side effects. The default, for a layer with its own `fast_up`
    /// that does not say, is no; [`Layer::fast_up`]'s default does nothing
    /// and a layer that keeps it says yes.
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        false
    }

    /// Bottom layer: reads a compact frame's header, checked against the
    /// view (sender, view, own loopback). `None` from other layers.
    fn fast_parse(&self, _frame: &[u8]) -> Option<Result<(Rank, Compact), DropReason>> {
        None
    }

    /// The rest of `fast_down` for the layer that numbered a fast-path
    /// cast (it set `own_due`), run once the frame has left the stack:
    /// bookkeeping that need not delay the frame (the engine hands it to
    /// the driver in between). `fc.msg` is the payload again (the frame's
    /// own handle advanced past the header, or the message when packed);
    /// the layer hands the own delivery on in `fc.own` (the layers above
    /// see it come up from there).
    fn fast_sent(&mut self, _fc: &mut FastCast, _cx: &mut Cx<'_>) {}

    /// Sends what this layer gathered during a batch of casts (`com` packs
    /// the casts of a batch into frames).
    fn fast_flush(&mut self, _cx: &mut Cx<'_>) {}

    // Runs: a batch's consecutive casts, or a packed frame's, taken as one
    // run by every layer at once (numbered, kept, counted and delivered
    // together) instead of one at a time. A layer that takes runs says so
    // with `fast_run_take` (sending) and `fast_up_run_ok` (receiving);
    // the defaults take none, and the stack then goes one cast at a time.
    // A run is the same protocol as its casts one by one: the same frames,
    // deliveries and state (`tests/accel.rs` checks it both ways).

    /// How many casts from the front of `msgs` this layer takes, now, as
    /// one run of a batch: each its common case in turn (`fast_down_ok`
    /// as it would find each once those before it went down). 0: none
    /// (the default).
    fn fast_run_take(&self, _msgs: &[Msg]) -> usize {
        0
    }

    /// The numbering layer: who sends its next cast, and the number that
    /// cast gets.
    fn fast_next_cast(&self) -> Option<(Rank, u64)> {
        None
    }

    /// This layer's part of a run of casts: what `fast_down` does for
    /// each in turn.
    fn fast_down_run(&mut self, _run: &mut FastRun<'_>, _cx: &mut Cx<'_>) {}

    /// `fast_sent` for a run (the numbering layer: keeping the casts).
    fn fast_sent_run(&mut self, _run: &mut FastRun<'_>, _cx: &mut Cx<'_>) {}

    /// Whether casts `seq..seq + n` of `src`, arriving together, are each
    /// this layer's common case in turn (as `fast_up_ok` finds each one
    /// once those before it went up), with none of them dropped here. No
    /// side effects. Default: no (one at a time).
    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        false
    }

    /// This layer's part of delivering casts `seq..seq + n` of `src`: what
    /// `fast_up` does for each in turn (the layer that keeps casts takes
    /// their handles with [`Cx::run_keep`]; none of them is dropped).
    fn fast_up_run(&mut self, _src: Rank, _seq: u64, _n: u64, _cx: &mut Cx<'_>) {}

    /// How many casts of `src` from `seq` on this layer takes in a run
    /// before and including the first one that makes it emit an event (a
    /// run is cut there, so that what it emits comes where the one-at-a-
    /// time path puts it). Default: no limit.
    fn fast_run_quiet(&self, _src: Rank, _seq: u64) -> u64 {
        u64::MAX
    }
}

/// Why a frame (or a layer's header) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the headers it must hold.
    Truncated,
    /// Not a tutti frame.
    BadMagic,
    /// A wire version this build does not speak.
    BadVersion,
    /// Reserved bits or bytes not zero.
    Reserved,
    /// For another group.
    WrongGroup,
    /// From a member running a different stack.
    WrongStack,
    /// From another view.
    WrongView,
    /// Sender or destination rank outside the view.
    BadRank,
    /// Point-to-point frame addressed to another member.
    NotForMe,
    /// Our own multicast looped back.
    OwnFrame,
    /// A layer header with an unknown type.
    UnknownTag,
    /// A header field with a value that cannot be right.
    BadField,
    /// A message already delivered.
    Duplicate,
    /// A sequence number too far ahead of the receive window.
    OutOfWindow,
    /// A fragment out of sequence.
    BadFragment,
    /// A message larger than this endpoint accepts.
    TooLarge,
    /// No buffer was free to handle the frame.
    NoBuffer,
    /// Arrived before any view was installed.
    NoView,
    /// A control frame without a valid signature.
    BadSignature,
    /// Signed by a key that is not authorized in the group.
    Unauthorized,
    /// An encrypted frame that does not authenticate under the view's key
    /// (forged, corrupted, or from a process without the key).
    Forged,
    /// An encrypted frame whose counter was seen already (a replay).
    Replayed,
    /// The view carries no group key (a secure stack fails closed).
    NoKey,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 23] = [
        DropReason::Truncated,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::Reserved,
        DropReason::WrongGroup,
        DropReason::WrongStack,
        DropReason::WrongView,
        DropReason::BadRank,
        DropReason::NotForMe,
        DropReason::OwnFrame,
        DropReason::UnknownTag,
        DropReason::BadField,
        DropReason::Duplicate,
        DropReason::OutOfWindow,
        DropReason::BadFragment,
        DropReason::TooLarge,
        DropReason::NoBuffer,
        DropReason::NoView,
        DropReason::BadSignature,
        DropReason::Unauthorized,
        DropReason::Forged,
        DropReason::Replayed,
        DropReason::NoKey,
    ];

    /// Counter name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadVersion => "bad_version",
            DropReason::Reserved => "reserved_bits",
            DropReason::WrongGroup => "wrong_group",
            DropReason::WrongStack => "wrong_stack",
            DropReason::WrongView => "wrong_view",
            DropReason::BadRank => "bad_rank",
            DropReason::NotForMe => "not_for_me",
            DropReason::OwnFrame => "own_frame",
            DropReason::UnknownTag => "unknown_tag",
            DropReason::BadField => "bad_field",
            DropReason::Duplicate => "duplicate",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::BadFragment => "bad_fragment",
            DropReason::TooLarge => "too_large",
            DropReason::NoBuffer => "no_buffer",
            DropReason::NoView => "no_view",
            DropReason::BadSignature => "bad_signature",
            DropReason::Unauthorized => "unauthorized",
            DropReason::Forged => "forged",
            DropReason::Replayed => "replayed",
            DropReason::NoKey => "no_key",
        }
    }

    /// Whether this is an attack or a bug somewhere, rather than the normal
    /// result of a lossy network (duplicates, own loopback, no buffer).
    pub fn is_malformed(self) -> bool {
        !matches!(
            self,
            DropReason::Duplicate
                | DropReason::OwnFrame
                | DropReason::NoBuffer
                | DropReason::NoView
        )
    }
}

/// Dropped frames and headers, counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    counts: [u64; DropReason::ALL.len()],
}

impl Drops {
    /// Counts one drop.
    #[inline]
    pub fn add(&mut self, r: DropReason) {
        self.counts[r as usize] += 1;
    }

    /// Adds another set of counters to this one.
    pub fn merge(&mut self, other: &Drops) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// Drops for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        self.counts[r as usize]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Drops that point to malformed or hostile input.
    pub fn malformed(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| r.is_malformed())
            .map(|r| self.get(*r))
            .sum()
    }

    /// Non-zero counters as (name, count).
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .filter(|r| self.get(**r) > 0)
            .map(|r| (r.name(), self.get(*r)))
    }
}

impl fmt::Display for Drops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, n) in self.nonzero() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{name}={n}")?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Protocol activity counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the network.
    pub frames_out: u64,
    /// Frames received from the network.
    pub frames_in: u64,
    /// Messages retransmitted in answer to NAKs.
    pub retransmits: u64,
    /// NAK requests sent.
    pub naks: u64,
    /// Status / ack / gossip control messages sent.
    pub control: u64,
    /// Control messages not sent because no buffer was free.
    pub ctl_no_buffer: u64,
    /// Casts sent on the fast path.
    pub fast_out: u64,
    /// Casts delivered on the fast path.
    pub fast_in: u64,
    /// Of those, delivered before their layers' part ran (post-processed).
    pub fast_later: u64,
    /// Compact casts that took the full path (expanded: out of order, a
    /// layer off its common case, or the fast path off).
    pub fast_missed: u64,
    /// Packed frames sent.
    pub packed_frames: u64,
    /// Casts carried in packed frames.
    pub packed_casts: u64,
    /// Casts that went out in the frame they were written in (a
    /// `Packer`'s), not copied into another.
    pub in_place: u64,
    /// Fast-path casts sent in runs (a batch's, every layer at once).
    pub run_out: u64,
    /// Fast-path casts delivered in runs (a packed frame's).
    pub run_in: u64,
}

impl Stats {
    /// Adds another stack's counters to these.
    pub fn add(&mut self, o: &Stats) {
        // Every field named: a new counter cannot be left out.
        let Stats {
            frames_out,
            frames_in,
            retransmits,
            naks,
            control,
            ctl_no_buffer,
            fast_out,
            fast_in,
            fast_later,
            fast_missed,
            packed_frames,
            packed_casts,
            in_place,
            run_out,
            run_in,
        } = *o;
        self.frames_out += frames_out;
        self.frames_in += frames_in;
        self.retransmits += retransmits;
        self.naks += naks;
        self.control += control;
        self.ctl_no_buffer += ctl_no_buffer;
        self.fast_out += fast_out;
        self.fast_in += fast_in;
        self.fast_later += fast_later;
        self.fast_missed += fast_missed;
        self.packed_frames += packed_frames;
        self.packed_casts += packed_casts;
        self.in_place += in_place;
        self.run_out += run_out;
        self.run_in += run_in;
    }
}

/// Shared by all layers of one stack: time, the control-buffer pool, the
/// transmit queue, counters.
pub struct Env {
    /// Current time, as given by the caller.
    pub now: Time,
    /// Buffers for messages layers make themselves (control, copies).
    pub ctl: Pool,
    /// The fast path is sending a batch: the bottom layer packs casts.
    pub packing: bool,
    /// A layer emitted an event (set by [`Cx::down`] and [`Cx::up`]): the
    /// fast path, which queues nothing itself, settles the stack only then.
    pub emitted: bool,
    /// A timer was armed or fired since the stack's earliest deadline was
    /// last read.
    pub timers_changed: bool,
    /// Frames ready for the network.
    pub tx: VecDeque<(Dest, Msg)>,
    /// Drops by reason.
    pub drops: Drops,
    /// Activity counters.
    pub stats: Stats,
    /// Views installed at the bottom of the stack, newest first (a few):
    /// whoever moves frames routes them by the view tag they carry, with
    /// these (the application may see a view later, after state transfer).
    pub views: VecDeque<std::sync::Arc<crate::event::View>>,
    /// Counts changes of `views`.
    pub views_gen: u64,
    /// A second handle on the cast the fast path is delivering, counted
    /// together with its frame's others (`Msg::share_bulk`): the layer
    /// that keeps the cast takes it instead of sharing ([`Cx::keep`]).
    pub twin: Option<Msg>,
    /// The layers' `fast_up` runs as post-processing: the cast went to
    /// the application already and the message passed up is the handle
    /// put aside for keeping ([`Cx::posting`]).
    pub posting: bool,
    /// Handles on the casts of a run being delivered, in order, for the
    /// layer that keeps them ([`Cx::run_keep`]).
    pub run_keep: VecDeque<Msg>,
    /// The application does not take its own casts
    /// (`StackConfig::discard_own`): the fast path makes no delivery of
    /// them, and the layer that keeps a run of them takes the handles
    /// themselves from `run_keep`.
    pub discard_own: bool,
}

impl Env {
    /// A control buffer holding the concatenation of `parts`; `None`,
    /// counted, when no buffer is free or the parts do not fit one.
    pub fn message(&mut self, parts: &[&[u8]]) -> Option<Msg> {
        let Some(mut m) = self.ctl.alloc() else {
            self.stats.ctl_no_buffer += 1;
            return None;
        };
        let len = parts.iter().map(|p| p.len()).sum();
        let Ok(b) = m.reserve(len) else {
            self.drops.add(DropReason::TooLarge);
            return None;
        };
        let mut at = 0;
        for p in parts {
            b[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        Some(m)
    }
}

/// Views kept for routing.
pub const ROUTED_VIEWS: usize = 4;

impl Env {
    /// A fresh environment over `ctl`.
    pub fn new(ctl: Pool) -> Env {
        Env {
            now: Time::ZERO,
            ctl,
            packing: false,
            emitted: false,
            timers_changed: true,
            tx: VecDeque::with_capacity(64),
            drops: Drops::default(),
            stats: Stats::default(),
            views: VecDeque::new(),
            views_gen: 0,
            twin: None,
            posting: false,
            run_keep: VecDeque::new(),
            discard_own: false,
        }
    }
}

/// Timers one layer has armed: (deadline, token), earliest first.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Time, u64)>>,
}

impl Timers {
    /// Arms a timer.
    pub fn arm(&mut self, at: Time, token: u64) {
        self.heap.push(Reverse((at, token)));
    }

    /// Earliest deadline.
    pub fn next(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Takes one timer due at `now`.
    pub fn pop_due(&mut self, now: Time) -> Option<u64> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => self.heap.pop().map(|Reverse((_, k))| k),
            _ => None,
        }
    }
}

/// What a layer acts through while it handles one event.
pub struct Cx<'a> {
    env: &'a mut Env,
    downs: &'a mut VecDeque<Down>,
    ups: &'a mut VecDeque<Up>,
    timers: &'a mut Timers,
}

impl<'a> Cx<'a> {
    /// Context for one layer: `downs` feeds the layer below, `ups` the
    /// layer above.
    pub fn new(
        env: &'a mut Env,
        downs: &'a mut VecDeque<Down>,
        ups: &'a mut VecDeque<Up>,
        timers: &'a mut Timers,
    ) -> Cx<'a> {
        Cx {
            env,
            downs,
            ups,
            timers,
        }
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Time {
        self.env.now
    }

    /// Passes an event to the layer below.
    #[inline]
    pub fn down(&mut self, ev: Down) {
        self.env.emitted = true;
        self.downs.push_back(ev);
    }

    /// Passes an event to the layer above.
    #[inline]
    pub fn up(&mut self, ev: Up) {
        self.env.emitted = true;
        self.ups.push_back(ev);
    }

    /// Arms a timer: at `at`, this layer gets `Down::Timer(token)`.
    pub fn arm(&mut self, at: Time, token: u64) {
        self.env.timers_changed = true;
        self.timers.arm(at, token);
    }

    /// A buffer for a message the layer makes itself. `None` (counted) when
    /// the control pool is empty: the layer retries later.
    pub fn alloc(&mut self) -> Option<Msg> {
        let m = self.env.ctl.alloc();
        if m.is_none() {
            self.env.stats.ctl_no_buffer += 1;
        }
        m
    }

    /// A control buffer holding the concatenation of `parts` (a layer's
    /// own message: tag, header, body). `None`, counted, when no buffer is
    /// free or the parts do not fit one.
    pub fn message(&mut self, parts: &[&[u8]]) -> Option<Msg> {
        self.env.message(parts)
    }

    /// The stack's shared environment (for helpers that serve the stack
    /// and its layers alike).
    pub(crate) fn env(&mut self) -> &mut Env {
        self.env
    }

    /// Another handle on `msg`, to keep: the fast path's bulk-counted twin
    /// of it when there is one (see [`Env::twin`]), else a share.
    #[inline(always)]
    pub fn keep(&mut self, msg: &Msg) -> Msg {
        match self.env.twin.take() {
            Some(t) if t.same_window(msg) => t,
            _ => msg.share(),
        }
    }

    /// Whether this `fast_up` is post-processing: the cast went up
    /// already and `msg` holds the handle put aside for keeping; the layer
    /// that keeps the cast takes it (the layers above then see none, and
    /// their `fast_up` runs all the same).
    #[inline(always)]
    pub fn posting(&self) -> bool {
        self.env.posting
    }

    /// The handles of a run being delivered (`fast_up_run`), in the
    /// run's order, for the layer that keeps them.
    #[inline(always)]
    pub fn run_keep(&mut self) -> &mut VecDeque<Msg> {
        &mut self.env.run_keep
    }

    /// Whether the fast path is sending a batch (the bottom layer packs).
    #[inline]
    pub fn packing(&self) -> bool {
        self.env.packing
    }

    /// Payload bytes a control buffer holds.
    pub fn ctl_capacity(&self) -> usize {
        self.env.ctl.capacity()
    }

    /// A private copy of `msg` (for retransmission) in the control pool,
    /// with the same headroom, so that an application that has taken every
    /// data buffer cannot stop repairs.
    pub fn copy(&mut self, msg: &Msg) -> Option<Msg> {
        let m = msg.copy_into(&self.env.ctl).ok();
        if m.is_none() {
            self.env.stats.ctl_no_buffer += 1;
        }
        m
    }

    /// The bottom layer installed a view: frames of it are routed to its
    /// members.
    pub fn installed(&mut self, v: std::sync::Arc<crate::event::View>) {
        self.env.views.push_front(v);
        self.env.views.truncate(ROUTED_VIEWS);
        self.env.views_gen += 1;
    }

    /// Puts a one-byte header (a layer's message type) in front of `m`;
    /// `None`, counted, when there is no headroom left.
    pub fn tagged(&mut self, mut m: Msg, tag: u8) -> Option<Msg> {
        match m.push(1) {
            Ok(b) => {
                b[0] = tag;
                Some(m)
            }
            Err(_) => {
                self.dropped(DropReason::NoBuffer);
                None
            }
        }
    }

    /// Counts a dropped frame or header.
    #[inline]
    pub fn dropped(&mut self, r: DropReason) {
        self.env.drops.add(r);
    }

    /// Activity counters.
    #[inline]
    pub fn stats(&mut self) -> &mut Stats {
        &mut self.env.stats
    }

    /// Hands a finished frame to the network (bottom of the stack only).
    #[inline]
    pub fn transmit(&mut self, dst: Dest, frame: Msg) {
        self.env.stats.frames_out += 1;
        self.env.tx.push_back((dst, frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_drivers::PoolConfig;

    #[test]
    fn keep_takes_the_twin_of_the_same_bytes_only() {
        let pool = Pool::new(PoolConfig::default()).unwrap();
        let mut env = Env::new(pool.clone());
        let (mut downs, mut ups, mut timers) =
            (VecDeque::new(), VecDeque::new(), Timers::default());
        let mut frame = pool.alloc().unwrap();
        frame.reserve(8).unwrap().copy_from_slice(b"abcdefgh");
        let mut sh = frame.share_bulk(3).unwrap();
        let msg = sh.window(0, 4).unwrap();
        // A twin of other bytes is not handed out for `msg`.
        env.twin = sh.window(4, 4);
        let kept = Cx::new(&mut env, &mut downs, &mut ups, &mut timers).keep(&msg);
        assert_eq!(kept.to_vec(), b"abcd");
        assert!(env.twin.is_none(), "a stale twin does not linger");
        // The twin of the same bytes is.
        env.twin = sh.window(0, 4);
        let kept2 = Cx::new(&mut env, &mut downs, &mut ups, &mut timers).keep(&msg);
        assert!(kept2.same_window(&msg) && env.twin.is_none());
        assert_eq!(sh.left(), 0);
        drop((frame, sh, msg, kept, kept2));
        assert_eq!(pool.stats().in_use, 0);
    }
}
