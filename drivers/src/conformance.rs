//! One conformance suite, written against the [`Driver`] trait and run for
//! every driver: what any transport under a tutti stack must do.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{Driver, To, Tx};
use crate::pool::Msg;

/// Makes `n` endpoints of one driver kind that can reach each other, each
/// with every other added as a peer in index order (peer ids skip self).
pub trait Factory {
    /// The driver type.
    type D: Driver + 'static;
    /// Whether a frame the driver posted always arrives (shm), or the
    /// network may still lose it (UDP: the receiver's socket buffer).
    const LOSSLESS: bool;
    /// Fresh endpoints.
    fn make(&self, n: usize) -> Vec<Self::D>;
}

fn frame(d: &impl Driver, tag: u32, len: usize) -> Msg {
    let mut m = d.pool().alloc().expect("buffer");
    let b = m.reserve(len.max(8)).unwrap();
    b[..4].copy_from_slice(&tag.to_be_bytes());
    for (i, x) in b[4..].iter_mut().enumerate() {
        *x = (tag as usize + i) as u8;
    }
    m
}

fn check(m: &Msg) -> u32 {
    let b = m.contiguous().expect("one segment");
    let tag = u32::from_be_bytes(b[..4].try_into().unwrap());
    for (i, x) in b[4..].iter().enumerate() {
        assert_eq!(*x, (tag as usize + i) as u8, "frame {tag} corrupt at {i}");
    }
    tag
}

/// Receives until `want` frames arrived or 5 s passed.
fn gather(d: &mut impl Driver, want: usize) -> Vec<Msg> {
    let mut out = Vec::new();
    let t0 = Instant::now();
    while out.len() < want && t0.elapsed() < Duration::from_secs(5) {
        d.recv(&mut out, 64).unwrap();
        d.maintain().unwrap();
        if out.len() < want {
            d.park(Duration::from_millis(1)).unwrap();
        }
    }
    out
}

fn settle(ds: &mut [impl Driver]) {
    for _ in 0..20 {
        for d in ds.iter_mut() {
            let mut sink = Vec::new();
            d.recv(&mut sink, 64).unwrap();
            d.maintain().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Frames to one peer arrive intact and in order; buffers come back.
pub fn unicast_in_order(f: &impl Factory) {
    let mut ds = f.make(2);
    let base = ds[0].pool().stats().in_use;
    let mut q: VecDeque<Tx> = (0..200u32)
        .map(|i| Tx {
            to: To::Peer(0),
            frame: frame(&ds[0], i, 8 + (i as usize * 7) % 900),
        })
        .collect();
    assert_eq!(ds[0].send(&mut q).unwrap(), 200);
    let got = gather(&mut ds[1], 200);
    let tags: Vec<u32> = got.iter().map(check).collect();
    assert_eq!(tags, (0..200).collect::<Vec<_>>());
    drop(got);
    settle(&mut ds);
    assert_eq!(ds[0].pool().stats().in_use, base, "sent buffers came back");
    let s = ds[0].stats();
    assert_eq!(s.tx_frames, 200);
    assert_eq!(ds[1].stats().rx_frames, 200);
}

/// `To::All` reaches every peer once.
pub fn multicast_reaches_all(f: &impl Factory) {
    let mut ds = f.make(3);
    let mut q: VecDeque<Tx> = (0..50u32)
        .map(|i| Tx {
            to: To::All,
            frame: frame(&ds[0], i, 64),
        })
        .collect();
    ds[0].send(&mut q).unwrap();
    for (r, d) in ds.iter_mut().enumerate().skip(1) {
        let got = gather(d, 50);
        let tags: Vec<u32> = got.iter().map(check).collect();
        assert_eq!(tags, (0..50).collect::<Vec<_>>(), "receiver {r}");
    }
}

/// `send_ref` sends without taking the caller's handle: frames arrive
/// intact, in order after what waited in the queue, the caller's handles
/// still read the same bytes, and every buffer comes back once both the
/// receiver and the caller let go.
pub fn send_by_reference_keeps_the_callers_handle(f: &impl Factory) {
    let mut ds = f.make(3);
    let base = ds[0].pool().stats().in_use;
    let mut q: VecDeque<Tx> = VecDeque::new();
    let mut kept = Vec::new();
    for i in 0..40u32 {
        let m = frame(&ds[0], i, 16 + i as usize * 13);
        if i % 10 == 5 {
            // One waits in the queue: it goes before the next by reference.
            q.push_back(Tx {
                to: To::All,
                frame: m,
            });
            continue;
        }
        ds[0].send_ref(To::All, &m, &mut q).unwrap();
        while !q.is_empty() {
            ds[0].send(&mut q).unwrap();
        }
        kept.push(m);
    }
    for (r, d) in ds.iter_mut().enumerate().skip(1) {
        let got = gather(d, 40);
        let tags: Vec<u32> = got.iter().map(check).collect();
        assert_eq!(tags, (0..40).collect::<Vec<_>>(), "receiver {r}");
    }
    // The caller's handles are untouched by the send.
    let tags: Vec<u32> = kept.iter().map(check).collect();
    assert_eq!(tags.len(), 36);
    assert!(
        ds[0].pool().stats().in_use > base,
        "the caller still holds its frames"
    );
    drop(kept);
    settle(&mut ds);
    assert_eq!(ds[0].pool().stats().in_use, base, "sent buffers came back");
}

/// A parked driver wakes for a frame and for its waker, and otherwise
/// sleeps about its timeout.
pub fn park_and_wake(f: &impl Factory) {
    let mut ds = f.make(2);
    let t0 = Instant::now();
    ds[1].park(Duration::from_millis(30)).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(20),
        "slept its timeout"
    );

    let waker = ds[1].waker();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        d2.store(true, Ordering::SeqCst);
        waker.wake();
    });
    let t0 = Instant::now();
    while !done.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(5) {
        ds[1].park(Duration::from_secs(5)).unwrap();
    }
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "waker woke the parked driver"
    );
    t.join().unwrap();

    // A frame from another thread wakes the parked receiver. (The sender
    // moves to that thread before it is first used: a driver may bind
    // itself to the thread that first drives it, as io_uring's single
    // issuer does.)
    let mut d1 = ds.pop().unwrap();
    let mut d0 = ds.pop().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let mut q = VecDeque::from([Tx {
            to: To::Peer(0),
            frame: frame(&d0, 1, 32),
        }]);
        d0.send(&mut q).unwrap();
        // Keep the sender alive until the frame is surely out.
        std::thread::sleep(Duration::from_millis(200));
    });
    let t0 = Instant::now();
    let mut out = Vec::new();
    while out.is_empty() && t0.elapsed() < Duration::from_secs(5) {
        d1.park(Duration::from_secs(5)).unwrap();
        d1.recv(&mut out, 8).unwrap();
    }
    assert_eq!(out.len(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "a frame woke the parked receiver"
    );
    t.join().unwrap();
}

/// Sending far more than a receiver can hold drops (counted) instead of
/// blocking or failing, and loses no buffer once the receiver drains.
pub fn overload_is_counted_not_fatal<F: Factory>(f: &F) {
    let mut ds = f.make(2);
    let base = ds[0].pool().stats().in_use;
    let total = 20_000u32;
    let mut sent = 0u32;
    while sent < total {
        let mut q: VecDeque<Tx> = (sent..(sent + 500).min(total))
            .filter_map(|i| {
                ds[0].pool().alloc().map(|mut m| {
                    m.reserve(200).unwrap()[..4].copy_from_slice(&i.to_be_bytes());
                    Tx {
                        to: To::Peer(0),
                        frame: m,
                    }
                })
            })
            .collect();
        let n = q.len() as u32;
        if n == 0 {
            settle(&mut ds);
            continue;
        }
        ds[0].send(&mut q).unwrap();
        ds[0].maintain().unwrap();
        sent += n;
    }
    let s = ds[0].stats();
    assert!(s.tx_frames + s.tx_full >= total as u64);
    // Drain, dropping frames as they come so the receive pool never runs dry.
    let mut got = 0u64;
    let t0 = Instant::now();
    let mut idle = 0;
    while got < s.tx_frames && t0.elapsed() < Duration::from_secs(5) && idle < 200 {
        let mut out = Vec::new();
        ds[1].recv(&mut out, 64).unwrap();
        ds[1].maintain().unwrap();
        idle = if out.is_empty() { idle + 1 } else { 0 };
        got += out.len() as u64;
        if out.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(got > 0);
    if F::LOSSLESS {
        assert_eq!(got, s.tx_frames, "every posted frame arrives");
    } else {
        assert!(got <= s.tx_frames, "nothing invented");
    }
    settle(&mut ds);
    assert_eq!(
        ds[0].pool().stats().in_use,
        base,
        "no buffer lost under overload"
    );
    assert_eq!(ds[1].pool().stats().in_use, 0);
}

/// Runs the whole suite.
pub fn run_all(f: &impl Factory) {
    unicast_in_order(f);
    multicast_reaches_all(f);
    send_by_reference_keeps_the_callers_handle(f);
    park_and_wake(f);
    overload_is_counted_not_fatal(f);
}
