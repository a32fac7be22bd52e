//! Composition: how events move between the layers of a stack.
//!
//! Each layer has two queues beside it: events it emitted downward, and
//! events that came up to it from below. Handling one event runs the layer,
//! then drains its queues: a down event goes to the layer below (whose up
//! output lands in this layer's up queue), an up event goes into this
//! layer. Events leave the top into the stack's event queue and the bottom
//! into the transmit queue. Every queue keeps its capacity, so a stack in
//! steady state allocates nothing.
//!
//! Two compositions, one algorithm, one wire format:
//! - static: `Cons<Top, Cons<..., Cons<Com, Nil>>>`, generic, so the
//!   compiler sees and inlines the whole stack;
//! - dynamic: a slice of boxed layers built from a spec string
//!   (`stack::dynamic`).

use std::collections::VecDeque;

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Time, Up};
use crate::layer::{Cx, DropReason, Env, FastCast, FastRun, Layer, Timers};
use crate::stack::spec::LayerKind;
use crate::stack::StackConfig;
use crate::wire::fast::Compact;

/// A (sub)stack: a layer with everything below it.
pub trait Part: Send {
    /// An event enters from above.
    fn down(&mut self, ev: Down, env: &mut Env, out: &mut VecDeque<Up>);
    /// A frame enters from the wire.
    fn recv(&mut self, frame: Msg, env: &mut Env, out: &mut VecDeque<Up>);
    /// Fires every timer due at `env.now`.
    fn fire(&mut self, env: &mut Env, out: &mut VecDeque<Up>);
    /// Earliest armed timer.
    fn next_timer(&self) -> Option<Time>;
    /// Whether every layer would let a new cast out at once.
    fn ready(&self) -> bool;
    /// Messages held by all layers.
    fn buffered(&self) -> usize;
    /// Describes every layer's state, top first.
    fn dump(&self, out: &mut String);
    /// An event enters from below the bottom layer (as if the bottom
    /// layer had passed it up).
    fn inject(&mut self, ev: Up, env: &mut Env, out: &mut VecDeque<Up>);

    // The fast path (see `stack::accel`): each layer's common-case part,
    // called directly, layer by layer, with no event queued in between.

    /// Tells each layer, top down, the common-case tags of the layers
    /// above it (`above`, nearest first; on return it holds every layer's
    /// tags). False when some layer has no common case.
    fn fast_setup(&mut self, above: &mut Vec<u8>, ctl_capacity: usize) -> bool;
    /// Whether every layer takes a cast of `msg` in its common case.
    fn fast_down_ok(&self, msg: &Msg) -> bool;
    /// Sends a cast down through every layer's common-case part, top
    /// down (`depth`: this part's top layer's, from the stack's top). The
    /// frame is out of the stack when this returns; the own delivery is
    /// not yet made.
    fn fast_cast(&mut self, fc: &mut FastCast, depth: usize, env: &mut Env, out: &mut VecDeque<Up>);
    /// Then lets the layer that numbered the cast finish (`fast_sent`),
    /// and brings the cast's own delivery up through the common-case
    /// parts of the layers above it, bottom up, as they would see it
    /// return in one pass. Nothing happens in a layer in between, so the
    /// engine can send the frame first.
    fn fast_own(&mut self, fc: &mut FastCast, depth: usize, env: &mut Env, out: &mut VecDeque<Up>);
    /// Whether every layer takes cast `seq` of `src` in its common case.
    fn fast_up_ok(&self, src: Rank, seq: u64) -> bool;
    /// Delivers it through every layer's common-case part; `msg` still
    /// holds it if it reaches the top. `post`: post-processing of a cast
    /// delivered already (`Env::posting` is set): every layer's part runs,
    /// whether or not a layer below took `msg` (the handle put aside for
    /// keeping).
    fn fast_up(
        &mut self,
        src: Rank,
        seq: u64,
        msg: &mut Option<Msg>,
        post: bool,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    );
    /// Whether every layer's `fast_up` for cast `seq` of `src` may run
    /// after the delivery ([`crate::layer::Layer::fast_up_later`]).
    fn fast_up_later(&self, src: Rank, seq: u64) -> bool;
    /// The bottom layer's reading of a compact frame's header.
    fn fast_parse(&self, frame: &[u8]) -> Option<Result<(Rank, Compact), DropReason>>;
    /// Sends what the layers gathered during a batch.
    fn fast_flush(&mut self, env: &mut Env, out: &mut VecDeque<Up>);
    /// Handles every event the layers' fast parts emitted, bottom level
    /// first (the fast path runs the parts back to back and settles once,
    /// and only when one of them emitted something).
    fn settle_all(&mut self, env: &mut Env, out: &mut VecDeque<Up>);

    // Runs (see `Layer::fast_run_take`). The defaults take none: a part
    // that does not compose them (a dynamic stack) goes one cast at a time.

    /// How many casts from the front of `msgs` every layer takes as one
    /// run of a batch.
    fn fast_run_take(&self, _msgs: &[Msg]) -> usize {
        0
    }
    /// Who sends the next cast and the number it gets (the numbering
    /// layer's answer).
    fn fast_next_cast(&self) -> Option<(Rank, u64)> {
        None
    }
    /// `fast_cast` for a run: every layer's `fast_down_run`, top down.
    fn fast_cast_run(
        &mut self,
        _run: &mut FastRun<'_>,
        _depth: usize,
        _env: &mut Env,
        _out: &mut VecDeque<Up>,
    ) {
    }
    /// `fast_own` for a run: the numbering layer's `fast_sent_run`, then
    /// the run's own deliveries up through the layers above it.
    fn fast_own_run(
        &mut self,
        _run: &mut FastRun<'_>,
        _depth: usize,
        _env: &mut Env,
        _out: &mut VecDeque<Up>,
    ) {
    }
    /// Whether every layer takes casts `seq..seq + n` of `src` as one run.
    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        false
    }
    /// Delivers them through every layer's `fast_up_run`, bottom up.
    fn fast_up_run(
        &mut self,
        _src: Rank,
        _seq: u64,
        _n: u64,
        _env: &mut Env,
        _out: &mut VecDeque<Up>,
    ) {
    }
    /// How many casts of `src` from `seq` every layer takes before and
    /// including the first that makes one of them emit.
    fn fast_run_quiet(&self, _src: Rank, _seq: u64) -> u64 {
        1
    }
}

/// A static stack part that can be built from configuration.
pub trait BuildPart: Part + Sized {
    /// Builds the part.
    fn build(cfg: &StackConfig, stack_id: u16) -> Self;
    /// Appends the layer kinds, bottom first.
    fn kinds(out: &mut Vec<LayerKind>);
}

/// A layer type usable in a static stack.
pub trait StaticLayer: Layer + Sized {
    /// Which layer this is.
    const KIND: LayerKind;
    /// Builds it from configuration.
    fn make(cfg: &StackConfig, stack_id: u16) -> Self;
}

/// Below the bottom layer.
pub struct Nil;

impl Part for Nil {
    #[inline]
    fn down(&mut self, _ev: Down, _env: &mut Env, _out: &mut VecDeque<Up>) {}

    #[inline]
    fn recv(&mut self, frame: Msg, _env: &mut Env, out: &mut VecDeque<Up>) {
        out.push_back(Up::Recv(frame));
    }

    fn fire(&mut self, _env: &mut Env, _out: &mut VecDeque<Up>) {}

    fn next_timer(&self) -> Option<Time> {
        None
    }

    fn ready(&self) -> bool {
        true
    }

    fn buffered(&self) -> usize {
        0
    }

    fn dump(&self, _out: &mut String) {}

    #[inline]
    fn inject(&mut self, ev: Up, _env: &mut Env, out: &mut VecDeque<Up>) {
        out.push_back(ev);
    }

    fn fast_setup(&mut self, _above: &mut Vec<u8>, _cap: usize) -> bool {
        true
    }

    #[inline]
    fn fast_down_ok(&self, _msg: &Msg) -> bool {
        true
    }

    #[inline]
    fn fast_cast(
        &mut self,
        _fc: &mut FastCast,
        _d: usize,
        _env: &mut Env,
        _out: &mut VecDeque<Up>,
    ) {
    }

    #[inline]
    fn fast_own(&mut self, _fc: &mut FastCast, _d: usize, _env: &mut Env, _out: &mut VecDeque<Up>) {
    }

    #[inline]
    fn fast_up_ok(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    #[inline]
    fn fast_up(
        &mut self,
        _src: Rank,
        _seq: u64,
        _msg: &mut Option<Msg>,
        _post: bool,
        _env: &mut Env,
        _out: &mut VecDeque<Up>,
    ) {
    }

    #[inline]
    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    #[inline]
    fn fast_parse(&self, _frame: &[u8]) -> Option<Result<(Rank, Compact), DropReason>> {
        None
    }

    fn fast_flush(&mut self, _env: &mut Env, _out: &mut VecDeque<Up>) {}

    fn settle_all(&mut self, _env: &mut Env, _out: &mut VecDeque<Up>) {}

    #[inline(always)]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        msgs.len()
    }

    #[inline(always)]
    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        true
    }

    #[inline(always)]
    fn fast_run_quiet(&self, _src: Rank, _seq: u64) -> u64 {
        u64::MAX
    }
}

impl BuildPart for Nil {
    fn build(_cfg: &StackConfig, _id: u16) -> Self {
        Nil
    }

    fn kinds(_out: &mut Vec<LayerKind>) {}
}

/// Layer `L` on top of part `B`.
pub struct Cons<L, B> {
    layer: L,
    below: B,
    downq: VecDeque<Down>,
    upq: VecDeque<Up>,
    timers: Timers,
}

impl<L: Layer, B: Part> Cons<L, B> {
    /// `layer` over `below`.
    pub fn new(layer: L, below: B) -> Self {
        Cons {
            layer,
            below,
            downq: VecDeque::with_capacity(16),
            upq: VecDeque::with_capacity(16),
            timers: Timers::default(),
        }
    }

    #[inline]
    fn settle(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        loop {
            if let Some(d) = self.downq.pop_front() {
                self.below.down(d, env, &mut self.upq);
            } else if let Some(u) = self.upq.pop_front() {
                let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
                self.layer.up(u, &mut cx);
            } else {
                break;
            }
        }
    }
}

impl<L: Layer, B: Part> Part for Cons<L, B> {
    #[inline]
    fn down(&mut self, ev: Down, env: &mut Env, out: &mut VecDeque<Up>) {
        let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
        self.layer.down(ev, &mut cx);
        self.settle(env, out);
    }

    #[inline]
    fn recv(&mut self, frame: Msg, env: &mut Env, out: &mut VecDeque<Up>) {
        self.below.recv(frame, env, &mut self.upq);
        self.settle(env, out);
    }

    fn fire(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        while let Some(token) = self.timers.pop_due(env.now) {
            let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
            self.layer.down(Down::Timer(token), &mut cx);
            self.settle(env, out);
        }
        self.below.fire(env, &mut self.upq);
        self.settle(env, out);
    }

    fn next_timer(&self) -> Option<Time> {
        match (self.timers.next(), self.below.next_timer()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn ready(&self) -> bool {
        self.layer.ready() && self.below.ready()
    }

    fn buffered(&self) -> usize {
        self.layer.buffered() + self.below.buffered()
    }

    fn dump(&self, out: &mut String) {
        dump_layer(&self.layer, out);
        self.below.dump(out);
    }

    #[inline]
    fn inject(&mut self, ev: Up, env: &mut Env, out: &mut VecDeque<Up>) {
        self.below.inject(ev, env, &mut self.upq);
        self.settle(env, out);
    }

    fn fast_setup(&mut self, above: &mut Vec<u8>, cap: usize) -> bool {
        let Some(tag) = self.layer.fast_tag() else {
            return false;
        };
        self.layer.fast_setup(above, cap);
        above.splice(0..0, tag.iter().copied());
        self.below.fast_setup(above, cap)
    }

    #[inline(always)]
    fn fast_down_ok(&self, msg: &Msg) -> bool {
        self.layer.fast_down_ok(msg) && self.below.fast_down_ok(msg)
    }

    #[inline(always)]
    fn fast_cast(
        &mut self,
        fc: &mut FastCast,
        depth: usize,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    ) {
        let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
        cast_step(&mut self.layer, fc, depth, &mut cx);
        self.below.fast_cast(fc, depth + 1, env, &mut self.upq);
    }

    #[inline(always)]
    fn fast_own(&mut self, fc: &mut FastCast, depth: usize, env: &mut Env, out: &mut VecDeque<Up>) {
        self.below.fast_own(fc, depth + 1, env, &mut self.upq);
        if fc.own_due && depth <= fc.own_depth {
            let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
            own_step(&mut self.layer, fc, depth, &mut cx);
        }
    }

    #[inline(always)]
    fn fast_up_ok(&self, src: Rank, seq: u64) -> bool {
        self.below.fast_up_ok(src, seq) && self.layer.fast_up_ok(src, seq)
    }

    #[inline(always)]
    fn fast_up(
        &mut self,
        src: Rank,
        seq: u64,
        msg: &mut Option<Msg>,
        post: bool,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    ) {
        self.below.fast_up(src, seq, msg, post, env, &mut self.upq);
        if post || msg.is_some() {
            let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
            self.layer.fast_up(src, seq, msg, &mut cx);
        }
    }

    #[inline(always)]
    fn fast_up_later(&self, src: Rank, seq: u64) -> bool {
        self.below.fast_up_later(src, seq) && self.layer.fast_up_later(src, seq)
    }

    #[inline]
    fn fast_parse(&self, frame: &[u8]) -> Option<Result<(Rank, Compact), DropReason>> {
        match self.below.fast_parse(frame) {
            None => self.layer.fast_parse(frame),
            r => r,
        }
    }

    fn fast_flush(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
        self.layer.fast_flush(&mut cx);
        self.settle(env, out);
        self.below.fast_flush(env, &mut self.upq);
        self.settle(env, out);
    }

    fn settle_all(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        self.below.settle_all(env, &mut self.upq);
        self.settle(env, out);
    }

    #[inline(always)]
    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        match self.layer.fast_run_take(msgs) {
            0 => 0,
            k => self.below.fast_run_take(&msgs[..k.min(msgs.len())]),
        }
    }

    #[inline(always)]
    fn fast_next_cast(&self) -> Option<(Rank, u64)> {
        self.layer
            .fast_next_cast()
            .or_else(|| self.below.fast_next_cast())
    }

    #[inline(always)]
    fn fast_cast_run(
        &mut self,
        run: &mut FastRun<'_>,
        depth: usize,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    ) {
        let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
        let due = run.own_due;
        self.layer.fast_down_run(run, &mut cx);
        if !due && run.own_due {
            run.own_depth = depth;
        }
        self.below.fast_cast_run(run, depth + 1, env, &mut self.upq);
    }

    #[inline(always)]
    fn fast_own_run(
        &mut self,
        run: &mut FastRun<'_>,
        depth: usize,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    ) {
        self.below.fast_own_run(run, depth + 1, env, &mut self.upq);
        if run.own_due && depth <= run.own_depth {
            let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
            if depth == run.own_depth {
                self.layer.fast_sent_run(run, &mut cx);
            } else {
                self.layer.fast_up_run(run.src, run.seq, run.len(), &mut cx);
            }
        }
    }

    #[inline(always)]
    fn fast_up_run_ok(&self, src: Rank, seq: u64, n: u64) -> bool {
        self.below.fast_up_run_ok(src, seq, n) && self.layer.fast_up_run_ok(src, seq, n)
    }

    #[inline(always)]
    fn fast_up_run(&mut self, src: Rank, seq: u64, n: u64, env: &mut Env, out: &mut VecDeque<Up>) {
        self.below.fast_up_run(src, seq, n, env, &mut self.upq);
        let mut cx = Cx::new(env, &mut self.downq, out, &mut self.timers);
        self.layer.fast_up_run(src, seq, n, &mut cx);
    }

    #[inline(always)]
    fn fast_run_quiet(&self, src: Rank, seq: u64) -> u64 {
        self.layer
            .fast_run_quiet(src, seq)
            .min(self.below.fast_run_quiet(src, seq))
    }
}

/// One layer's part of a fast cast on the way down (the layer at `depth`
/// from the top); notes the depth of the layer that numbers it.
#[inline(always)]
pub(super) fn cast_step<L: Layer + ?Sized>(
    layer: &mut L,
    fc: &mut FastCast,
    depth: usize,
    cx: &mut Cx<'_>,
) {
    let due = fc.own_due;
    layer.fast_down(fc, cx);
    if !due && fc.own_due {
        fc.own_depth = depth;
    }
}

/// One layer's part after the frame left (`depth` at most the numbering
/// layer's): the numbering layer finishes (and hands the own delivery on
/// in `own`), the layers above it see it come up. Nothing here moves or
/// writes for a layer whose `fast_sent` and `fast_up` are empty, so the
/// composition drops such a layer from the way up altogether.
#[inline(always)]
pub(super) fn own_step<L: Layer + ?Sized>(
    layer: &mut L,
    fc: &mut FastCast,
    depth: usize,
    cx: &mut Cx<'_>,
) {
    if depth == fc.own_depth {
        layer.fast_sent(fc, cx);
        debug_assert!(
            fc.own.is_some() || fc.msg.is_none(),
            "the numbering layer left the own delivery in `msg`"
        );
        return;
    }
    if fc.own.is_some() {
        layer.fast_up(fc.src, fc.seq, &mut fc.own, cx);
    }
}

pub(super) fn dump_layer(layer: &dyn Layer, out: &mut String) {
    out.push_str(layer.info().name);
    out.push_str(": ");
    layer.dump(out);
    out.push('\n');
}

impl<L: StaticLayer, B: BuildPart> BuildPart for Cons<L, B> {
    fn build(cfg: &StackConfig, id: u16) -> Self {
        Cons::new(L::make(cfg, id), B::build(cfg, id))
    }

    fn kinds(out: &mut Vec<LayerKind>) {
        B::kinds(out);
        out.push(L::KIND);
    }
}
