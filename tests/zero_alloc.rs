//! No heap allocation per message: a counting global allocator watches a
//! group of three while tens of thousands of multicasts and point-to-point
//! messages flow down the senders' stacks, across the loopback into the
//! receivers' pools, up to delivery, with the stability gossip, the repair
//! tick and buffer collection running. After warm-up (queues reach their
//! working capacity) the count must not move.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tutti::sim::loopback::Loopback;
use tutti::stack::{FifoStatic, ReliableStatic, Stack, StackConfig};
use tutti::{build, GroupStack, Msg, Pool, PoolConfig, Up};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn pools() -> (PoolConfig, PoolConfig) {
    let data = PoolConfig {
        slots: 8192,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    };
    (data, data)
}

/// Drives `msgs` messages from member 0 (casts, and every fourth a send to
/// member 1; or, with `batch` over 1, casts in batches of that many, which
/// the fast path packs and takes as runs, gathered in `q`); returns
/// deliveries seen.
fn drive<S: GroupStack>(
    lb: &mut Loopback<S>,
    tx: &Pool,
    msgs: u64,
    batch: usize,
    q: &mut VecDeque<Msg>,
) -> u64 {
    let mut delivered = 0u64;
    let mut sink = |_: usize, ev: Up| {
        if let Up::Cast { msg, .. } | Up::Send { msg, .. } = ev {
            delivered += msg.len() as u64 / 64;
        }
    };
    for i in 0..msgs {
        let mut m = tx.alloc().expect("pool sized for the window");
        m.reserve(64).unwrap().fill(i as u8);
        let now = lb.now;
        if batch > 1 {
            q.push_back(m);
            if q.len() < batch {
                continue;
            }
            while !q.is_empty() {
                let now = lb.now;
                if lb.stacks[0].cast_batch(now, q).unwrap() == 0 {
                    lb.advance(1_000_000, &mut sink);
                }
                lb.pump(&mut sink);
            }
            lb.advance(2_000, &mut sink);
            continue;
        }
        let res = if i % 4 == 3 {
            lb.stacks[0].send(now, 1, m)
        } else {
            lb.stacks[0].cast(now, m)
        };
        if res.is_err() {
            // Window closed: let stability catch up, then go on.
            lb.advance(1_000_000, &mut sink);
        }
        lb.pump(&mut sink);
        lb.advance(2_000, &mut sink);
    }
    for _ in 0..50 {
        lb.advance(1_000_000, &mut sink);
    }
    delivered
}

fn check<S: GroupStack>(name: &str, stacks: Vec<S>, tx: Pool, batch: usize) {
    let (_, rx) = pools();
    let mut lb = Loopback::new(stacks, rx).unwrap();
    // Warm-up: queues and buffers grow to their working size.
    let mut q = VecDeque::with_capacity(batch);
    let warm = drive(&mut lb, &tx, 20_000, batch, &mut q);
    assert!(warm > 0);
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let delivered = drive(&mut lb, &tx, 50_000, batch, &mut q);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    println!("{name}: {delivered} deliveries, {allocs} heap allocations");
    assert!(delivered >= 50_000, "{name}: messages flowed ({delivered})");
    assert_eq!(allocs, 0, "{name}: heap allocations on the message path");
    for s in &lb.stacks {
        assert_eq!(s.buffered(), 0, "{name}: buffers drained");
    }
}

#[test]
fn steady_state_message_path_does_not_allocate() {
    let (data, _) = pools();
    let cfg = StackConfig::default();
    let ctl = || Pool::new(data).unwrap();
    let tx = Pool::new(data).unwrap();
    let stacks: Vec<Stack<ReliableStatic>> = (0..3)
        .map(|_| Stack::new_static(&cfg, ctl()).unwrap())
        .collect();
    check("static com:nak:stable", stacks, tx.clone(), 1);
    let stacks: Vec<Stack<ReliableStatic>> = (0..3)
        .map(|_| Stack::new_static(&cfg, ctl()).unwrap())
        .collect();
    check("static com:nak:stable, batches", stacks, tx.clone(), 64);
    let stacks: Vec<Stack<FifoStatic>> = (0..3)
        .map(|_| Stack::new_static(&cfg, ctl()).unwrap())
        .collect();
    check("static com:nak:frag:stable", stacks, tx.clone(), 1);
    let stacks: Vec<Box<dyn GroupStack>> = (0..3)
        .map(|_| build("fifo", &cfg, ctl(), false).unwrap())
        .collect();
    check("dynamic com:nak:frag:stable", stacks, tx, 1);
}
