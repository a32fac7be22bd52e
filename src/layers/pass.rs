//! `pass`: a layer that does nothing. Every event goes through unchanged,
//! and its common case is empty. It measures what layering itself costs:
//! a stack with more `pass` layers must cost the same on the fast path
//! (`cargo bench --bench accel`, `scripts/instr.sh`). May appear more
//! than once in a spec.

use tutti_drivers::Msg;

use crate::event::{Down, Rank, Up};
use crate::layer::{Cx, Layer, LayerInfo};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "pass",
    needs: &[],
    needs_above: &[],
    provides: &[],
    bottom: false,
    about: "does nothing (measures the cost of layering)",
};

/// The `pass` layer.
#[derive(Default)]
pub struct Pass;

impl Layer for Pass {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        if !matches!(ev, Down::Timer(_)) {
            cx.down(ev);
        }
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.up(ev);
    }

    fn fast_tag(&self) -> Option<&'static [u8]> {
        Some(&[])
    }

    fn fast_up_later(&self, _src: Rank, _seq: u64) -> bool {
        true
    }

    fn fast_run_take(&self, msgs: &[Msg]) -> usize {
        msgs.len()
    }

    fn fast_up_run_ok(&self, _src: Rank, _seq: u64, _n: u64) -> bool {
        true
    }
}
