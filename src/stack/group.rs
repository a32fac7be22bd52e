//! [`GroupStack`]: the object-safe face of every [`Stack`], and its
//! forwarding for boxes (the engine and the simulator hold stacks of
//! different compositions side by side).

use std::collections::VecDeque;
use std::sync::Arc;

use tutti_drivers::Msg;

use super::compose::Part;
use super::{Output, SendError, SendNow, Spec, Stack};
use crate::event::{Dest, Down, JoinReq, Rank, Time, Up, View};
use crate::layer::{Drops, Stats};

/// Object-safe face of any [`Stack`], for code that holds stacks of
/// different compositions side by side (the simulator, the engine).
pub trait GroupStack: Send {
    /// See [`Stack::spec`].
    fn spec(&self) -> &Spec;
    /// See [`Stack::install_view`].
    fn install_view(&mut self, now: Time, view: View);
    /// See [`Stack::join`].
    fn join(&mut self, now: Time, req: JoinReq);
    /// See [`Stack::cast`].
    fn cast(&mut self, now: Time, msg: Msg) -> Result<(), SendError>;
    /// See [`Stack::cast_to`].
    fn cast_to(
        &mut self,
        now: Time,
        msg: Msg,
        send: &mut SendNow<'_>,
        events: &mut VecDeque<Up>,
    ) -> Result<bool, SendError>;
    /// See [`Stack::cast_batch`].
    fn cast_batch(
        &mut self,
        now: Time,
        msgs: &mut VecDeque<Msg>,
    ) -> Result<usize, (usize, SendError)>;
    /// See [`Stack::send`].
    fn send(&mut self, now: Time, dst: Rank, msg: Msg) -> Result<(), SendError>;
    /// See [`Stack::handle_down`].
    fn handle_down(&mut self, now: Time, ev: Down);
    /// See [`Stack::receive`].
    fn receive(&mut self, now: Time, frame: Msg);
    /// See [`Stack::receive_to`].
    fn receive_to(&mut self, now: Time, frame: Msg, events: &mut VecDeque<Up>) -> bool;
    /// See [`Stack::handle_timeout`].
    fn handle_timeout(&mut self, now: Time);
    /// See [`Stack::poll_timeout`].
    fn poll_timeout(&self) -> Option<Time>;
    /// See [`Stack::timers_changed`].
    fn timers_changed(&mut self) -> bool;
    /// See [`Stack::post`].
    fn post(&mut self) -> bool;
    /// See [`Stack::poll_transmit`].
    fn poll_transmit(&mut self) -> Option<(Dest, Msg)>;
    /// See [`Stack::poll_event`].
    fn poll_event(&mut self) -> Option<Up>;
    /// See [`Stack::output`].
    fn output(&mut self, events: &mut VecDeque<Up>) -> Output<'_>;
    /// See [`Stack::ready`].
    fn ready(&self) -> bool;
    /// See [`Stack::views_gen`].
    fn views_gen(&self) -> u64;
    /// See [`Stack::routes`].
    fn routes(&self) -> (u64, &VecDeque<Arc<View>>);
    /// See [`Stack::drops`].
    fn drops(&self) -> &Drops;
    /// See [`Stack::stats`].
    fn stats(&self) -> &Stats;
    /// See [`Stack::begin_batch`].
    fn begin_batch(&mut self);
    /// See [`Stack::end_batch`].
    fn end_batch(&mut self);
    /// See [`Stack::fast`].
    fn fast(&self) -> bool;
    /// See [`Stack::compact`].
    fn compact(&self) -> bool;
    /// See [`Stack::buffered`].
    fn buffered(&self) -> usize;
    /// See [`Stack::dump`].
    fn dump(&self) -> String;
}

impl<P: Part> GroupStack for Stack<P> {
    fn spec(&self) -> &Spec {
        Stack::spec(self)
    }
    fn install_view(&mut self, now: Time, view: View) {
        Stack::install_view(self, now, view)
    }
    fn join(&mut self, now: Time, req: JoinReq) {
        Stack::join(self, now, req)
    }
    fn cast(&mut self, now: Time, msg: Msg) -> Result<(), SendError> {
        Stack::cast(self, now, msg)
    }
    fn cast_to(
        &mut self,
        now: Time,
        msg: Msg,
        send: &mut SendNow<'_>,
        events: &mut VecDeque<Up>,
    ) -> Result<bool, SendError> {
        Stack::cast_to(self, now, msg, send, events)
    }
    fn cast_batch(
        &mut self,
        now: Time,
        msgs: &mut VecDeque<Msg>,
    ) -> Result<usize, (usize, SendError)> {
        Stack::cast_batch(self, now, msgs)
    }
    fn send(&mut self, now: Time, dst: Rank, msg: Msg) -> Result<(), SendError> {
        Stack::send(self, now, dst, msg)
    }
    fn handle_down(&mut self, now: Time, ev: Down) {
        Stack::handle_down(self, now, ev)
    }
    fn receive(&mut self, now: Time, frame: Msg) {
        Stack::receive(self, now, frame)
    }
    fn receive_to(&mut self, now: Time, frame: Msg, events: &mut VecDeque<Up>) -> bool {
        Stack::receive_to(self, now, frame, events)
    }
    fn handle_timeout(&mut self, now: Time) {
        Stack::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Time> {
        Stack::poll_timeout(self)
    }
    fn timers_changed(&mut self) -> bool {
        Stack::timers_changed(self)
    }
    fn post(&mut self) -> bool {
        Stack::post(self)
    }
    fn poll_transmit(&mut self) -> Option<(Dest, Msg)> {
        Stack::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Up> {
        Stack::poll_event(self)
    }
    fn output(&mut self, events: &mut VecDeque<Up>) -> Output<'_> {
        Stack::output(self, events)
    }
    fn ready(&self) -> bool {
        Stack::ready(self)
    }
    fn views_gen(&self) -> u64 {
        Stack::views_gen(self)
    }
    fn routes(&self) -> (u64, &VecDeque<Arc<View>>) {
        Stack::routes(self)
    }
    fn drops(&self) -> &Drops {
        Stack::drops(self)
    }
    fn stats(&self) -> &Stats {
        Stack::stats(self)
    }
    fn begin_batch(&mut self) {
        Stack::begin_batch(self)
    }
    fn end_batch(&mut self) {
        Stack::end_batch(self)
    }
    fn fast(&self) -> bool {
        Stack::fast(self)
    }
    fn compact(&self) -> bool {
        Stack::compact(self)
    }
    fn buffered(&self) -> usize {
        Stack::buffered(self)
    }
    fn dump(&self) -> String {
        Stack::dump(self)
    }
}

impl<T: GroupStack + ?Sized> GroupStack for Box<T> {
    fn spec(&self) -> &Spec {
        (**self).spec()
    }
    fn install_view(&mut self, now: Time, view: View) {
        (**self).install_view(now, view)
    }
    fn join(&mut self, now: Time, req: JoinReq) {
        (**self).join(now, req)
    }
    fn cast(&mut self, now: Time, msg: Msg) -> Result<(), SendError> {
        (**self).cast(now, msg)
    }
    fn cast_to(
        &mut self,
        now: Time,
        msg: Msg,
        send: &mut SendNow<'_>,
        events: &mut VecDeque<Up>,
    ) -> Result<bool, SendError> {
        (**self).cast_to(now, msg, send, events)
    }
    fn cast_batch(
        &mut self,
        now: Time,
        msgs: &mut VecDeque<Msg>,
    ) -> Result<usize, (usize, SendError)> {
        (**self).cast_batch(now, msgs)
    }
    fn send(&mut self, now: Time, dst: Rank, msg: Msg) -> Result<(), SendError> {
        (**self).send(now, dst, msg)
    }
    fn handle_down(&mut self, now: Time, ev: Down) {
        (**self).handle_down(now, ev)
    }
    fn receive(&mut self, now: Time, frame: Msg) {
        (**self).receive(now, frame)
    }
    fn receive_to(&mut self, now: Time, frame: Msg, events: &mut VecDeque<Up>) -> bool {
        (**self).receive_to(now, frame, events)
    }
    fn handle_timeout(&mut self, now: Time) {
        (**self).handle_timeout(now)
    }
    fn poll_timeout(&self) -> Option<Time> {
        (**self).poll_timeout()
    }
    fn timers_changed(&mut self) -> bool {
        (**self).timers_changed()
    }
    fn post(&mut self) -> bool {
        (**self).post()
    }
    fn poll_transmit(&mut self) -> Option<(Dest, Msg)> {
        (**self).poll_transmit()
    }
    fn output(&mut self, events: &mut VecDeque<Up>) -> Output<'_> {
        (**self).output(events)
    }
    fn poll_event(&mut self) -> Option<Up> {
        (**self).poll_event()
    }
    fn ready(&self) -> bool {
        (**self).ready()
    }
    fn views_gen(&self) -> u64 {
        (**self).views_gen()
    }
    fn routes(&self) -> (u64, &VecDeque<Arc<View>>) {
        (**self).routes()
    }
    fn drops(&self) -> &Drops {
        (**self).drops()
    }
    fn stats(&self) -> &Stats {
        (**self).stats()
    }
    fn begin_batch(&mut self) {
        (**self).begin_batch()
    }
    fn end_batch(&mut self) {
        (**self).end_batch()
    }
    fn fast(&self) -> bool {
        (**self).fast()
    }
    fn compact(&self) -> bool {
        (**self).compact()
    }
    fn buffered(&self) -> usize {
        (**self).buffered()
    }
    fn dump(&self) -> String {
        (**self).dump()
    }
}
