//! Layer behaviour driven through whole stacks with hand-moved frames, so
//! each test decides exactly which frame arrives, twice, late or never.

use std::collections::VecDeque;

use tutti_drivers::{Msg, Pool, PoolConfig};

use crate::event::{Dest, Down, Rank, Time, Up, View, ViewId};
use crate::layer::DropReason;
use crate::stack::{build, GroupStack, Spec, StackConfig};
use crate::wire::com::{ComRepr, DST_ALL, LEN};

const MS: u64 = 1_000_000;

fn pool() -> Pool {
    Pool::new(PoolConfig {
        slots: 4096,
        slot_size: 1024,
        headroom: 128,
        tailroom: 32,
    })
    .unwrap()
}

struct Group {
    s: Vec<Box<dyn GroupStack>>,
    rx: Pool,
    tx: Pool,
    now: Time,
}

impl Group {
    fn new(spec: &str, n: usize, cfg: StackConfig) -> Group {
        let members: Vec<u64> = (0..n as u64).collect();
        let s = (0..n)
            .map(|i| {
                let mut st = build(spec, &cfg, pool(), i % 2 == 0).unwrap();
                let addrs = (0..n).map(|a| format!("m{a}").into()).collect();
                let v = View::new(ViewId { ltime: 3, coord: 0 }, members.clone(), i as Rank)
                    .and_then(|v| v.with_addrs(addrs))
                    .unwrap();
                st.install_view(Time::ZERO, v);
                // A membership stack shows the view once its layers agree.
                if !st.spec().provides(crate::layer::Prop::Membership) {
                    assert!(matches!(st.poll_event(), Some(Up::View(_))));
                }
                st
            })
            .collect();
        Group {
            s,
            rx: pool(),
            tx: pool(),
            now: Time::ZERO,
        }
    }

    fn msg(&self, b: &[u8]) -> Msg {
        self.tx.alloc_copy(b).unwrap()
    }

    /// Frames member `i` has ready, with their destinations.
    fn out(&mut self, i: usize) -> Vec<(Dest, Vec<u8>)> {
        std::iter::from_fn(|| self.s[i].poll_transmit())
            .map(|(d, f)| (d, f.to_vec()))
            .collect()
    }

    fn give(&mut self, to: usize, frame: &[u8]) {
        let m = self.rx.alloc_frame(frame).unwrap();
        self.s[to].receive(self.now, m);
    }

    /// Payloads delivered to `i` (casts and sends) since the last call.
    fn delivered(&mut self, i: usize) -> Vec<(Rank, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some(ev) = self.s[i].poll_event() {
            if let Up::Cast { src, msg, .. } | Up::Send { src, msg, .. } = ev {
                v.push((src, msg.to_vec()));
            }
        }
        v
    }

    /// Runs a membership stack until its static view is shown (rank 1 and
    /// up ask rank 0 for the state, answered as events are polled);
    /// returns each member's events.
    fn start(&mut self) -> Vec<Vec<Up>> {
        let mut ev: Vec<Vec<Up>> = self.s.iter().map(|_| Vec::new()).collect();
        for _ in 0..5 {
            self.run(1);
            for (i, e) in ev.iter_mut().enumerate() {
                e.extend(std::iter::from_fn(|| self.s[i].poll_event()));
            }
        }
        ev
    }

    /// Moves every frame between members until quiet, `rounds` ticks long.
    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for _ in 0..20 {
                let mut moved = false;
                for i in 0..self.s.len() {
                    for (d, f) in self.out(i) {
                        moved = true;
                        for j in 0..self.s.len() {
                            if j != i && (d == Dest::All || d == Dest::Rank(j as Rank)) {
                                self.give(j, &f);
                            }
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
            self.now = self.now.plus_ns(MS);
            for s in &mut self.s {
                s.handle_timeout(self.now);
            }
        }
    }
}

fn com_frame(spec: &str, src: u16, dst: u16, view: u32, group: u32, tail: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; LEN];
    ComRepr {
        ctl: false,
        p2p: dst != DST_ALL,
        group,
        stack: Spec::parse(spec).unwrap().id(),
        src,
        dst,
        view,
    }
    .emit(&mut f);
    f.extend_from_slice(tail);
    f
}

/// A compact frame from `src` of the view `ltime` 3 in the `reliable`
/// stack, with the packed word `word`.
fn compact(_view: u32, src: Rank, word: u32, tail: &[u8]) -> Vec<u8> {
    let c = crate::wire::fast::cookie(
        StackConfig::default().group,
        Spec::parse("reliable").unwrap().id(),
        ViewId { ltime: 3, coord: 0 }.tag(),
        src,
    );
    let mut f = c.to_be_bytes().to_vec();
    f.extend_from_slice(&word.to_be_bytes());
    f.extend_from_slice(tail);
    f
}

#[test]
fn com_drops_bad_frames_by_reason() {
    let mut g = Group::new("reliable", 3, StackConfig::default());
    let grp = StackConfig::default().group;
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![0x74, 0x75, 1], DropReason::Truncated),
        // Not the magic: a compact frame, whose cookie names no member of
        // this view.
        (vec![0u8; 40], DropReason::WrongView),
        (vec![0x12, 0x34, 0x56], DropReason::Truncated),
        (compact(0, 1, 0xC000_0000, &[1]), DropReason::Reserved),
        (compact(0, 0, 0, &[1]), DropReason::OwnFrame),
        // A packed frame whose last entry runs past the end.
        (
            compact(0, 1, 0x4000_0000, &[0, 1, 7, 0, 9]),
            DropReason::Truncated,
        ),
        (
            com_frame(
                "reliable",
                1,
                DST_ALL,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp + 1,
                &[2],
            ),
            DropReason::WrongGroup,
        ),
        (
            com_frame(
                "fifo",
                1,
                DST_ALL,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp,
                &[2],
            ),
            DropReason::WrongStack,
        ),
        (
            com_frame(
                "reliable",
                1,
                DST_ALL,
                ViewId { ltime: 4, coord: 0 }.tag(),
                grp,
                &[2],
            ),
            DropReason::WrongView,
        ),
        (
            com_frame(
                "reliable",
                7,
                DST_ALL,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp,
                &[2],
            ),
            DropReason::BadRank,
        ),
        (
            com_frame(
                "reliable",
                0,
                DST_ALL,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp,
                &[2],
            ),
            DropReason::OwnFrame,
        ),
        (
            com_frame(
                "reliable",
                1,
                2,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp,
                &[2],
            ),
            DropReason::NotForMe,
        ),
        (
            com_frame(
                "reliable",
                1,
                DST_ALL,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp,
                &[99],
            ),
            DropReason::UnknownTag,
        ),
        (
            com_frame(
                "reliable",
                1,
                DST_ALL,
                ViewId { ltime: 3, coord: 0 }.tag(),
                grp,
                &[0, 1],
            ),
            DropReason::Truncated,
        ),
    ];
    for (f, why) in cases {
        let before = g.s[0].drops().get(why);
        g.give(0, &f);
        assert_eq!(g.s[0].drops().get(why), before + 1, "{why:?}");
    }
    assert!(g.delivered(0).is_empty());
    assert_eq!(
        g.rx.stats().in_use,
        0,
        "every refused frame's buffer came back"
    );
}

#[test]
fn nak_delivers_in_order_once_and_bounds_its_window() {
    let mut g = Group::new("reliable", 2, StackConfig::default());
    for i in 0..3u8 {
        let m = g.msg(&[i]);
        g.s[0].cast(g.now, m).unwrap();
    }
    assert_eq!(g.delivered(0).len(), 3, "own casts delivered at once");
    let f = g.out(0);
    assert_eq!(f.len(), 3);
    g.give(1, &f[2].1);
    assert!(g.delivered(1).is_empty(), "held back behind the gap");
    g.give(1, &f[0].1);
    g.give(1, &f[0].1);
    g.give(1, &f[1].1);
    g.give(1, &f[2].1);
    assert_eq!(
        g.delivered(1),
        vec![(0, vec![0]), (0, vec![1]), (0, vec![2])]
    );
    assert_eq!(g.s[1].drops().get(DropReason::Duplicate), 2);
    // A sequence number far beyond the window (compact frame: 8 bytes,
    // the sequence number in the low 30 bits of the second word).
    assert_eq!(f[0].1.len(), crate::wire::fast::LEN + 1);
    let mut far = f[0].1.clone();
    far[4..8].copy_from_slice(&(1u32 << 29).to_be_bytes());
    g.give(1, &far);
    assert_eq!(g.s[1].drops().get(DropReason::OutOfWindow), 1);
}

#[test]
fn nak_repairs_a_gap_and_a_lost_tail() {
    let mut g = Group::new("reliable", 3, StackConfig::default());
    for i in 0..5u8 {
        let m = g.msg(&[i]);
        g.s[0].cast(g.now, m).unwrap();
    }
    let f = g.out(0);
    // Member 1 loses frame 1 and the last one (tail loss); member 2 gets all.
    for (k, (_, fr)) in f.iter().enumerate() {
        if k != 1 && k != 4 {
            g.give(1, fr);
        }
        g.give(2, fr);
    }
    assert_eq!(g.delivered(1).len(), 1);
    g.run(5);
    let got: Vec<u8> = g.delivered(1).into_iter().map(|(_, b)| b[0]).collect();
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert!(g.s[0].stats().retransmits >= 2);
    g.run(5);
    for s in &g.s {
        assert_eq!(s.buffered(), 0, "stable everywhere, buffers collected");
    }
}

#[test]
fn point_to_point_is_reliable_and_self_send_is_local() {
    let mut g = Group::new("fifo", 2, StackConfig::default());
    let m = g.msg(b"to me");
    g.s[0].send(g.now, 0, m).unwrap();
    assert_eq!(g.delivered(0), vec![(0, b"to me".to_vec())]);
    assert!(
        g.out(0).is_empty(),
        "a send to oneself never reaches the wire"
    );
    for i in 0..3u8 {
        let m = g.msg(&[i]);
        g.s[0].send(g.now, 1, m).unwrap();
    }
    let f = g.out(0);
    g.give(1, &f[0].1);
    g.give(1, &f[2].1);
    g.run(5);
    let got: Vec<u8> = g.delivered(1).into_iter().map(|(_, b)| b[0]).collect();
    assert_eq!(got, vec![0, 1, 2]);
    g.run(3);
    assert_eq!(g.s[0].buffered(), 0, "acknowledged sends collected");
    let m = g.msg(b"x");
    assert_eq!(
        g.s[0].send(g.now, 9, m).unwrap_err().kind,
        crate::stack::SendErrorKind::BadRank
    );
}

#[test]
fn frag_refuses_fragments_out_of_sequence_and_oversized_messages() {
    let spec = "fifo";
    let grp = StackConfig::default().group;
    let cfg = StackConfig {
        max_msg: 4000,
        ..StackConfig::default()
    };
    let mut g = Group::new(spec, 2, cfg);
    // The sender refuses what it could not deliver to itself.
    let big = g.tx.alloc_copy(&[7u8; 5000]).unwrap();
    assert_eq!(
        g.s[0].cast(g.now, big).unwrap_err().kind,
        crate::stack::SendErrorKind::TooLarge
    );
    // Member 0 now runs with a larger limit than member 1.
    let mut s0 = build(spec, &StackConfig::default(), pool(), true).unwrap();
    s0.install_view(
        Time::ZERO,
        View::new(ViewId { ltime: 3, coord: 0 }, vec![0, 1], 0).unwrap(),
    );
    g.s[0] = s0;
    g.delivered(0);
    // nak CAST seq 0, frag MIDDLE with nothing before it, stable DATA.
    let mut tail = vec![0u8];
    tail.extend_from_slice(&0u64.to_be_bytes());
    tail.extend_from_slice(&[2, 0, b'x']);
    g.give(
        1,
        &com_frame(
            spec,
            0,
            DST_ALL,
            ViewId { ltime: 3, coord: 0 }.tag(),
            grp,
            &tail,
        ),
    );
    assert_eq!(g.s[1].drops().get(DropReason::BadFragment), 1);
    // A message larger than max_msg is refused when its FIRST fragment
    // arrives, and its other fragments are skipped.
    let big = g.tx.alloc_copy(&[7u8; 5000]).unwrap();
    assert!(big.nsegs() > 1);
    g.s[0].cast(g.now, big).unwrap();
    let f = g.out(0);
    for (_, fr) in &f {
        let mut fr = fr.clone();
        // Renumber after the bogus seq 0 above.
        let seq = u64::from_be_bytes(fr[LEN + 1..LEN + 9].try_into().unwrap()) + 1;
        fr[LEN + 1..LEN + 9].copy_from_slice(&seq.to_be_bytes());
        g.give(1, &fr);
    }
    assert_eq!(g.s[1].drops().get(DropReason::TooLarge), 1);
    assert!(g.delivered(1).is_empty());
    assert_eq!(g.delivered(0)[0].1.len(), 5000);
}

#[test]
fn stable_in_ack_mode_waits_for_the_application() {
    let mut cfg = StackConfig::default();
    cfg.stable.app_ack = true;
    let mut g = Group::new("reliable", 2, cfg);
    let m = g.msg(b"a");
    g.s[0].cast(g.now, m).unwrap();
    g.run(5);
    assert_eq!(g.delivered(1).len(), 1);
    assert!(g.s[0].buffered() > 0, "not stable until acknowledged");
    let now = g.now;
    for s in &mut g.s {
        s.handle_down(now, Down::Ack { src: 0, seq: 0 });
    }
    g.run(5);
    assert_eq!(g.s[0].buffered(), 0);
    let stable_seen =
        std::iter::from_fn(|| g.s[1].poll_event()).any(|e| matches!(e, Up::Stable(v) if v[0] == 1));
    assert!(stable_seen);
}

#[test]
fn an_idle_group_falls_silent() {
    let mut g = Group::new("fifo", 3, StackConfig::default());
    let m = g.msg(b"hello");
    g.s[1].cast(g.now, m).unwrap();
    g.run(10);
    for s in &g.s {
        assert!(s.poll_timeout().is_none(), "no timer left: {}", s.dump());
    }
}

#[test]
fn vsync_reports_stability_to_the_application() {
    let mut g = Group::new("vsync", 2, StackConfig::default());
    let ev = g.start();
    for (i, ev) in ev.iter().enumerate() {
        assert!(
            ev.iter().any(|e| matches!(e, Up::View(_))),
            "{ev:?} {}",
            g.s[i].dump()
        );
    }
    let m = g.msg(b"a");
    g.s[0].cast(g.now, m).unwrap();
    g.run(20);
    let ev: Vec<String> = std::iter::from_fn(|| g.s[0].poll_event())
        .map(|e| format!("{e:?}").chars().take(60).collect())
        .collect();
    assert!(
        ev.iter().any(|e| e.starts_with("Stable")),
        "{ev:?}\n{}",
        g.s[0].dump()
    );
}

#[test]
fn fast_casts_are_numbered_by_nak() {
    let mut g = Group::new("vsync", 2, StackConfig::default());
    g.start();
    for i in 0..3u8 {
        let m = g.msg(&[i]);
        g.s[0].cast(g.now, m).unwrap();
    }
    assert_eq!(g.s[0].stats().fast_out, 3);
    let d = g.s[0].dump();
    assert!(d.contains("casts out next=3"), "{d}");
}

#[test]
fn cast_to_hands_the_frame_out_before_the_own_delivery_and_keeps_it() {
    let mut g = Group::new("vsync", 2, StackConfig::default());
    g.start();
    let mut taken: Vec<Vec<u8>> = Vec::new();
    let mut q = VecDeque::new();
    for i in 0..3u8 {
        let m = g.msg(&[i; 10]);
        let events_before = g.s[0].poll_event().is_none();
        assert!(events_before);
        g.s[0]
            .cast_to(
                g.now,
                m,
                &mut |f: &Msg| {
                    // The compact frame is there, its own delivery not yet
                    // made; the stack keeps the frame's handle.
                    assert_eq!(f.len(), crate::wire::fast::LEN + 10);
                    taken.push(f.to_vec());
                    true
                },
                &mut q,
            )
            .unwrap();
        // Then the own delivery, with the payload untouched by the header.
        output_into(&mut g.s[0], &mut q);
        match q.pop_front() {
            Some(Up::Cast { src: 0, seq, msg }) => {
                assert_eq!(seq, i as u64);
                assert_eq!(msg.to_vec(), vec![i; 10]);
            }
            other => panic!("expected the own delivery, got {other:?}"),
        }
    }
    assert_eq!(g.s[0].stats().fast_out, 3);
    // The engine "lost" the middle frame: member 1 sees 0 and 2, asks for
    // 1, and `nak` repairs it from what it kept after the send.
    g.give(1, &taken[0]);
    g.give(1, &taken[2]);
    let got: Vec<Vec<u8>> = g.delivered(1).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, vec![vec![0u8; 10]]);
    g.run(5);
    let got: Vec<Vec<u8>> = g.delivered(1).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, vec![vec![1u8; 10], vec![2u8; 10]]);
}

/// What `output` hands over: the events (appended to `q`), the frames.
fn output_into(s: &mut Box<dyn GroupStack>, q: &mut VecDeque<Up>) -> (usize, Option<Option<Time>>) {
    let out = s.output(q);
    (out.tx.len(), out.timer)
}

#[test]
fn cast_to_and_receive_to_deliver_onto_the_engine_queue_in_order() {
    let mut g = Group::new("vsync", 2, StackConfig::default());
    g.start();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut q0 = VecDeque::new();
    for i in 0..3u8 {
        let m = g.msg(&[i; 10]);
        let pending = g.s[0]
            .cast_to(
                g.now,
                m,
                &mut |f: &Msg| {
                    frames.push(f.to_vec());
                    true
                },
                &mut q0,
            )
            .unwrap();
        let before = q0.len();
        let (tx, timer) = output_into(&mut g.s[0], &mut q0);
        if !pending {
            // Nothing held back: `output` would have handed over nothing.
            assert_eq!((tx, timer, q0.len()), (0, None, before));
        }
    }
    let own: Vec<(u64, Vec<u8>)> = q0
        .drain(..)
        .filter_map(|ev| match ev {
            Up::Cast { src: 0, seq, msg } => Some((seq, msg.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(
        own,
        (0..3u8)
            .map(|i| (i as u64, vec![i; 10]))
            .collect::<Vec<_>>()
    );
    // Member 1: cast 0 through `receive` stays in the stack's own queue;
    // cast 1 through `receive_to` must not overtake it, so it waits there
    // too; after `output` empties the stack's queue, cast 2 goes straight
    // onto the engine's.
    let f0 = g.rx.alloc_frame(&frames[0]).unwrap();
    g.s[1].receive(g.now, f0);
    let mut q1 = VecDeque::new();
    let f1 = g.rx.alloc_frame(&frames[1]).unwrap();
    assert!(
        g.s[1].receive_to(g.now, f1, &mut q1),
        "cast 0 still to hand over"
    );
    assert!(q1.is_empty(), "cast 1 overtook cast 0");
    output_into(&mut g.s[1], &mut q1);
    assert_eq!(q1.len(), 2);
    let f2 = g.rx.alloc_frame(&frames[2]).unwrap();
    let pending = g.s[1].receive_to(g.now, f2, &mut q1);
    assert_eq!(q1.len(), 3, "straight onto the engine's queue");
    if !pending {
        let (tx, timer) = output_into(&mut g.s[1], &mut q1);
        assert_eq!((tx, timer, q1.len()), (0, None, 3));
    }
    let got: Vec<(u64, Vec<u8>)> = q1
        .drain(..)
        .filter_map(|ev| match ev {
            Up::Cast { src: 0, seq, msg } => Some((seq, msg.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(got, own);
    // Garbage is dropped and counted; when nothing else came of it there
    // is nothing to hand over either.
    let drops = g.s[1].drops().total();
    let junk = g.rx.alloc_frame(b"not a tutti frame at all").unwrap();
    if !g.s[1].receive_to(g.now, junk, &mut q1) {
        let (tx, timer) = output_into(&mut g.s[1], &mut q1);
        assert_eq!((tx, timer, q1.len()), (0, None, 0));
    }
    assert_eq!(g.s[1].drops().total(), drops + 1);
}

#[test]
fn cast_to_off_the_fast_path_leaves_the_frame_queued() {
    let cfg = StackConfig {
        fast: false,
        ..StackConfig::default()
    };
    let mut g = Group::new("vsync", 2, cfg);
    g.start();
    let m = g.msg(b"slow");
    let mut called = false;
    let mut q = VecDeque::new();
    let pending = g.s[0]
        .cast_to(
            g.now,
            m,
            &mut |_: &Msg| {
                called = true;
                true
            },
            &mut q,
        )
        .unwrap();
    assert!(!called, "only the fast path hands frames out early");
    assert!(
        pending && q.is_empty(),
        "the full path's output waits in the stack"
    );
    assert_eq!(g.delivered(0), vec![(0, b"slow".to_vec())]);
    let f = g.out(0);
    assert_eq!(f.len(), 1);
    g.give(1, &f[0].1);
    assert_eq!(g.delivered(1), vec![(0, b"slow".to_vec())]);
}

#[test]
fn a_batch_is_packed_into_one_frame_and_unpacked_in_place() {
    let mut g = Group::new("fifo", 3, StackConfig::default());
    g.s[0].begin_batch();
    for i in 0..10u8 {
        let m = g.msg(&[i; 5]);
        g.s[0].cast(g.now, m).unwrap();
    }
    g.s[0].end_batch();
    assert_eq!(g.delivered(0).len(), 10, "own casts delivered at once");
    let f = g.out(0);
    assert_eq!(f.len(), 1, "one frame for the batch");
    let per = crate::wire::fast::ENTRY_LEN + 5;
    assert_eq!(f[0].1.len(), crate::wire::fast::LEN + 10 * per);
    assert_eq!(g.s[0].stats().packed_frames, 1);
    g.give(1, &f[0].1);
    let got = g.delivered(1);
    assert_eq!(got.len(), 10);
    for (i, (src, b)) in got.iter().enumerate() {
        assert_eq!((*src, b.as_slice()), (0, &[i as u8; 5][..]));
    }
    assert_eq!(g.s[1].stats().fast_in, 10, "each cast took the fast path");
    // The same frame again: ten duplicates, nothing delivered.
    g.give(1, &f[0].1);
    assert!(g.delivered(1).is_empty());
    // Member 2 lost the packed frame: a later cast shows the gap, and
    // the repair comes cast by cast.
    let m = g.msg(b"late");
    g.s[0].cast(g.now, m).unwrap();
    g.delivered(0);
    let late = g.out(0);
    g.give(2, &late[0].1);
    assert!(g.delivered(2).is_empty(), "held behind the gap");
    g.run(5);
    let got: Vec<Vec<u8>> = g.delivered(2).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got.len(), 11);
    assert_eq!(got[10], b"late".to_vec());
    assert!(g.s[0].stats().retransmits >= 10);
}

#[test]
fn a_fifo_cast_carries_eight_bytes_of_header() {
    let mut g = Group::new("vsync", 2, StackConfig::default());
    g.start();
    for size in [1usize, 64, 500] {
        let m = g.msg(&vec![7; size]);
        g.s[0].cast(g.now, m).unwrap();
        // The cast's frame (a control frame may go with it).
        let f: Vec<_> = g
            .out(0)
            .into_iter()
            .filter(|(_, f)| crate::wire::fast::is_compact(f))
            .collect();
        assert_eq!(f.len(), 1);
        let overhead = f[0].1.len() - size;
        println!("vsync cast of {size} bytes: {overhead} bytes of header");
        assert_eq!(overhead, crate::wire::fast::LEN);
        g.give(1, &f[0].1);
        assert_eq!(g.delivered(1), vec![(0, vec![7; size])]);
    }
}

#[test]
fn a_batch_written_in_place_goes_as_written_and_forged_windows_are_copied() {
    let mut g = Group::new("fifo", 2, StackConfig::default());
    let mut h = Group::new("fifo", 2, StackConfig::default());
    // Written in place: the frame is the packer's, byte for byte the one
    // the same casts in buffers of their own make.
    let mut p = crate::engine::Packer::new(g.tx.alloc().unwrap());
    let mut q = VecDeque::new();
    let mut copied = VecDeque::new();
    for i in 0..10u8 {
        p.cast(5).unwrap().fill(i);
        copied.push_back(h.msg(&[i; 5]));
    }
    assert_eq!(p.finish(&mut q), 10);
    assert_eq!(g.s[0].cast_batch(g.now, &mut q).unwrap(), 10);
    assert_eq!(h.s[0].cast_batch(h.now, &mut copied).unwrap(), 10);
    assert_eq!(g.delivered(0).len(), 10, "own casts delivered");
    assert_eq!(g.s[0].stats().in_place, 10);
    assert_eq!(h.s[0].stats().in_place, 0);
    let f = g.out(0);
    assert_eq!(f, h.out(0), "the same frame");
    assert_eq!(f.len(), 1);
    // One at a time in a batch (the engine's backlog): the same again.
    let mut k = Group::new("fifo", 2, StackConfig::default());
    let mut p = crate::engine::Packer::new(k.tx.alloc().unwrap());
    for i in 0..10u8 {
        p.cast(5).unwrap().fill(i);
    }
    let mut q = VecDeque::new();
    p.finish(&mut q);
    k.s[0].begin_batch();
    for m in q {
        k.s[0].cast(k.now, m).unwrap();
    }
    k.s[0].end_batch();
    assert_eq!(k.s[0].stats().in_place, 10);
    assert_eq!(k.out(0), f, "the same frame, one at a time");
    g.give(1, &f[0].1);
    let got = g.delivered(1);
    assert_eq!(got.len(), 10);
    for (i, (src, b)) in got.iter().enumerate() {
        assert_eq!((*src, b.as_slice()), (0, &[i as u8; 5][..]));
    }
    // Windows back to back in one buffer whose lengths lie (the first's,
    // then the second's, says 9 bytes): copied into a frame of their own
    // entries.
    for forged in [b"\0\x09aaaa\0\x04bbbb", b"\0\x04aaaa\0\x09bbbb"] {
        let mut b = g.tx.alloc().unwrap();
        b.reserve(12).unwrap().copy_from_slice(forged);
        let mut sh = b.share_bulk(2).unwrap();
        let mut q: VecDeque<Msg> = [sh.window(2, 4).unwrap(), sh.window(8, 4).unwrap()].into();
        drop((b, sh));
        assert_eq!(g.s[0].cast_batch(g.now, &mut q).unwrap(), 2);
        assert_eq!(g.s[0].stats().in_place, 10, "not sent as they lie");
        g.delivered(0);
        let f = g.out(0);
        g.give(1, &f[0].1);
        let got: Vec<Vec<u8>> = g.delivered(1).into_iter().map(|(_, b)| b).collect();
        assert_eq!(got, vec![b"aaaa".to_vec(), b"bbbb".to_vec()]);
    }
}
