//! What secure groups cost, per message and per view change.
//!
//! - `frames`: one multicast through a whole stack and into the receiver's
//!   stack to its delivery (cast, frame, receive, deliver), `vsync`
//!   against `vsync-secure`, 64 B and 1 KiB payloads. The ratio is the
//!   price of encrypting and authenticating each frame.
//! - `rekey`: the coordinator's work for a view of 3 and of 8 members (a
//!   fresh key, sealed for each member, and the view message signed), and
//!   one member's (the signature checked, its key opened).
//!
//! Run: `cargo bench --bench secure`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use tutti::event::{Dest, PubKey};
use tutti::secure::{Identity, SealFor, Secure, SIGN_DOMAIN};
use tutti::{GroupStack, Msg, Pool, PoolConfig, Time, Up};

const BATCH: u64 = 64;

fn pool() -> Pool {
    Pool::new(PoolConfig {
        slots: 16384,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    })
    .unwrap()
}

fn id(i: usize) -> Identity {
    tutti::fuzz::identity(i)
}

struct Two {
    s: Vec<Box<dyn GroupStack>>,
    rx: Pool,
    tx: Pool,
    now: Time,
}

impl Two {
    fn new(spec: &str) -> Two {
        let key = spec.contains("secure").then_some([9; 32]);
        let s = (0..2)
            .map(|i| tutti::fuzz::static_member(spec, 2, i, key, pool()).unwrap())
            .collect();
        let mut t = Two {
            s,
            rx: pool(),
            tx: pool(),
            now: Time::ZERO,
        };
        t.settle();
        t
    }

    /// Moves frames and drains events until quiet, then lets time pass
    /// (acknowledgements, stability) and does it again.
    fn settle(&mut self) {
        for _ in 0..2 {
            for _ in 0..50 {
                let mut moved = false;
                for i in 0..2 {
                    while self.s[i].poll_event().is_some() {}
                    while let Some((d, f)) = self.s[i].poll_transmit() {
                        moved = true;
                        let j = 1 - i;
                        let to_j = match &d {
                            Dest::All => true,
                            Dest::Rank(r) => *r as usize == j,
                            Dest::Addr(a) => **a == *format!("m{j}"),
                        };
                        if to_j {
                            let m = self.rx.alloc_frame(f.contiguous().unwrap()).unwrap();
                            self.s[j].receive(self.now, m);
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
            self.now = self.now.plus_ns(5_000_000);
            for s in &mut self.s {
                s.handle_timeout(self.now);
            }
        }
    }
}

fn payload(tx: &Pool, size: usize) -> Msg {
    let mut m = tx.alloc().unwrap();
    m.reserve(size).unwrap().fill(7);
    m
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("secure frames");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    for size in [64usize, 1024] {
        for spec in ["vsync", "vsync-secure"] {
            g.bench_with_input(
                BenchmarkId::new(format!("{spec}: cast to delivery"), size),
                &size,
                |b, &size| {
                    let mut t = Two::new(spec);
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        let mut done = 0;
                        while done < iters {
                            let n = BATCH.min(iters - done);
                            let msgs: Vec<Msg> = (0..n).map(|_| payload(&t.tx, size)).collect();
                            let now = t.now;
                            let t0 = Instant::now();
                            for m in msgs {
                                t.s[0].cast(now, m).unwrap();
                                while let Some((_, f)) = t.s[0].poll_transmit() {
                                    let m = t.rx.alloc_frame(f.contiguous().unwrap()).unwrap();
                                    t.s[1].receive(now, m);
                                }
                                while let Some(ev) = t.s[1].poll_event() {
                                    if let Up::Cast { msg, .. } = ev {
                                        black_box(msg);
                                    }
                                }
                                while t.s[0].poll_event().is_some() {}
                            }
                            spent += t0.elapsed();
                            t.settle();
                            done += n;
                        }
                        spent
                    })
                },
            );
        }
    }
    g.finish();
}

fn rekey(c: &mut Criterion) {
    let mut g = c.benchmark_group("secure rekey");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for n in [3usize, 8] {
        let keys: Vec<PubKey> = (0..n).map(|i| id(i).public()).collect();
        let coord = Secure::with_seed(id(0), &keys, [1; 32]).unwrap();
        let member = Secure::with_seed(id(1), &keys, [2; 32]).unwrap();
        // A view message of this size, roughly: ids, addresses, keys and
        // sealed keys.
        let view_bytes = vec![5u8; n * (8 + 16 + 32 + 60) + 200];
        let at = |m: usize| SealFor {
            group: 1,
            ltime: 7,
            vcoord: 0,
            member: m as u64,
        };
        g.bench_with_input(
            BenchmarkId::new("coordinator: fresh key, seal for each, sign", n),
            &n,
            |b, &n| {
                b.iter(|| {
                    let k = coord.fresh_key();
                    let sealed: Vec<Vec<u8>> = (0..n)
                        .map(|m| coord.seal(&k, &keys[m], &at(m)).unwrap())
                        .collect();
                    let sig = coord.identity().sign(&[SIGN_DOMAIN, &view_bytes]);
                    black_box((sealed, sig))
                })
            },
        );
        let k = coord.fresh_key();
        let sealed = coord.seal(&k, &keys[1], &at(1)).unwrap();
        let sig = coord.identity().sign(&[SIGN_DOMAIN, &view_bytes]);
        g.bench_with_input(
            BenchmarkId::new("member: check signature, open key", n),
            &n,
            |b, _| {
                b.iter(|| {
                    assert!(member.verify(&keys[0], &[SIGN_DOMAIN, &view_bytes], &sig));
                    black_box(member.open(&sealed, &keys[0], &at(1)).unwrap())
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, frames, rekey);
criterion_main!(benches);
