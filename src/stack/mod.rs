//! Stacks: layers composed into one protocol endpoint for one group.
//!
//! [`Stack`] is the sans-I/O face of a group member, in the manner of
//! quinn-proto: feed it application requests (`cast`, `send`), frames from
//! the network (`receive`) and the time (`handle_timeout`); take out frames
//! to transmit (`poll_transmit`), events for the application
//! (`poll_event`) and the next deadline (`poll_timeout`). Call order after
//! any input: drain `poll_transmit` and `poll_event`, then re-read
//! `poll_timeout`.

mod accel;
pub mod compose;
mod dynamic;
mod group;
mod kinds;
pub mod spec;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use tutti_drivers::{Msg, Pool};

use crate::event::{Dest, Down, JoinReq, Rank, Time, Up, View};
use crate::layer::{Drops, Env, FastCast, Prop, Stats};
use crate::layers::frag::MAX_MSG_DEFAULT;
use crate::layers::gms::GmsConfig;
use crate::layers::nak::NakConfig;
use crate::layers::stable::StableConfig;
use crate::layers::suspect::SuspectConfig;
use crate::secure::Secure;

pub use compose::{BuildPart, Cons, Nil, Part, StaticLayer};
pub use dynamic::{Dynamic, Level};
pub use group::GroupStack;
pub use kinds::{
    make_layer, FifoStatic, ReliableStatic, VsyncSecureStatic, VsyncStatic, VsyncTotalSecureStatic,
    VsyncTotalStatic,
};
pub use spec::{LayerKind, Spec, SpecError, PRESETS};

/// Configuration shared by the layers of a stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackConfig {
    /// Group id carried in every frame.
    pub group: u32,
    /// `nak` parameters.
    pub nak: NakConfig,
    /// `stable` parameters.
    pub stable: StableConfig,
    /// Largest message `frag` reassembles, bytes.
    pub max_msg: u64,
    /// `suspect` parameters.
    pub suspect: SuspectConfig,
    /// `gms` parameters.
    pub gms: GmsConfig,
    /// Identity and authorized keys, for secure stacks (`sign`, `crypt`);
    /// ignored by the others.
    pub secure: Option<Arc<Secure>>,
    /// Run the Protocol Accelerator's fast path where the stack has one
    /// (off: every message takes the full path; the wire is the same).
    pub fast: bool,
    /// On the fast path, take the casts of a batch and of a packed frame
    /// as runs, every layer handling a run at once (off: one cast at a
    /// time; the wire and the deliveries are the same).
    pub fast_runs: bool,
    /// Do not deliver the group's own casts to the application (JGroups'
    /// `discard_own_messages`): a sender that has no use for its own
    /// messages saves their delivery. The layers still count each cast as
    /// delivered to its sender (stability, flush, the order of the
    /// others' deliveries are unchanged); only the event is not made.
    pub discard_own: bool,
}

impl StackConfig {
    /// This configuration as the stack `spec` uses it: a secure stack
    /// without an identity is refused; other stacks drop the identity (so
    /// that `gms` neither signs nor seals where no layer would carry it).
    pub fn for_spec(&self, spec: &Spec) -> Result<StackConfig, SpecError> {
        let mut cfg = self.clone();
        if !spec.is_secure() {
            cfg.secure = None;
        } else if cfg.secure.is_none() {
            return Err(SpecError(format!(
                "stack `{spec}` is secure: it needs an identity and the authorized keys                  (StackConfig::secure; `--key` and `--authorized` on the command line)"
            )));
        } else if !(spec.layers().contains(&LayerKind::Sign)
            && spec.layers().contains(&LayerKind::Crypt))
        {
            return Err(SpecError(
                "`sign` and `crypt` go together: `crypt` takes its keys from views that \
                 only signed membership frames can deliver"
                    .into(),
            ));
        }
        Ok(cfg)
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            group: 1,
            nak: NakConfig::default(),
            stable: StableConfig::default(),
            max_msg: MAX_MSG_DEFAULT,
            suspect: SuspectConfig::default(),
            gms: GmsConfig::default(),
            secure: None,
            fast: true,
            fast_runs: true,
            discard_own: false,
        }
    }
}

/// Why the application's message was not taken. The message comes back.
pub struct SendError {
    /// What went wrong.
    pub kind: SendErrorKind,
    /// The message, unchanged.
    pub msg: Msg,
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendError({:?})", self.kind)
    }
}

/// Kinds of [`SendError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendErrorKind {
    /// No view installed yet.
    NoView,
    /// The send window is closed; retry after the stack has made progress.
    WouldBlock,
    /// Larger than one buffer and the stack has no `frag`, or larger than
    /// the configured largest message.
    TooLarge,
    /// No member with that rank.
    BadRank,
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendErrorKind::NoView => "no view installed",
            SendErrorKind::WouldBlock => "send window closed (back-pressure)",
            SendErrorKind::TooLarge => {
                "message larger than the largest message (or than a buffer, without frag)"
            }
            SendErrorKind::BadRank => "no member with that rank",
        })
    }
}

/// A group member's protocol stack over composition `P`.
pub struct Stack<P: Part> {
    part: P,
    env: Env,
    events: VecDeque<Up>,
    spec: Spec,
    view: Option<Arc<View>>,
    large: bool,
    max_msg: u64,
    /// Answer `Block` with `BlockOk` here (the application does not).
    auto_block_ok: bool,
    /// Answer `GetState` with an empty state here (the application keeps
    /// no state to transfer).
    auto_state: bool,
    /// The compact format's template (the common-case tags of the layers
    /// above `nak`); `None` when the stack has no compact format.
    tmpl: Option<Box<[u8]>>,
    /// Run the fast path.
    fast: bool,
    /// Take a batch's casts and a packed frame's as runs (`stack::accel`).
    runs: bool,
    /// The layers' part of a cast the fast path delivered before running
    /// it (`stack::accel`): done on the next entry (after the frame of a
    /// fast-path cast has left), or when `poll_timeout` falls due.
    post: Option<accel::Post>,
}

impl<P: BuildPart> Stack<P> {
    /// A static stack of type `P`, using `ctl` for the layers' own messages.
    pub fn new_static(cfg: &StackConfig, ctl: Pool) -> Result<Stack<P>, SpecError> {
        let mut kinds = Vec::new();
        P::kinds(&mut kinds);
        let spec = Spec::from_layers(kinds)?;
        let cfg = cfg.for_spec(&spec)?;
        let part = P::build(&cfg, spec.id());
        Ok(Stack::with_part(part, spec, &cfg, ctl))
    }
}

impl Stack<Dynamic> {
    /// A dynamic stack from a spec string or preset name.
    pub fn new_dynamic(
        spec: &str,
        cfg: &StackConfig,
        ctl: Pool,
    ) -> Result<Stack<Dynamic>, SpecError> {
        let spec = Spec::parse(spec)?;
        let cfg = cfg.for_spec(&spec)?;
        let layers = spec
            .layers()
            .iter()
            .rev()
            .map(|k| make_layer(*k, &cfg, spec.id()))
            .collect();
        Ok(Stack::with_part(Dynamic::new(layers), spec, &cfg, ctl))
    }
}

impl<P: Part> Stack<P> {
    fn with_part(part: P, spec: Spec, cfg: &StackConfig, ctl: Pool) -> Stack<P> {
        let large = spec.provides(Prop::Large);
        let mut s = Stack {
            auto_block_ok: !cfg.gms.app_block_ok,
            auto_state: !cfg.gms.app_state,
            max_msg: cfg.max_msg,
            part,
            env: Env::new(ctl),
            events: VecDeque::with_capacity(64),
            spec,
            view: None,
            large,
            tmpl: None,
            fast: false,
            runs: cfg.fast_runs,
            post: None,
        };
        s.env.discard_own = cfg.discard_own;
        s.accel_setup(cfg.fast);
        s
    }

    /// The stack's spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The installed view.
    pub fn view(&self) -> Option<&Arc<View>> {
        self.view.as_ref()
    }

    /// Installs a view (static membership: the application or the
    /// configuration supplies it).
    ///
    /// With a membership layer (`gms`) the view is its first view, and
    /// later views come from the layer; the view event comes from it too.
    pub fn install_view(&mut self, now: Time, view: View) {
        self.enter(now);
        let view = Arc::new(view);
        self.part
            .down(Down::View(view.clone()), &mut self.env, &mut self.events);
        if !self.spec.provides(Prop::Membership) {
            self.view = Some(view.clone());
            self.events.push_back(Up::View(view));
        }
    }

    /// Joins (or founds) the group through membership (`gms`): `req` names
    /// this endpoint and where to look for the group. Views arrive as
    /// `Up::View` events.
    pub fn join(&mut self, now: Time, req: JoinReq) {
        self.enter(now);
        self.part
            .down(Down::Join(Arc::new(req)), &mut self.env, &mut self.events);
    }

    /// Multicasts `msg` to the view, reliably, in FIFO order.
    #[inline]
    pub fn cast(&mut self, now: Time, msg: Msg) -> Result<(), SendError> {
        self.cast_inner(now, msg, |_| false, None).map(|_| ())
    }

    /// `cast` for an engine that holds the application's event queue.
    /// `send` is called on a fast-path cast's frame as soon as it is made,
    /// before the fast path brings the cast back up as the sender's own
    /// delivery: the engine hands the frame to its driver first and the
    /// rest of the work overlaps its flight. (`send` gets the frame by
    /// reference and says whether it sent it; what it does not send goes
    /// out through the transmit queue as usual. It is not called off the
    /// fast path, for packed casts, or while frames wait in the transmit
    /// queue.) The own delivery goes straight onto `events` when nothing
    /// waits before it here. Returns whether
    /// [`Stack::output`] has anything to hand over (when not, an engine
    /// skips the call).
    #[inline]
    pub fn cast_to<F: FnMut(&Msg) -> bool>(
        &mut self,
        now: Time,
        msg: Msg,
        send: F,
        events: &mut VecDeque<Up>,
    ) -> Result<bool, SendError> {
        self.cast_inner(now, msg, send, Some(events))
    }

    #[inline(always)]
    fn cast_inner<F: FnMut(&Msg) -> bool>(
        &mut self,
        now: Time,
        msg: Msg,
        send: F,
        direct: Option<&mut VecDeque<Up>>,
    ) -> Result<bool, SendError> {
        if let Some(kind) = self.refuse(&msg, None) {
            return Err(SendError { kind, msg });
        }
        self.env.now = now;
        let gen = self.env.views_gen;
        if self.fast_down_ok(&msg) {
            let mut fc = FastCast::new(msg);
            self.fast_cast_down(&mut fc);
            self.fast_send(&mut fc, send);
            // What a delivery left: after the frame, before the own
            // delivery (which may count and gossip).
            self.run_post();
            self.fast_cast_own(&mut fc, direct);
            return Ok(self.pending(gen));
        }
        self.run_post();
        if !self.part.ready() {
            return Err(SendError {
                kind: SendErrorKind::WouldBlock,
                msg,
            });
        }
        self.flush_batch();
        self.part
            .down(Down::Cast(msg), &mut self.env, &mut self.events);
        Ok(true)
    }

    /// Whether [`Stack::output`] has anything for an engine after an entry
    /// point that started at view generation `gen`.
    #[inline]
    fn pending(&self, gen: u64) -> bool {
        !self.events.is_empty()
            || !self.env.tx.is_empty()
            || self.env.timers_changed
            || self.env.views_gen != gen
    }

    /// Multicasts the messages of `msgs` as one batch (`begin_batch`, a
    /// `cast` each, `end_batch`): on the fast path consecutive casts are
    /// packed into shared frames. Takes messages from the front until one
    /// is refused for back-pressure (it stays in `msgs`) or `msgs` is
    /// empty, and says how many it took; a message refused for good ends
    /// the batch with its error (and the count before it).
    pub fn cast_batch(
        &mut self,
        now: Time,
        msgs: &mut VecDeque<Msg>,
    ) -> Result<usize, (usize, SendError)> {
        self.begin_batch();
        let mut n = self.cast_runs(now, msgs);
        let mut res = Ok(());
        while let Some(m) = msgs.pop_front() {
            match self.cast(now, m) {
                Ok(()) => n += 1,
                Err(e) if e.kind == SendErrorKind::WouldBlock => {
                    msgs.push_front(e.msg);
                    break;
                }
                Err(e) => {
                    res = Err((n, e));
                    break;
                }
            }
        }
        self.end_batch();
        res.map(|()| n)
    }

    /// Sends `msg` to the member of rank `dst`, reliably, in FIFO order.
    /// Never refused for back-pressure: messages wait in the stack (bounded
    /// by the buffer pool they come from).
    pub fn send(&mut self, now: Time, dst: Rank, msg: Msg) -> Result<(), SendError> {
        if let Some(kind) = self.refuse(&msg, Some(dst)) {
            return Err(SendError { kind, msg });
        }
        self.enter(now);
        self.part
            .down(Down::Send(dst, msg), &mut self.env, &mut self.events);
        Ok(())
    }

    /// What every entry point does before it touches a layer: the
    /// post-processing a delivery left, the time, and whatever a batch
    /// packed so far (nothing overtakes a packed cast).
    #[inline(always)]
    fn enter(&mut self, now: Time) {
        self.run_post();
        self.env.now = now;
        self.flush_batch();
    }

    fn refuse(&self, msg: &Msg, dst: Option<Rank>) -> Option<SendErrorKind> {
        let Some(v) = &self.view else {
            return Some(SendErrorKind::NoView);
        };
        if (msg.nsegs() > 1 && !self.large) || msg.len() as u64 > self.max_msg {
            return Some(SendErrorKind::TooLarge);
        }
        match dst {
            Some(d) if d as usize >= v.size() => Some(SendErrorKind::BadRank),
            _ => None,
        }
    }

    /// Passes any other down event (acks, leave, block-ok) into the stack.
    pub fn handle_down(&mut self, now: Time, ev: Down) {
        self.enter(now);
        self.part.down(ev, &mut self.env, &mut self.events);
    }

    /// A frame from the network.
    #[inline]
    pub fn receive(&mut self, now: Time, frame: Msg) {
        self.enter(now);
        let Err(frame) = self.fast_receive(frame, None) else {
            return;
        };
        self.part.recv(frame, &mut self.env, &mut self.events);
    }

    /// `receive` for an engine that holds the application's event queue:
    /// casts the fast path delivers go straight onto `events` when nothing
    /// waits before them here. Returns whether [`Stack::output`] has
    /// anything to hand over (when not, an engine skips the call).
    #[inline]
    pub fn receive_to(&mut self, now: Time, frame: Msg, events: &mut VecDeque<Up>) -> bool {
        self.enter(now);
        let gen = self.env.views_gen;
        match self.fast_receive(frame, Some(events)) {
            Ok(()) => self.pending(gen),
            Err(frame) => {
                self.part.recv(frame, &mut self.env, &mut self.events);
                true
            }
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.enter(now);
        self.env.timers_changed = true;
        self.part.fire(&mut self.env, &mut self.events);
    }

    /// When `handle_timeout` should next be called (at once while a
    /// delivery's post-processing waits, see [`Stack::post`]).
    pub fn poll_timeout(&self) -> Option<Time> {
        let t = self.part.next_timer();
        match self.post_due() {
            Some(p) => Some(t.map_or(p, |t| t.min(p))),
            None => t,
        }
    }

    /// Runs the post-processing the fast path left after a delivery (the
    /// layers' part of it: keeping it for repair, counting it), if any;
    /// says whether there was some. Every entry point runs it first, and
    /// `poll_timeout` is due while it waits, so a caller need not; an
    /// engine calls it when it polls, to get it done before it idles.
    pub fn post(&mut self) -> bool {
        let some = self.post.is_some();
        self.run_post();
        some
    }

    /// Whether `poll_timeout` may have changed since this was last asked
    /// (a timer was armed or fired): an engine re-reads it only then.
    pub fn timers_changed(&mut self) -> bool {
        std::mem::take(&mut self.env.timers_changed)
    }

    /// The next frame to put on the network.
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<(Dest, Msg)> {
        self.env.tx.pop_front()
    }

    /// The next event for the application.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Up> {
        loop {
            let ev = self.events.pop_front()?;
            // What `output` hands over in bulk, without this loop.
            if ev.plain() {
                if self.own_cast(&ev) {
                    continue;
                }
                return Some(ev);
            }
            match ev {
                // Internal events that no layer above consumed.
                Up::Progress { .. }
                | Up::Recv(_)
                | Up::CastRaw { .. }
                | Up::SendRaw { .. }
                | Up::Ctl(..) => {}
                Up::View(v) => {
                    self.view = Some(v.clone());
                    return Some(Up::View(v));
                }
                Up::Exit => {
                    self.view = None;
                    return Some(Up::Exit);
                }
                Up::GetState if self.auto_state => {
                    self.run_post();
                    self.part.down(
                        Down::State(Arc::from(Vec::new())),
                        &mut self.env,
                        &mut self.events,
                    );
                }
                Up::Block => {
                    if self.auto_block_ok {
                        // Every layer above the flush saw the event: let it
                        // go on. What this produces is drained as usual.
                        self.run_post();
                        self.part
                            .down(Down::BlockOk, &mut self.env, &mut self.events);
                    }
                    return Some(Up::Block);
                }
                ev => return Some(ev),
            }
        }
    }

    /// Whether `ev` is one of this member's own casts that the application
    /// does not want (`StackConfig::discard_own`): a delivery in the view
    /// it last saw.
    #[inline]
    fn own_cast(&self, ev: &Up) -> bool {
        if !self.env.discard_own {
            return false;
        }
        match (ev, &self.view) {
            (Up::Cast { src, .. }, Some(v)) => *src == v.rank,
            _ => false,
        }
    }

    /// Whether a cast would be accepted now.
    pub fn ready(&self) -> bool {
        self.view.is_some() && self.part.ready()
    }

    /// Everything the last entry points left for an engine, in one call:
    /// the application's events are appended to `events` (as
    /// `poll_event` gives them), and the frames to send, the views to
    /// route them by and the next deadline (when it may have changed)
    /// come back. The engine's per-message path: one call instead of a
    /// call per event and frame.
    #[inline]
    pub fn output(&mut self, events: &mut VecDeque<Up>) -> Output<'_> {
        if self.events.iter().all(|e| e.plain() && !self.own_cast(e)) {
            // Nothing for `poll_event` to act on: moved in bulk (the queues
            // trade places when the engine's is empty).
            if events.is_empty() {
                std::mem::swap(&mut self.events, events);
            } else {
                events.append(&mut self.events);
            }
        } else {
            while let Some(ev) = self.poll_event() {
                events.push_back(ev);
            }
        }
        let timer = if std::mem::take(&mut self.env.timers_changed) {
            Some(self.poll_timeout())
        } else {
            None
        };
        Output {
            tx: &mut self.env.tx,
            views_gen: self.env.views_gen,
            views: &self.env.views,
            timer,
        }
    }

    /// Counts changes of the views [`Stack::routes`] lists.
    #[inline]
    pub fn views_gen(&self) -> u64 {
        self.env.views_gen
    }

    /// Views installed at the bottom, newest first, and a counter of
    /// their changes: route frames by the view tag in their header with
    /// these.
    pub fn routes(&self) -> (u64, &VecDeque<Arc<View>>) {
        (self.env.views_gen, &self.env.views)
    }

    /// Drop counters.
    pub fn drops(&self) -> &Drops {
        &self.env.drops
    }

    /// Activity counters.
    pub fn stats(&self) -> &Stats {
        &self.env.stats
    }

    /// Messages held by the layers (retransmit buffers, backlogs,
    /// reassembly).
    pub fn buffered(&self) -> usize {
        self.part.buffered()
    }

    /// Every layer's state, one line each, top first (diagnostics).
    pub fn dump(&self) -> String {
        let mut s = String::new();
        self.part.dump(&mut s);
        s
    }
}

/// What [`Stack::cast_to`] calls with a fast-path cast's frame as soon as
/// it is made (when nothing waits before it in the stack's transmit
/// queue): true when it sent it, taking whatever references it needs
/// itself (the stack keeps the handle); false leaves it to the transmit
/// queue.
pub type SendNow<'a> = dyn FnMut(&Msg) -> bool + 'a;

/// See [`Stack::output`].
pub struct Output<'a> {
    /// Frames to put on the network, in order.
    pub tx: &'a mut VecDeque<(Dest, Msg)>,
    /// Counts changes of `views`.
    pub views_gen: u64,
    /// Views installed at the bottom, newest first (see [`Stack::routes`]).
    pub views: &'a VecDeque<Arc<View>>,
    /// `Some(next deadline)` when the timers changed since the last call.
    pub timer: Option<Option<Time>>,
}

/// Builds a stack for `spec`: static when `prefer_static` and a static
/// composition of that spec is compiled in, dynamic otherwise.
pub fn build(
    spec: &str,
    cfg: &StackConfig,
    ctl: Pool,
    prefer_static: bool,
) -> Result<Box<dyn GroupStack>, SpecError> {
    let parsed = Spec::parse(spec)?;
    if prefer_static {
        let canon = parsed.to_string();
        if canon == "com:nak:stable" {
            return Ok(Box::new(Stack::<ReliableStatic>::new_static(cfg, ctl)?));
        }
        if canon == "com:nak:frag:stable" {
            return Ok(Box::new(Stack::<FifoStatic>::new_static(cfg, ctl)?));
        }
        if canon == "com:nak:frag:stable:suspect:gms:xfer" {
            return Ok(Box::new(Stack::<VsyncStatic>::new_static(cfg, ctl)?));
        }
        if canon == "com:nak:frag:stable:suspect:gms:total:xfer" {
            return Ok(Box::new(Stack::<VsyncTotalStatic>::new_static(cfg, ctl)?));
        }
        if canon == "com:sign:crypt:nak:frag:stable:suspect:gms:xfer" {
            return Ok(Box::new(Stack::<VsyncSecureStatic>::new_static(cfg, ctl)?));
        }
        if canon == "com:sign:crypt:nak:frag:stable:suspect:gms:total:xfer" {
            return Ok(Box::new(Stack::<VsyncTotalSecureStatic>::new_static(
                cfg, ctl,
            )?));
        }
    }
    Ok(Box::new(Stack::new_dynamic(spec, cfg, ctl)?))
}
