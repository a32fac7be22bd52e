//! Cost of the static `com:nak:stable` stack per message: one multicast
//! down to a frame, and one frame up to a delivery, for 1-byte and 1 KiB
//! payloads. The baseline is the buffer work alone (take a buffer, write
//! the payload, give it back), so the stack's own cost is the difference.
//!
//! Run: `cargo bench --bench stack`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use tutti::sim::loopback::Loopback;
use tutti::stack::{ReliableStatic, Stack, StackConfig};
use tutti::{Msg, Pool, PoolConfig, Up};

const BATCH: u64 = 128;

fn pool() -> Pool {
    Pool::new(PoolConfig {
        slots: 16384,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    })
    .unwrap()
}

fn group() -> (Loopback<Stack<ReliableStatic>>, Pool) {
    let cfg = StackConfig::default();
    let stacks = (0..2)
        .map(|_| Stack::new_static(&cfg, pool()).unwrap())
        .collect();
    let lb = Loopback::new(stacks, *pool().config()).unwrap();
    (lb, pool())
}

fn payload(tx: &Pool, size: usize) -> Msg {
    let mut m = tx.alloc().unwrap();
    m.reserve(size).unwrap().fill(7);
    m
}

/// Lets the receiver deliver and gossip so the sender's window reopens.
fn settle(lb: &mut Loopback<Stack<ReliableStatic>>) {
    let mut sink = |_: usize, ev: Up| drop(ev);
    lb.pump(&mut sink);
    lb.advance(2_000_000, &mut sink);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack com:nak:stable");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for size in [1usize, 1024] {
        g.throughput(Throughput::Elements(1));
        let tx = pool();
        g.bench_with_input(
            BenchmarkId::new("baseline buffer only", size),
            &size,
            |b, &size| b.iter(|| drop(black_box(payload(&tx, size)))),
        );

        g.bench_with_input(
            BenchmarkId::new("down: cast to frame", size),
            &size,
            |b, &size| {
                let (mut lb, tx) = group();
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let n = BATCH.min(iters - done);
                        let msgs: Vec<Msg> = (0..n).map(|_| payload(&tx, size)).collect();
                        let now = lb.now;
                        let mut frames = Vec::with_capacity(n as usize);
                        let s = &mut lb.stacks[0];
                        let t0 = Instant::now();
                        for m in msgs {
                            s.cast(now, m).unwrap();
                            frames.push(s.poll_transmit());
                            while s.poll_event().is_some() {}
                        }
                        spent += t0.elapsed();
                        // Untimed: the receiver gets the frames, so stability
                        // advances and the window stays open.
                        for (_, f) in frames.into_iter().flatten() {
                            let m = lb.rx_pool(1).alloc_frame(f.contiguous().unwrap()).unwrap();
                            lb.stacks[1].receive(now, m);
                        }
                        settle(&mut lb);
                        done += n;
                    }
                    spent
                })
            },
        );

        g.bench_with_input(
            BenchmarkId::new("up: frame to delivery", size),
            &size,
            |b, &size| {
                let (mut lb, tx) = group();
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let n = BATCH.min(iters - done);
                        let now = lb.now;
                        let mut frames = Vec::with_capacity(n as usize);
                        for _ in 0..n {
                            lb.stacks[0].cast(now, payload(&tx, size)).unwrap();
                            while lb.stacks[0].poll_event().is_some() {}
                            let (_, f) = lb.stacks[0].poll_transmit().unwrap();
                            frames
                                .push(lb.rx_pool(1).alloc_frame(f.contiguous().unwrap()).unwrap());
                        }
                        let r = &mut lb.stacks[1];
                        let t0 = Instant::now();
                        for f in frames {
                            r.receive(now, f);
                            while let Some(ev) = r.poll_event() {
                                black_box(&ev);
                            }
                        }
                        spent += t0.elapsed();
                        settle(&mut lb);
                        done += n;
                    }
                    spent
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
