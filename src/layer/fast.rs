//! What the Protocol Accelerator's fast path hands from layer to layer
//! (see `stack::accel`): one common-case cast, or a run of them.

use tutti_drivers::Msg;

use crate::event::Rank;

/// A common-case cast on its way down the fast path.
#[derive(Debug)]
pub struct FastCast {
    /// The message, until the bottom layer frames it.
    pub msg: Option<Msg>,
    /// The compact frame the bottom layer made of it (alone, not packed):
    /// the stack hands it out by reference and, once it is out, makes
    /// the bare payload handle of it (`msg`), so no second handle is
    /// counted before the frame leaves.
    pub frame: Option<Msg>,
    /// Own rank (set by the sequencing layer).
    pub src: Rank,
    /// Sequence number (set by the sequencing layer).
    pub seq: u64,
    /// Own delivery, made by the sequencing layer; the layers above it see
    /// it come up as they return.
    pub own: Option<Msg>,
    /// The sequencing layer numbered the cast: it is delivered to its
    /// sender (as `own`, which the sequencing layer's `fast_sent` fills).
    pub own_due: bool,
    /// Depth (from the top, 0) of the layer that numbered it: the own
    /// delivery goes up through the layers above that one.
    pub own_depth: usize,
}

impl FastCast {
    /// `msg`, about to enter the top layer.
    pub fn new(msg: Msg) -> FastCast {
        FastCast {
            msg: Some(msg),
            frame: None,
            src: 0,
            seq: 0,
            own: None,
            own_due: false,
            own_depth: 0,
        }
    }
}

/// A run of common-case casts of one batch on its way down the fast path
/// (`Layer::fast_down_run`): what [`FastCast`] is for one cast, for
/// `msgs.len()` consecutive casts at once. The layers do for the run what
/// their `fast_down` would do for each cast in turn; the own deliveries
/// come back up as one run too (`Layer::fast_sent_run`,
/// `Layer::fast_up_run`).
#[derive(Debug)]
pub struct FastRun<'a> {
    /// The casts, in order; empty once the handles went to the layer
    /// that keeps them (see [`FastRun::counted`]).
    pub msgs: &'a [Msg],
    /// How many casts the run holds.
    pub n: u64,
    /// Own rank (set by the sequencing layer).
    pub src: Rank,
    /// Sequence number of the first (set by the sequencing layer; the
    /// others follow it).
    pub seq: u64,
    /// The sequencing layer numbered the run.
    pub own_due: bool,
    /// Depth (from the top, 0) of the layer that numbered it.
    pub own_depth: usize,
}

impl<'a> FastRun<'a> {
    /// `msgs`, about to enter the top layer.
    pub fn new(msgs: &'a [Msg]) -> FastRun<'a> {
        FastRun {
            msgs,
            n: msgs.len() as u64,
            src: 0,
            seq: 0,
            own_due: false,
            own_depth: 0,
        }
    }

    /// The same run without its messages (their handles go to the layer
    /// that keeps them through `Env::run_keep`): numbered as this one.
    pub fn counted(&self) -> FastRun<'static> {
        FastRun {
            msgs: &[],
            n: self.n,
            src: self.src,
            seq: self.seq,
            own_due: self.own_due,
            own_depth: self.own_depth,
        }
    }

    /// How many casts the run holds.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether the run holds no cast.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
