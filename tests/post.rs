//! Post-processing (the Protocol Accelerator's): a lone cast on the fast
//! path is delivered before its layers' part runs, and that part runs on
//! the stack's next entry: for a member answering what it got, after the
//! answer's frame has left. The protocol must not change: two members
//! ping and pong through `cast_to` / `receive_to` as an engine drives
//! them (the answer cast while the post-processing still waits), with the
//! fast path on and off, and every frame and delivery must be the same,
//! through the gossip rounds and trims that fall inside the run.

use std::collections::VecDeque;

use tutti::stack::build;
use tutti::{Dest, GroupStack, Msg, Pool, PoolConfig, Rank, StackConfig, Time, Up, View, ViewId};

fn pool() -> Pool {
    Pool::new(PoolConfig {
        slots: 4096,
        slot_size: 1024,
        headroom: 128,
        tailroom: 32,
    })
    .unwrap()
}

/// What one run put on the wire and delivered, and its stacks' counters.
struct Trace {
    wire: Vec<(usize, Vec<u8>)>,
    delivered: Vec<(usize, Rank, u64, Vec<u8>)>,
    later: u64,
    fast_in: u64,
}

struct Member {
    s: Box<dyn GroupStack>,
    q: VecDeque<Up>,
}

fn members(spec: &str, fast: bool) -> Vec<Member> {
    let mut cfg = StackConfig {
        fast,
        ..StackConfig::default()
    };
    // A small window and frequent gossip: trims, count-triggered gossip
    // rounds and timer-triggered ones all fall inside a short run.
    cfg.nak.window = 128;
    cfg.stable.gossip_every = 48;
    (0..2u64)
        .map(|i| {
            let mut s = build(spec, &cfg, pool(), true).unwrap();
            let addrs = (0..2).map(|a| format!("m{a}").into()).collect();
            let v = View::new(ViewId { ltime: 3, coord: 0 }, vec![0, 1], i as Rank)
                .and_then(|v| v.with_addrs(addrs))
                .unwrap();
            s.install_view(Time::ZERO, v);
            Member {
                s,
                q: VecDeque::new(),
            }
        })
        .collect()
}

/// Everything `m` has for the engine: frames onto `wire` (as sent by
/// member `i`), events into its queue.
fn drain(m: &mut Member, i: usize, wire: &mut Vec<(usize, Vec<u8>)>) {
    let out = m.s.output(&mut m.q);
    while let Some((d, f)) = out.tx.pop_front() {
        assert!(matches!(d, Dest::All | Dest::Rank(_)));
        wire.push((i, f.to_vec()));
    }
}

/// Takes member `i`'s deliveries; true when one came from `from`.
fn take(m: &mut Member, i: usize, from: Rank, got: &mut Vec<(usize, Rank, u64, Vec<u8>)>) -> bool {
    let mut hit = false;
    while let Some(ev) = m.q.pop_front() {
        if let Up::Cast { src, seq, msg } = ev {
            hit |= src == from;
            got.push((i, src, seq, msg.to_vec()));
        }
    }
    hit
}

/// Moves frames between the members until both show their view (a
/// membership stack's joiner waits for the state first); returns when.
fn start(ms: &mut [Member], rx: &Pool) -> Time {
    let mut now = Time::ZERO;
    let mut shown = [false; 2];
    for _ in 0..50 {
        for i in 0..2 {
            let mut frames = Vec::new();
            drain(&mut ms[i], i, &mut frames);
            for (_, f) in frames {
                let m = &mut ms[1 - i];
                m.s.receive_to(now, rx.alloc_frame(&f).unwrap(), &mut m.q);
            }
        }
        for (i, m) in ms.iter_mut().enumerate() {
            shown[i] |= m.q.drain(..).any(|e| matches!(e, Up::View(_)));
        }
        if shown == [true, true] {
            return now;
        }
        now = now.plus_ns(1_000_000);
        for m in ms.iter_mut() {
            m.s.handle_timeout(now);
        }
    }
    panic!("no view within 50 ms");
}

fn run(spec: &str, fast: bool, rounds: usize) -> Trace {
    let mut ms = members(spec, fast);
    let tx = pool();
    let rx = pool();
    let mut wire = Vec::new();
    let mut delivered = Vec::new();
    let mut now = start(&mut ms, &rx);
    // The frames each member has sent and the other not yet received.
    let mut inbox: [VecDeque<Vec<u8>>; 2] = [VecDeque::new(), VecDeque::new()];
    for r in 0..2 * rounds {
        let (from, to) = (r % 2, 1 - r % 2);
        // The cast: its frame leaves through `send` before the rest.
        let payload = tx.alloc_copy(&(r as u64).to_be_bytes()).unwrap();
        let m = &mut ms[from];
        let mut sent = Vec::new();
        let pending =
            m.s.cast_to(
                now,
                payload,
                &mut |f: &Msg| {
                    sent.push(f.to_vec());
                    true
                },
                &mut m.q,
            )
            .unwrap();
        for f in sent {
            wire.push((from, f.clone()));
            inbox[to].push_back(f);
        }
        if pending {
            let before = wire.len();
            drain(m, from, &mut wire);
            for (_, f) in &wire[before..] {
                inbox[to].push_back(f.clone());
            }
        }
        take(m, from, 9, &mut delivered);
        // The other side gets everything sent to it, answering on the
        // next round without an entry in between.
        let m = &mut ms[to];
        while let Some(f) = inbox[to].pop_front() {
            let frame = rx.alloc_frame(&f).unwrap();
            if m.s.receive_to(now, frame, &mut m.q) {
                let before = wire.len();
                drain(m, to, &mut wire);
                for (_, f) in &wire[before..] {
                    inbox[from].push_back(f.clone());
                }
            }
        }
        assert!(
            take(m, to, from as Rank, &mut delivered),
            "round {r} fast {fast} {spec}: {}",
            m.s.dump()
        );
        now = now.plus_ns(1_000);
        // Timers (and a waiting post-processing) fall due as they would
        // in an engine: after the answer has been cast.
        if r % 7 == 6 {
            for (i, m) in ms.iter_mut().enumerate() {
                if m.s.poll_timeout().is_some_and(|t| t <= now) {
                    m.s.handle_timeout(now);
                    let before = wire.len();
                    drain(m, i, &mut wire);
                    for (_, f) in &wire[before..] {
                        inbox[1 - i].push_back(f.clone());
                    }
                    take(m, i, 9, &mut delivered);
                }
            }
        }
    }
    let later = ms.iter().map(|m| m.s.stats().fast_later).sum();
    let fast_in = ms.iter().map(|m| m.s.stats().fast_in).sum();
    Trace {
        wire,
        delivered,
        later,
        fast_in,
    }
}

#[test]
fn answers_before_post_processing_leave_the_protocol_unchanged() {
    for spec in ["com:nak:stable", "vsync"] {
        let on = run(spec, true, 700);
        let off = run(spec, false, 700);
        assert_eq!(off.fast_in, 0, "{spec}");
        // Most deliveries wait for nothing; the ones that make a gossip
        // round due run their layers' part at once.
        assert!(
            on.later > on.fast_in / 2,
            "{spec}: {} of {}",
            on.later,
            on.fast_in
        );
        assert!(
            on.later < on.fast_in,
            "{spec}: gossip rounds are due in the run"
        );
        assert_eq!(on.delivered.len(), off.delivered.len(), "{spec}");
        assert_eq!(on.delivered, off.delivered, "{spec}: deliveries differ");
        assert_eq!(on.wire.len(), off.wire.len(), "{spec}: frame counts differ");
        assert!(on.wire == off.wire, "{spec}: the wire differs");
    }
}

#[test]
fn a_waiting_post_processing_is_due_at_once_and_runs_once() {
    let mut ms = members("com:nak:stable", true);
    let tx = pool();
    let rx = pool();
    start(&mut ms, &rx);
    let mut sent = Vec::new();
    let m = &mut ms[0];
    m.s.cast_to(
        Time::ZERO,
        tx.alloc_copy(b"ping").unwrap(),
        &mut |f: &Msg| {
            sent.push(f.to_vec());
            true
        },
        &mut m.q,
    )
    .unwrap();
    assert_eq!(sent.len(), 1);
    let b = &mut ms[1];
    let at = Time(5_000);
    let frame = rx.alloc_frame(&sent[0]).unwrap();
    b.s.receive_to(at, frame, &mut b.q);
    let got: Vec<Vec<u8>> =
        b.q.drain(..)
            .filter_map(|e| match e {
                Up::Cast { msg, .. } => Some(msg.to_vec()),
                _ => None,
            })
            .collect();
    assert_eq!(
        got,
        vec![b"ping".to_vec()],
        "delivered before its layers' part"
    );
    assert_eq!(b.s.stats().fast_later, 1);
    // Waiting: due at the time the cast arrived.
    assert_eq!(b.s.poll_timeout(), Some(at));
    // The delivery's handle is gone; the frame is still held, kept for
    // repair once the post-processing ran.
    let free = rx.free_slots();
    assert!(b.s.post(), "ran");
    assert!(!b.s.post(), "once");
    assert_eq!(rx.free_slots(), free, "kept for repair");
    assert!(
        b.s.poll_timeout().is_some_and(|t| t > at),
        "the layers' own timers"
    );
}
