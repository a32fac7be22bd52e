//! Events for C: `tutti_poll` fills a `TuttiEvent`; its pointers stay
//! valid until `tutti_event_clear` or the next `tutti_poll` with it.

use std::ffi::c_void;

use tutti_core::{Event, Msg};

use crate::TUTTI_OK;
use crate::{guard, wait_event, TuttiGroup, TuttiStateWriter, TUTTI_ERR_NULL, TUTTI_ERR_TIMEOUT};

/// Kinds of `TuttiEvent`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuttiEventKind {
    /// Nothing (a cleared event).
    None = 0,
    /// A multicast: `sender`, `seq`, `data`, `len`.
    Deliver = 1,
    /// A point-to-point message: `sender`, `seq`, `data`, `len`.
    Send = 2,
    /// A new view: `view_ltime`, `view_coord`, `rank`, `members`,
    /// `nmembers`, `flags` (1: a merge, 2: primary).
    View = 3,
    /// A view change is under way: stop sending (answer with
    /// `tutti_block_ok` when the endpoint has `TUTTI_APP_BLOCK_OK`).
    Block = 4,
    /// Stability: `vector`, `nvector` (per sender rank, how many casts
    /// every member holds).
    Stable = 5,
    /// This member has left; the group is done.
    Exit = 6,
    /// Members suspected of failure: `vector` holds their ranks.
    Suspect = 7,
    /// Primary-partition mode: the current view became primary.
    Primary = 8,
    /// Casts of `sender` from `seq` to `len` (exclusive) were lost.
    Lost = 9,
    /// Secure groups: a process was refused (a joiner whose key is not
    /// authorized; or, in a joiner, the group refused it and an `EXIT`
    /// follows). `data`, `len`: the reason, UTF-8, not NUL-terminated.
    Refused = 10,
}

/// One event. Fill with `tutti_poll`; release with `tutti_event_clear`.
#[repr(C)]
pub struct TuttiEvent {
    /// What happened.
    pub kind: TuttiEventKind,
    /// Sender's rank (deliveries).
    pub sender: u16,
    /// Own rank (views).
    pub rank: u16,
    /// View flags: 1 merge, 2 primary.
    pub flags: u32,
    /// Sequence number (deliveries).
    pub seq: u64,
    /// Payload (deliveries). Often points straight into the transport's
    /// receive buffer, which the event holds until `tutti_event_clear` or
    /// the next `tutti_poll` on it: clear events you keep around.
    pub data: *const u8,
    /// Payload length (deliveries; lost: end of the lost range).
    pub len: usize,
    /// View id: logical time.
    pub view_ltime: u64,
    /// View id: coordinator.
    pub view_coord: u64,
    /// Member ids in rank order (views).
    pub members: *const u64,
    /// Number of members.
    pub nmembers: usize,
    /// Stability vector or suspected ranks.
    pub vector: *const u64,
    /// Its length.
    pub nvector: usize,
    /// Owned by libtutti: keeps `data`, `members`, `vector` alive.
    pub owned: *mut c_void,
}

/// What keeps an event's pointers valid. Reused from one `tutti_poll` to
/// the next on the same event, so a delivery allocates nothing.
#[derive(Default)]
struct Owned {
    bytes: Vec<u8>,
    words: Vec<u64>,
    /// A delivered message in one buffer: `data` points into it (no copy).
    msg: Option<Msg>,
}

/// Releases what `ev` holds and sets it to `TUTTI_EVENT_KIND_NONE`. Safe to
/// call on a zeroed or cleared event.
#[no_mangle]
pub unsafe extern "C" fn tutti_event_clear(ev: *mut TuttiEvent) {
    guard(|| {
        // SAFETY: the caller passes a valid event or NULL.
        let Some(ev) = (unsafe { ev.as_mut() }) else {
            return TUTTI_ERR_NULL;
        };
        clear(ev);
        TUTTI_OK
    });
}

fn clear(ev: &mut TuttiEvent) {
    drop(take_owned(ev));
}

/// Empties `ev` and hands back what it owned, emptied too (allocations
/// kept for reuse), or a fresh one.
fn take_owned(ev: &mut TuttiEvent) -> Box<Owned> {
    let mut o = if ev.owned.is_null() {
        Box::default()
    } else {
        // SAFETY: `owned` was made by `tutti_poll` from a `Box<Owned>`, and
        // is reset below so that nothing else frees it.
        unsafe { Box::from_raw(ev.owned as *mut Owned) }
    };
    o.bytes.clear();
    o.words.clear();
    o.msg = None;
    *ev = TuttiEvent {
        kind: TuttiEventKind::None,
        sender: 0,
        rank: 0,
        flags: 0,
        seq: 0,
        data: std::ptr::null(),
        len: 0,
        view_ltime: 0,
        view_coord: 0,
        members: std::ptr::null(),
        nmembers: 0,
        vector: std::ptr::null(),
        nvector: 0,
        owned: std::ptr::null_mut(),
    };
    o
}

/// Waits up to `timeout_ms` (negative: forever) for the next event of `g`
/// and writes it to `*ev` (clearing what `*ev` held first: pass a zeroed
/// event the first time). State-transfer callbacks run inside this call.
/// `TUTTI_ERR_TIMEOUT`: nothing happened. One thread at a time per group.
#[no_mangle]
pub unsafe extern "C" fn tutti_poll(
    g: *mut TuttiGroup,
    timeout_ms: i32,
    ev: *mut TuttiEvent,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes a group from `tutti_join` and a valid
        // event, or NULL.
        let (Some(g), Some(ev)) = (unsafe { g.as_ref() }, unsafe { ev.as_mut() }) else {
            return TUTTI_ERR_NULL;
        };
        let mut o = take_owned(ev);
        let rc = loop {
            let Some(e) = wait_event(g, timeout_ms) else {
                break TUTTI_ERR_TIMEOUT;
            };
            if fill(g, e, ev, &mut o) {
                break TUTTI_OK;
            }
        };
        // Kept (filled, or empty for reuse) until the next poll or clear.
        ev.owned = Box::into_raw(o) as *mut c_void;
        rc
    })
}

/// Writes event `e` to `ev`; false when it was handled here (state
/// transfer) and the caller should wait for the next.
fn fill(g: &TuttiGroup, e: Event, ev: &mut TuttiEvent, o: &mut Owned) -> bool {
    match e {
        Event::Cast { src, seq, msg } => {
            ev.kind = TuttiEventKind::Deliver;
            ev.sender = src;
            ev.seq = seq;
            payload(ev, o, msg);
            return true;
        }
        Event::Send { src, seq, msg } => {
            ev.kind = TuttiEventKind::Send;
            ev.sender = src;
            ev.seq = seq;
            payload(ev, o, msg);
            return true;
        }
        Event::View(v) => {
            ev.kind = TuttiEventKind::View;
            ev.rank = v.rank;
            ev.view_ltime = v.id.ltime;
            ev.view_coord = v.id.coord;
            ev.flags = (!v.merged.is_empty()) as u32 | (v.primary as u32) << 1;
            o.words.extend_from_slice(&v.members);
        }
        Event::Block => ev.kind = TuttiEventKind::Block,
        Event::Stable(s) => {
            ev.kind = TuttiEventKind::Stable;
            o.words.extend_from_slice(&s);
        }
        Event::Suspect(r) => {
            ev.kind = TuttiEventKind::Suspect;
            o.words.extend(r.iter().map(|x| *x as u64));
        }
        Event::Exit => ev.kind = TuttiEventKind::Exit,
        Event::Refused(why) => {
            ev.kind = TuttiEventKind::Refused;
            o.bytes.extend_from_slice(why.as_bytes());
        }
        Event::Primary => ev.kind = TuttiEventKind::Primary,
        Event::Lost { src, from, to } => {
            ev.kind = TuttiEventKind::Lost;
            ev.sender = src;
            ev.seq = from;
            ev.len = to as usize;
            return true;
        }
        Event::GetState => {
            let mut w = TuttiStateWriter { buf: Vec::new() };
            if let Some(f) = g.get_state {
                // SAFETY: the application's callback, with its context.
                unsafe { f(g.ctx, &mut w) };
            }
            g.g.give_state(&w.buf);
            return false;
        }
        Event::State(s) => {
            if let Some(f) = g.set_state {
                let (p, n) = s
                    .as_deref()
                    .map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()));
                // SAFETY: the application's callback; `p` lives for the call.
                unsafe { f(g.ctx, p, n) };
            }
            return false;
        }
        _ => return false,
    }
    ev.data = o.bytes.as_ptr();
    ev.len = o.bytes.len();
    ev.members = o.words.as_ptr();
    ev.nmembers = if ev.kind == TuttiEventKind::View {
        o.words.len()
    } else {
        0
    };
    ev.vector = o.words.as_ptr();
    ev.nvector = o.words.len();
    true
}

/// Points `ev` at a delivered message: in place when it is one buffer
/// (kept alive by `o`), else copied into `o`.
fn payload(ev: &mut TuttiEvent, o: &mut Owned, msg: Msg) {
    match msg.contiguous() {
        Some(b) => {
            ev.data = b.as_ptr();
            ev.len = b.len();
            o.msg = Some(msg);
        }
        None => {
            for seg in msg.segments() {
                o.bytes.extend_from_slice(seg);
            }
            ev.data = o.bytes.as_ptr();
            ev.len = o.bytes.len();
        }
    }
}
