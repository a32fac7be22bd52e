//! Buffer references one at a time against in bulk, as a receiver unpacks
//! a packed frame (21 casts of 64 bytes: a window for the delivery and one
//! kept for repair each, all dropped later) and as `nak` lets go of a run
//! of stable casts (64 buffers, each the last handle on its slot).
//!
//! Run: `cargo bench --bench pool`. One thread, so the atomic operations
//! are uncontended: this measures their count, not cache-line transfers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use tutti::{Msg, Pool, PoolConfig};
use tutti_drivers::{release_all, Releaser};

const CASTS: usize = 21;
const ENTRY: usize = 66;
const RUN: usize = 64;

fn pool() -> Pool {
    Pool::new(PoolConfig::default()).unwrap()
}

fn frame(p: &Pool) -> Msg {
    let mut f = p.alloc().unwrap();
    f.reserve(8 + CASTS * ENTRY).unwrap().fill(1);
    f
}

fn unpack(c: &mut Criterion) {
    let p = pool();
    let f = frame(&p);
    let mut g = c.benchmark_group("unpack_21");
    g.throughput(Throughput::Elements(CASTS as u64));
    let mut held: Vec<Msg> = Vec::with_capacity(2 * CASTS);
    g.bench_function("one_by_one", |b| {
        b.iter(|| {
            for i in 0..CASTS {
                let mut m = f.share();
                let _ = m.advance(8 + i * ENTRY + 2);
                let _ = m.truncate(ENTRY - 2);
                held.push(m.share());
                held.push(m);
            }
            held.drain(..).for_each(drop);
            black_box(&f);
        })
    });
    g.bench_function("bulk", |b| {
        b.iter(|| {
            let mut sh = f.share_bulk(2 * CASTS as u32).unwrap();
            for i in 0..CASTS {
                let off = 8 + i * ENTRY + 2;
                held.push(sh.window(off, ENTRY - 2).unwrap());
                held.push(sh.window(off, ENTRY - 2).unwrap());
            }
            release_all(held.drain(..));
            black_box(&f);
        })
    });
    g.finish();
}

fn release(c: &mut Criterion) {
    let p = pool();
    let mut g = c.benchmark_group("release_64_last_handles");
    g.throughput(Throughput::Elements(RUN as u64));
    let mut ms: Vec<Msg> = Vec::with_capacity(RUN);
    g.bench_function("one_by_one", |b| {
        b.iter(|| {
            ms.extend((0..RUN).map(|_| p.alloc().unwrap()));
            ms.drain(..).for_each(drop);
        })
    });
    g.bench_function("chained", |b| {
        b.iter(|| {
            ms.extend((0..RUN).map(|_| p.alloc().unwrap()));
            let mut r = Releaser::new();
            ms.drain(..).for_each(|m| r.push(m));
        })
    });
    g.finish();
}

criterion_group!(benches, unpack, release);
criterion_main!(benches);
