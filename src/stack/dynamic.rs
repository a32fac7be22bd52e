//! The dynamic composition: a slice of boxed layers built from a spec
//! string, moving events as `Cons` does (see `stack::compose`). It runs
//! the fast path one cast at a time (no runs: the `Part` defaults).

use std::collections::VecDeque;

use tutti_drivers::Msg;

use super::compose::{cast_step, dump_layer, own_step, Part};
use crate::event::{Down, Rank, Time, Up};
use crate::layer::{Cx, DropReason, Env, FastCast, Layer, Timers};
use crate::wire::fast::Compact;

/// One level of a dynamic stack.
pub struct Level {
    layer: Box<dyn Layer>,
    downq: VecDeque<Down>,
    upq: VecDeque<Up>,
    timers: Timers,
}

impl Level {
    /// A level holding `layer`.
    pub fn new(layer: Box<dyn Layer>) -> Level {
        Level {
            layer,
            downq: VecDeque::with_capacity(16),
            upq: VecDeque::with_capacity(16),
            timers: Timers::default(),
        }
    }
}

/// A stack of boxed layers, top first.
pub struct Dynamic {
    levels: Vec<Level>,
}

impl Dynamic {
    /// Layers top first.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Dynamic {
        Dynamic {
            levels: layers.into_iter().map(Level::new).collect(),
        }
    }
}

fn settle(lvl: &mut Level, below: &mut [Level], env: &mut Env, out: &mut VecDeque<Up>) {
    loop {
        if let Some(d) = lvl.downq.pop_front() {
            down_at(below, d, env, &mut lvl.upq);
        } else if let Some(u) = lvl.upq.pop_front() {
            let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
            lvl.layer.up(u, &mut cx);
        } else {
            break;
        }
    }
}

fn down_at(levels: &mut [Level], ev: Down, env: &mut Env, out: &mut VecDeque<Up>) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
    lvl.layer.down(ev, &mut cx);
    settle(lvl, below, env, out);
}

fn recv_at(levels: &mut [Level], frame: Msg, env: &mut Env, out: &mut VecDeque<Up>) {
    match levels.split_first_mut() {
        None => out.push_back(Up::Recv(frame)),
        Some((lvl, below)) => {
            recv_at(below, frame, env, &mut lvl.upq);
            settle(lvl, below, env, out);
        }
    }
}

fn fire_at(levels: &mut [Level], env: &mut Env, out: &mut VecDeque<Up>) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    while let Some(token) = lvl.timers.pop_due(env.now) {
        let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
        lvl.layer.down(Down::Timer(token), &mut cx);
        settle(lvl, below, env, out);
    }
    fire_at(below, env, &mut lvl.upq);
    settle(lvl, below, env, out);
}

fn inject_at(levels: &mut [Level], ev: Up, env: &mut Env, out: &mut VecDeque<Up>) {
    match levels.split_first_mut() {
        None => out.push_back(ev),
        Some((lvl, below)) => {
            inject_at(below, ev, env, &mut lvl.upq);
            settle(lvl, below, env, out);
        }
    }
}

fn fast_cast_at(
    levels: &mut [Level],
    fc: &mut FastCast,
    depth: usize,
    env: &mut Env,
    out: &mut VecDeque<Up>,
) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
    cast_step(lvl.layer.as_mut(), fc, depth, &mut cx);
    fast_cast_at(below, fc, depth + 1, env, &mut lvl.upq);
}

fn fast_own_at(
    levels: &mut [Level],
    fc: &mut FastCast,
    depth: usize,
    env: &mut Env,
    out: &mut VecDeque<Up>,
) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    fast_own_at(below, fc, depth + 1, env, &mut lvl.upq);
    if fc.own_due && depth <= fc.own_depth {
        let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
        own_step(lvl.layer.as_mut(), fc, depth, &mut cx);
    }
}

/// `fast_up` through the levels, bottom up; `post`: each level's whether
/// or not one below took `msg` (post-processing).
fn fast_up_at(
    levels: &mut [Level],
    src: Rank,
    seq: u64,
    msg: &mut Option<Msg>,
    post: bool,
    env: &mut Env,
    out: &mut VecDeque<Up>,
) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    fast_up_at(below, src, seq, msg, post, env, &mut lvl.upq);
    if post || msg.is_some() {
        let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
        lvl.layer.fast_up(src, seq, msg, &mut cx);
    }
}

fn settle_all_at(levels: &mut [Level], env: &mut Env, out: &mut VecDeque<Up>) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    settle_all_at(below, env, &mut lvl.upq);
    settle(lvl, below, env, out);
}

fn fast_flush_at(levels: &mut [Level], env: &mut Env, out: &mut VecDeque<Up>) {
    let Some((lvl, below)) = levels.split_first_mut() else {
        return;
    };
    let mut cx = Cx::new(env, &mut lvl.downq, out, &mut lvl.timers);
    lvl.layer.fast_flush(&mut cx);
    settle(lvl, below, env, out);
    fast_flush_at(below, env, &mut lvl.upq);
    settle(lvl, below, env, out);
}

impl Part for Dynamic {
    fn down(&mut self, ev: Down, env: &mut Env, out: &mut VecDeque<Up>) {
        down_at(&mut self.levels, ev, env, out);
    }

    fn recv(&mut self, frame: Msg, env: &mut Env, out: &mut VecDeque<Up>) {
        recv_at(&mut self.levels, frame, env, out);
    }

    fn fire(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        fire_at(&mut self.levels, env, out);
    }

    fn next_timer(&self) -> Option<Time> {
        self.levels.iter().filter_map(|l| l.timers.next()).min()
    }

    fn ready(&self) -> bool {
        self.levels.iter().all(|l| l.layer.ready())
    }

    fn buffered(&self) -> usize {
        self.levels.iter().map(|l| l.layer.buffered()).sum()
    }

    fn dump(&self, out: &mut String) {
        for l in &self.levels {
            dump_layer(l.layer.as_ref(), out);
        }
    }

    fn inject(&mut self, ev: Up, env: &mut Env, out: &mut VecDeque<Up>) {
        inject_at(&mut self.levels, ev, env, out);
    }

    fn fast_setup(&mut self, above: &mut Vec<u8>, cap: usize) -> bool {
        for l in &mut self.levels {
            let Some(tag) = l.layer.fast_tag() else {
                return false;
            };
            l.layer.fast_setup(above, cap);
            above.splice(0..0, tag.iter().copied());
        }
        true
    }

    fn fast_down_ok(&self, msg: &Msg) -> bool {
        self.levels.iter().all(|l| l.layer.fast_down_ok(msg))
    }

    fn fast_cast(
        &mut self,
        fc: &mut FastCast,
        depth: usize,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    ) {
        fast_cast_at(&mut self.levels, fc, depth, env, out);
    }

    fn fast_own(&mut self, fc: &mut FastCast, depth: usize, env: &mut Env, out: &mut VecDeque<Up>) {
        fast_own_at(&mut self.levels, fc, depth, env, out);
    }

    fn fast_up_ok(&self, src: Rank, seq: u64) -> bool {
        self.levels.iter().all(|l| l.layer.fast_up_ok(src, seq))
    }

    fn fast_up(
        &mut self,
        src: Rank,
        seq: u64,
        msg: &mut Option<Msg>,
        post: bool,
        env: &mut Env,
        out: &mut VecDeque<Up>,
    ) {
        fast_up_at(&mut self.levels, src, seq, msg, post, env, out)
    }

    fn fast_up_later(&self, src: Rank, seq: u64) -> bool {
        self.levels.iter().all(|l| l.layer.fast_up_later(src, seq))
    }

    fn fast_parse(&self, frame: &[u8]) -> Option<Result<(Rank, Compact), DropReason>> {
        self.levels.last()?.layer.fast_parse(frame)
    }

    fn fast_flush(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        fast_flush_at(&mut self.levels, env, out);
    }

    fn settle_all(&mut self, env: &mut Env, out: &mut VecDeque<Up>) {
        settle_all_at(&mut self.levels, env, out);
    }
}
