//! The Protocol Accelerator's cost, measured in one thread so that no
//! cross-core wakeup blurs it: two endpoints over the real shm driver, a
//! round trip is endpoint 0 casting, endpoint 1 polling until it has the
//! message and casting back, endpoint 0 polling until it has the answer.
//! Raw: the same through the bare driver. The difference is the software
//! cost of the stack and the engine per round trip (two casts, two
//! deliveries).
//!
//! Run: `cargo bench --bench accel`.

use std::collections::VecDeque;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use tutti::engine::{Core, DriverConfig, GroupSpec};
use tutti::{Event, Msg};
use tutti_drivers::{Driver, To, Tx};

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tutti-accel-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}

fn drivers(tag: &str) -> (Box<dyn Driver>, Box<dyn Driver>, std::path::PathBuf) {
    let d = dir(tag);
    let a = DriverConfig::shm(&d, "a").open().expect("shm a");
    let b = DriverConfig::shm(&d, "b").open().expect("shm b");
    (a, b, d)
}

fn payload(d: &dyn Driver) -> Msg {
    let mut m = d.pool().alloc().expect("buffer");
    m.reserve(64).expect("room").fill(7);
    m
}

fn raw_rtt(c: &mut Criterion) {
    let (mut a, mut b, d) = drivers("raw");
    let pa = a.add_peer("b").expect("peer");
    let pb = b.add_peer("a").expect("peer");
    let mut q = VecDeque::new();
    let mut rx = Vec::new();
    let mut hop = |from: &mut Box<dyn Driver>, to: &mut Box<dyn Driver>, p| {
        q.push_back(Tx {
            to: To::Peer(p),
            frame: payload(from.as_ref()),
        });
        while !q.is_empty() {
            from.send(&mut q).expect("send");
        }
        while to.recv(&mut rx, 64).expect("recv") == 0 {}
        rx.clear();
    };
    c.bench_function("rtt 64 B: raw shm driver", |bch| {
        bch.iter(|| {
            hop(&mut a, &mut b, pa);
            hop(&mut b, &mut a, pb);
        })
    });
    let _ = std::fs::remove_dir_all(d);
}

fn stack_rtt(c: &mut Criterion, stack: &str, fast: bool) {
    let tag = format!("{}-{fast}", stack.replace(':', "_"));
    let (a, b, d) = drivers(&tag);
    let mut cores = [Core::new(a), Core::new(b)];
    let mut spec = GroupSpec::new("accel", stack, vec!["a".into(), "b".into()]);
    spec.config.fast = fast;
    let g: Vec<usize> = cores
        .iter_mut()
        .map(|c| c.join(&spec).expect("join"))
        .collect();
    // Until both show the view (a membership stack transfers state).
    let t = std::time::Instant::now();
    let mut seen = [false; 2];
    while !(seen[0] && seen[1]) {
        assert!(t.elapsed() < Duration::from_secs(10), "no view");
        for (i, (c, g)) in cores.iter_mut().zip(&g).enumerate() {
            c.poll().expect("poll");
            while let Some(ev) = c.next_event(*g) {
                seen[i] |= matches!(ev, Event::View(_));
            }
        }
    }
    let hop = |cores: &mut [Core; 2], from: usize| {
        let to = 1 - from;
        let m = payload(cores[from].driver());
        while cores[from].cast(g[from], m.share()).is_err() {
            cores[from].poll().expect("poll");
            cores[to].poll().expect("poll");
        }
        drop(m);
        loop {
            cores[to].poll().expect("poll");
            let mut got = false;
            while let Some(ev) = cores[to].next_event(g[to]) {
                got |= matches!(ev, Event::Cast { src, .. } if src as usize == from);
            }
            // The sender's own delivery and its acks.
            cores[from].poll().expect("poll");
            while cores[from].next_event(g[from]).is_some() {}
            if got {
                break;
            }
        }
    };
    let name = format!(
        "rtt 64 B: {stack} {}",
        if fast { "fast path" } else { "full path" }
    );
    c.bench_function(&name, |bch| {
        bch.iter(|| {
            hop(&mut cores, 0);
            hop(&mut cores, 1);
        })
    });
    drop(cores);
    let _ = std::fs::remove_dir_all(d);
}

/// Packing in one process: member 0 casts batches of 64 casts of 64
/// bytes (`begin_batch`, casts, `end_batch`), the packed frames go to
/// member 1, which unpacks them and delivers. Time per cast, both sides.
fn packed(c: &mut Criterion) {
    use tutti::sim::loopback::Loopback;
    use tutti::stack::{FifoStatic, Stack, StackConfig};
    use tutti::{Pool, PoolConfig, Up};
    let cfg = PoolConfig {
        slots: 16384,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    };
    let stacks = (0..2)
        .map(|_| Stack::<FifoStatic>::new_static(&StackConfig::default(), Pool::new(cfg).unwrap()))
        .collect::<Result<Vec<_>, _>>()
        .expect("stacks");
    let mut lb = Loopback::new(stacks, cfg).expect("loopback");
    let tx = Pool::new(cfg).expect("pool");
    let mut sink = |_: usize, ev: Up| drop(ev);
    let mut g = c.benchmark_group("packed 64 B casts, fifo, per cast");
    g.throughput(criterion::Throughput::Elements(64));
    g.bench_function("batch of 64: pack, unpack, deliver", |b| {
        b.iter(|| {
            let now = lb.now;
            lb.stacks[0].begin_batch();
            for _ in 0..64 {
                let mut m = tx.alloc().expect("buffer");
                m.reserve(64).expect("room").fill(1);
                lb.stacks[0].cast(now, m).expect("window");
            }
            lb.stacks[0].end_batch();
            lb.pump(&mut sink);
            lb.advance(1_000_000, &mut sink);
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    packed(c);
    raw_rtt(c);
    for stack in ["reliable", "vsync", "vsync-total"] {
        stack_rtt(c, stack, true);
        stack_rtt(c, stack, false);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
