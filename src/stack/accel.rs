//! The Protocol Accelerator (van Renesse, SIGCOMM 1996), in Rust.
//!
//! Every layer states its own common case (see the `fast_*` methods of
//! [`crate::layer::Layer`]): a predicate with no side effects, and the part
//! of its `down(Cast)` / `up(Cast)` that the common case runs, without the
//! header. A layer's fast part is the same code its full path runs (the
//! layers share the functions between the two), so the fast path cannot
//! drift from the protocol. The composition (`Part`) chains the parts into
//! direct calls, layer by layer, with no event queued in between; in a
//! static stack the compiler inlines the whole chain, and a layer whose
//! parts do nothing costs nothing.
//!
//! - **Send.** When every layer's predicate holds (an installed view, not
//!   flushing, the window open, one buffer, no state awaited), a cast runs
//!   each layer's fast part top down; `nak` numbers it and keeps its
//!   payload; `com` frames it in the compact format (8 bytes: a cookie for
//!   group, stack, view and sender, and the bit-packed sequence number);
//!   the own delivery runs each layer's fast part back up.
//! - **Receive.** A compact frame whose casts are the next expected of
//!   their sender, with nothing out of order and no layer holding anything
//!   for it, runs each layer's fast part bottom up. Otherwise the frame is
//!   expanded into the layers' headers and takes the full path.
//! - **Packing.** During a batch (the engine sends the casts that waited
//!   for the window or the polling thread in one batch), `com` packs
//!   consecutive casts into one frame up to a buffer: one copy of each
//!   payload, one header, one driver send. Receivers unpack without
//!   copying (each cast is a window on the frame).
//! - **Runs.** A batch's casts, and a packed frame's, go through every
//!   layer as one run (`Layer::fast_run_take`, `fast_down_run`,
//!   `fast_sent_run`, `fast_up_run_ok`, `fast_up_run`): numbered, packed,
//!   kept, counted and delivered together. A run ends before the cast that
//!   makes a layer emit (`fast_run_quiet`), which goes alone, so the wire
//!   and the deliveries are those of one cast at a time.
//! - **Equivalence.** `com` compresses the casts the full path makes too,
//!   so the wire is the same with the fast path on or off (apart from
//!   packing); the simulator checks this (`tests/accel.rs`).

use std::collections::VecDeque;

use tutti_drivers::{Msg, Shares};

use super::compose::Part;
use super::spec::LayerKind;
use super::Stack;
use crate::event::{Dest, Rank, Time, Up};
use crate::layer::{FastCast, FastRun};
use crate::wire::fast::{self, Entries};

/// What [`Stack::fast_later`] left to do for a cast it delivered.
pub(super) struct Post {
    src: Rank,
    seq: u64,
    /// When it arrived.
    at: Time,
    /// The handle the layer that keeps it takes ([`crate::layer::Cx::posting`]).
    keep: Msg,
}

impl<P: Part> Stack<P> {
    /// Sets up the compact format and the fast path: every layer must
    /// have a common case and `nak` must sit right above `com`.
    pub(super) fn accel_setup(&mut self, fast_on: bool) {
        let l = self.spec.layers();
        if l.first() != Some(&LayerKind::Com) || l.get(1) != Some(&LayerKind::Nak) {
            return;
        }
        let mut above = Vec::new();
        let cap = self.env.ctl.capacity();
        if self.part.fast_setup(&mut above, cap) {
            self.tmpl = Some(above.into());
            self.fast = fast_on;
        }
    }

    /// Whether this stack sends common-case casts in the compact format.
    pub fn compact(&self) -> bool {
        self.tmpl.is_some()
    }

    /// Whether this stack runs the fast path.
    pub fn fast(&self) -> bool {
        self.fast
    }

    /// Whether a cast of `msg` takes the fast path (every layer in its
    /// common case).
    #[inline(always)]
    pub(super) fn fast_down_ok(&self, msg: &Msg) -> bool {
        self.fast && self.part.fast_down_ok(msg)
    }

    /// The fast path's way down (`cast`'s, when `fast_down_ok`): the frame
    /// is made when this returns ([`Stack::fast_send`] sends it), the own
    /// delivery is still to come ([`Stack::fast_cast_own`]). In place: the
    /// cast's record is large enough that moving it costs a copy.
    #[inline(always)]
    pub(super) fn fast_cast_down(&mut self, fc: &mut FastCast) {
        self.env.stats.fast_out += 1;
        self.env.emitted = false;
        self.part.fast_cast(fc, 0, &mut self.env, &mut self.events);
    }

    /// Sends the frame `fast_cast_down` made, if it made one alone:
    /// through `send` by reference when nothing waits before it (then the
    /// frame's own handle becomes the bare payload, with no second count
    /// taken before the frame left), else onto the transmit queue. The
    /// layer that numbered the cast finds the payload in `fc.msg`.
    #[inline(always)]
    pub(super) fn fast_send<F: FnMut(&Msg) -> bool>(&mut self, fc: &mut FastCast, mut send: F) {
        let Some(frame) = fc.frame.take() else {
            return;
        };
        let mut bare = if self.env.tx.is_empty() && send(&frame) {
            frame
        } else {
            let bare = frame.share();
            self.env.tx.push_back((Dest::All, frame));
            bare
        };
        let _ = bare.advance(fast::LEN);
        fc.msg = Some(bare);
    }

    /// The own delivery of a cast `fast_cast_down` sent, through the
    /// layers above its numbering; then whatever the layers emitted on
    /// the way is handled. The delivery goes onto `direct` when given
    /// (see [`Stack::deliver`]).
    #[inline]
    pub(super) fn fast_cast_own(&mut self, fc: &mut FastCast, direct: Option<&mut VecDeque<Up>>) {
        self.part.fast_own(fc, 0, &mut self.env, &mut self.events);
        if self.env.emitted {
            self.part.settle_all(&mut self.env, &mut self.events);
        }
        if let Some(m) = fc.own.take().or(fc.msg.take()) {
            if self.env.discard_own {
                return;
            }
            let ev = Up::Cast {
                src: fc.src,
                seq: fc.seq,
                msg: m,
            };
            self.deliver(ev, direct);
        }
    }

    /// Puts a fast-path delivery on the application's queue `direct` (an
    /// engine's, which `output` appends to) when nothing waits here before
    /// it, else here: the order is the same either way.
    #[inline(always)]
    fn deliver(&mut self, ev: Up, direct: Option<&mut VecDeque<Up>>) {
        match direct {
            Some(q) if self.events.is_empty() => q.push_back(ev),
            _ => self.events.push_back(ev),
        }
    }

    /// Starts a batch: until [`Stack::end_batch`], casts on the fast path
    /// are packed into shared frames.
    pub fn begin_batch(&mut self) {
        self.run_post();
        self.env.packing = self.fast;
    }

    /// Ends a batch: what was packed goes out.
    pub fn end_batch(&mut self) {
        self.flush_batch();
        self.env.packing = false;
    }

    /// Sends what the batch packed so far: every entry point but the fast
    /// path's `cast` calls it first, so nothing overtakes a packed cast.
    #[inline]
    pub(super) fn flush_batch(&mut self) {
        if self.env.packing {
            self.part.fast_flush(&mut self.env, &mut self.events);
        }
    }

    /// The fast path of `receive`; gives the frame back when it is not a
    /// compact frame this stack reads. Deliveries go onto `direct` when
    /// given (see [`Stack::deliver`]).
    #[inline]
    pub(super) fn fast_receive(
        &mut self,
        frame: Msg,
        mut direct: Option<&mut VecDeque<Up>>,
    ) -> Result<(), Msg> {
        if !self.fast || !fast::is_compact(frame.front()) {
            return Err(frame);
        }
        let (src, c) = match self.part.fast_parse(frame.front()) {
            None => return Err(frame),
            Some(Ok(x)) => x,
            Some(Err(r)) => {
                self.env.stats.frames_in += 1;
                self.env.drops.add(r);
                return Ok(());
            }
        };
        self.env.stats.frames_in += 1;
        if !c.packed {
            let mut m = frame;
            let _ = m.advance(fast::LEN);
            let ok = self.part.fast_up_ok(src, c.seq);
            if ok && self.part.fast_up_later(src, c.seq) {
                self.fast_later(src, c.seq, m, direct);
            } else {
                self.fast_one(ok, src, c.seq, m, direct);
            }
            return Ok(());
        }
        // Checked by the parse: the entries fill the frame. Each cast takes
        // two handles on the frame (the delivery and the twin `nak` keeps
        // for repair), counted at once; unused ones go back at the end.
        let body = &frame.front()[fast::LEN..];
        let most = (body.len() / fast::ENTRY_LEN) as u32;
        let Some(mut sh) = frame.share_bulk(2 * most) else {
            return Err(frame);
        };
        let mut entries = Entries::new(body);
        let mut seq = c.seq;
        if self.runs {
            loop {
                // A run ends before the cast that makes a layer emit: that
                // one goes alone, so what it emits comes after the casts
                // before it and before its own delivery, as one at a time.
                let most = self.part.fast_run_quiet(src, seq).saturating_sub(1);
                if most == 0 {
                    if !self.fast_entry(src, seq, &mut entries, &mut sh, &mut direct) {
                        return Ok(());
                    }
                    seq += 1;
                    continue;
                }
                if !self.part.fast_up_run_ok(src, seq, most) {
                    break;
                }
                let k = self.fast_up_run(src, seq, most, &mut entries, &mut sh, &mut direct);
                seq += k;
                if k < most {
                    return Ok(());
                }
            }
        }
        while self.fast_entry(src, seq, &mut entries, &mut sh, &mut direct) {
            seq += 1;
        }
        Ok(())
    }

    /// The next cast of a packed frame (`entries`, handles from `sh`), one
    /// at a time: false when there is none.
    #[inline(always)]
    fn fast_entry(
        &mut self,
        src: Rank,
        seq: u64,
        entries: &mut Entries<'_>,
        sh: &mut Shares,
        direct: &mut Option<&mut VecDeque<Up>>,
    ) -> bool {
        let Some((m, twin)) = next_entry(entries, sh) else {
            return false;
        };
        self.env.twin = Some(twin);
        let ok = self.part.fast_up_ok(src, seq);
        self.fast_one(ok, src, seq, m, direct.as_deref_mut());
        self.env.twin = None;
        true
    }

    /// Up to `most` next casts of a packed frame (`entries`, handles from
    /// `sh`) as one run, which every layer takes (`fast_up_run_ok`) and in
    /// which none emits (`fast_run_quiet`): each is delivered at once,
    /// with a second handle for the layer that keeps casts
    /// (`Env::run_keep`), then each layer's `fast_up_run` runs for them
    /// all. Returns how many there were (fewer: the frame ended).
    #[inline]
    fn fast_up_run(
        &mut self,
        src: Rank,
        seq: u64,
        most: u64,
        entries: &mut Entries<'_>,
        sh: &mut Shares,
        direct: &mut Option<&mut VecDeque<Up>>,
    ) -> u64 {
        // Where `deliver` puts each (nothing waits here before them).
        let q = match direct.as_deref_mut() {
            Some(q) if self.events.is_empty() => q,
            _ => &mut self.events,
        };
        let keep = &mut self.env.run_keep;
        let mut k = 0;
        while k < most {
            let Some((msg, kept)) = next_entry(entries, sh) else {
                break;
            };
            keep.push_back(kept);
            q.push_back(Up::Cast {
                src,
                seq: seq + k,
                msg,
            });
            k += 1;
        }
        if k == 0 {
            return 0;
        }
        self.env.stats.fast_in += k;
        self.env.stats.run_in += k;
        self.env.emitted = false;
        self.part
            .fast_up_run(src, seq, k, &mut self.env, &mut self.events);
        // Every handle went to the layer that keeps them (else dropped).
        self.env.run_keep.clear();
        // Nothing is expected (the run ends before an emitting cast); what
        // a layer emitted all the same follows the run's deliveries.
        if self.env.emitted {
            self.part.settle_all(&mut self.env, &mut self.events);
        }
        k
    }

    /// Casts the front of a batch (`msgs`) as runs while every layer
    /// takes them so (`Layer::fast_run_take`): a run is numbered, packed,
    /// kept and delivered to its sender at once. Returns how many it cast;
    /// the rest go one at a time (`cast`).
    pub(super) fn cast_runs(&mut self, now: Time, msgs: &mut VecDeque<Msg>) -> usize {
        if !(self.runs && self.env.packing) {
            return 0;
        }
        self.env.now = now;
        let mut done = 0;
        while !msgs.is_empty() {
            let Some((me, next)) = self.part.fast_next_cast() else {
                break;
            };
            // The cast that makes a layer emit goes alone (see
            // `fast_receive`).
            let quiet = self.part.fast_run_quiet(me, next);
            let most = quiet.saturating_sub(1).max(1).min(msgs.len() as u64) as usize;
            let run = &msgs.make_contiguous()[..most];
            let ok = run
                .iter()
                .take_while(|m| self.refuse(m, None).is_none())
                .count();
            let k = self.part.fast_run_take(&run[..ok]);
            if k == 0 {
                break;
            }
            self.env.stats.fast_out += k as u64;
            self.env.stats.run_out += k as u64;
            self.env.emitted = false;
            let mut run = FastRun::new(&run[..k]);
            self.part
                .fast_cast_run(&mut run, 0, &mut self.env, &mut self.events);
            if self.env.discard_own {
                // No deliveries: the layer that keeps the run takes the
                // handles themselves, from the front of the batch (lent
                // as `run_keep` for the while, so nothing is moved twice).
                let mut own = run.counted();
                let before = msgs.len();
                debug_assert!(self.env.run_keep.is_empty());
                std::mem::swap(&mut self.env.run_keep, msgs);
                self.part
                    .fast_own_run(&mut own, 0, &mut self.env, &mut self.events);
                std::mem::swap(&mut self.env.run_keep, msgs);
                debug_assert_eq!(msgs.len() + k, before, "a run's handles not kept");
                // Cast all the same: never cast again.
                let left = (msgs.len() + k).saturating_sub(before).min(msgs.len());
                msgs.drain(..left);
                if self.env.emitted {
                    self.part.settle_all(&mut self.env, &mut self.events);
                }
                done += k;
                continue;
            }
            self.part
                .fast_own_run(&mut run, 0, &mut self.env, &mut self.events);
            let (src, seq) = (run.src, run.seq);
            debug_assert!(run.own_due, "a run nobody numbered");
            if self.env.emitted {
                self.part.settle_all(&mut self.env, &mut self.events);
            }
            for (i, msg) in msgs.drain(..k).enumerate() {
                let seq = seq + i as u64;
                self.events.push_back(Up::Cast { src, seq, msg });
            }
            done += k;
        }
        done
    }

    /// A lone cast every layer takes in its common case, and whose layers'
    /// part can wait: it is delivered now and the layers' part (keeping it
    /// for repair, counting it, ...) runs as post-processing, after the
    /// application had it (when the next entry point runs, which for an
    /// application answering a message is the answer's cast, once its frame
    /// is out). Header prediction and post-processing are what made
    /// Horus's Protocol Accelerator fast: the work between a frame's
    /// arrival and its delivery, and between a cast and its frame, is what
    /// a round trip waits for.
    #[inline(always)]
    fn fast_later(&mut self, src: Rank, seq: u64, msg: Msg, direct: Option<&mut VecDeque<Up>>) {
        self.env.stats.fast_in += 1;
        self.env.stats.fast_later += 1;
        debug_assert!(self.post.is_none(), "a post-processing overwritten");
        let keep = msg.share();
        self.deliver(Up::Cast { src, seq, msg }, direct);
        self.post = Some(Post {
            src,
            seq,
            at: self.env.now,
            keep,
        });
    }

    /// Runs the post-processing a delivery left, if any: every entry point
    /// calls this before it touches a layer (a fast-path cast, after its
    /// frame left).
    #[inline(always)]
    pub(super) fn run_post(&mut self) {
        if let Some(p) = self.post.take() {
            self.post_now(p);
        }
    }

    #[inline(never)]
    fn post_now(&mut self, p: Post) {
        // The layers see the time the cast arrived (timers armed for it
        // fall where the immediate path puts them).
        let now = std::mem::replace(&mut self.env.now, p.at);
        let emitted = std::mem::take(&mut self.env.emitted);
        self.env.posting = true;
        let mut m = Some(p.keep);
        self.part
            .fast_up(p.src, p.seq, &mut m, true, &mut self.env, &mut self.events);
        self.env.posting = false;
        // `fast_up_later` promised nothing would be emitted; settled all
        // the same if something was (after the delivery, already out).
        debug_assert!(!self.env.emitted, "post-processing emitted an event");
        if self.env.emitted {
            self.part.settle_all(&mut self.env, &mut self.events);
        }
        // What the entry that ran this had emitted still waits for it.
        self.env.emitted = emitted;
        self.env.now = now;
    }

    /// When post-processing is waiting: its time (due at once).
    #[inline]
    pub(super) fn post_due(&self) -> Option<Time> {
        self.post.as_ref().map(|p| p.at)
    }

    /// One cast of a compact frame: the fast path if every layer takes it
    /// (`ok`, from `fast_up_ok`), else expanded into the full path.
    #[inline(always)]
    fn fast_one(
        &mut self,
        ok: bool,
        src: Rank,
        seq: u64,
        msg: Msg,
        direct: Option<&mut VecDeque<Up>>,
    ) {
        if ok {
            self.env.stats.fast_in += 1;
            self.env.emitted = false;
            let mut m = Some(msg);
            self.part
                .fast_up(src, seq, &mut m, false, &mut self.env, &mut self.events);
            if self.env.emitted {
                self.part.settle_all(&mut self.env, &mut self.events);
            }
            if let Some(m) = m {
                self.deliver(Up::Cast { src, seq, msg: m }, direct);
            }
            return;
        }
        self.env.stats.fast_missed += 1;
        let Some(tmpl) = &self.tmpl else {
            return;
        };
        if let Some(m) = crate::layers::com::expand(&mut self.env, tmpl, seq, msg.front()) {
            self.part
                .inject(Up::CastRaw { src, msg: m }, &mut self.env, &mut self.events);
        }
    }
}

/// The next cast of a packed frame: two handles on it (the delivery and
/// the one the layer that keeps casts takes), from the frame's bulk
/// count; `None` when the frame has no more.
#[inline(always)]
fn next_entry(entries: &mut Entries<'_>, sh: &mut Shares) -> Option<(Msg, Msg)> {
    let Some(Ok((off, len))) = entries.next() else {
        return None;
    };
    Some((
        sh.window(fast::LEN + off, len)?,
        sh.window(fast::LEN + off, len)?,
    ))
}
