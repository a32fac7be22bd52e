//! Drives casts from one member to another through a stack of 4, 8 or 12
//! layers (`fifo`, then `pass` layers that do nothing), static or dynamic,
//! with the fast path on or off. `scripts/instr.sh` runs it under
//! cachegrind at two message counts and prints instructions per message.
//!
//! `cargo run --release --example accel_cost -- <4|8|12> <static|dynamic> <fast|full> <messages>`

use tutti::layers::com::Com;
use tutti::layers::frag::Frag;
use tutti::layers::nak::Nak;
use tutti::layers::pass::Pass;
use tutti::layers::stable::Stable;
use tutti::sim::loopback::Loopback;
use tutti::stack::{GroupStack, Stack, StackConfig};
use tutti::{stack_type, Pool, PoolConfig, Up};

type S4 = stack_type![Stable, Frag, Nak, Com];
type S8 = stack_type![Pass, Pass, Pass, Pass, Stable, Frag, Nak, Com];
type S12 = stack_type![Pass, Pass, Pass, Pass, Pass, Pass, Pass, Pass, Stable, Frag, Nak, Com];

fn pool() -> PoolConfig {
    PoolConfig {
        slots: 8192,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    }
}

fn spec(layers: usize) -> String {
    let mut s = "com:nak:frag:stable".to_string();
    for _ in 4..layers {
        s.push_str(":pass");
    }
    s
}

fn stacks(
    layers: usize,
    stat: bool,
    cfg: &StackConfig,
) -> Result<Vec<Box<dyn GroupStack>>, String> {
    (0..2)
        .map(|_| -> Result<Box<dyn GroupStack>, String> {
            let ctl = Pool::new(pool()).map_err(|e| e.to_string())?;
            let e = |e: tutti::stack::SpecError| e.to_string();
            Ok(match (stat, layers) {
                (true, 4) => Box::new(Stack::<S4>::new_static(cfg, ctl).map_err(e)?),
                (true, 8) => Box::new(Stack::<S8>::new_static(cfg, ctl).map_err(e)?),
                (true, 12) => Box::new(Stack::<S12>::new_static(cfg, ctl).map_err(e)?),
                (true, n) => return Err(format!("no static stack of {n} layers")),
                (false, n) => Box::new(Stack::new_dynamic(&spec(n), cfg, ctl).map_err(e)?),
            })
        })
        .collect()
}

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: accel_cost <4|8|12> <static|dynamic> <fast|full> <messages>";
    if a.len() != 4 {
        return Err(usage.into());
    }
    let layers: usize = a[0].parse().map_err(|_| usage)?;
    let stat = a[1] == "static";
    let cfg = StackConfig {
        fast: a[2] == "fast",
        ..StackConfig::default()
    };
    let n: u64 = a[3].parse().map_err(|_| usage)?;
    let mut lb = Loopback::new(stacks(layers, stat, &cfg)?, pool()).map_err(|e| e.to_string())?;
    let tx = Pool::new(pool()).map_err(|e| e.to_string())?;
    let mut delivered = 0u64;
    let mut sink = |i: usize, ev: Up| {
        if i == 1 && matches!(ev, Up::Cast { .. }) {
            delivered += 1;
        }
    };
    lb.pump(&mut sink);
    for i in 0..n {
        let mut m = tx.alloc().ok_or("pool empty")?;
        m.reserve(64).map_err(|e| e.to_string())?.fill(i as u8);
        lb.stacks[0]
            .cast(lb.now, m)
            .map_err(|e| e.kind.to_string())?;
        lb.pump(&mut sink);
        if i % 256 == 255 {
            lb.advance(2_000_000, &mut sink);
        }
    }
    lb.advance(2_000_000, &mut sink);
    let st = lb.stacks[1].stats();
    println!(
        "{} {} {}: delivered {delivered} (fast path {})",
        spec(layers),
        a[1],
        a[2],
        st.fast_in
    );
    if delivered != n {
        return Err(format!("delivered {delivered} of {n}"));
    }
    Ok(())
}
