//! What an idle poll costs: an engine with one group (`com:nak:stable`,
//! two members over shm, nothing sent) polled in a loop, against the bare
//! shm driver's `recv` in the same loop. While a member waits for a frame
//! it polls; the shorter the poll, the sooner it notices the frame.
//!
//! `cargo run --release --example idle_cost -- <polls>`

mod common;

use std::time::Instant;

use tutti::engine::DriverConfig;

fn main() -> Result<(), String> {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .ok_or("usage: idle_cost <polls>")?;
    let d = std::env::temp_dir().join(format!("tutti-idle-cost-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let open = |name: &str| {
        DriverConfig::shm(&d, name)
            .open()
            .map_err(|e| e.to_string())
    };
    let (mut cores, g) = common::pair(open("a")?, open("b")?, "idle", "com:nak:stable", true)?;
    // The first exchanges over.
    for _ in 0..10_000 {
        for (c, g) in cores.iter_mut().zip(g) {
            c.poll().map_err(|e| e.to_string())?;
            while c.next_event(g).is_some() {}
        }
    }
    let mut raw = open("r")?;
    let mut rx = Vec::new();
    for round in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            cores[0].poll().map_err(|e| e.to_string())?;
        }
        let engine = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            raw.recv(&mut rx, 64).map_err(|e| e.to_string())?;
        }
        let driver = t.elapsed().as_nanos() as f64 / n as f64;
        println!("round {round}: engine idle poll {engine:.1} ns, driver recv {driver:.1} ns");
    }
    drop((cores, raw));
    let _ = std::fs::remove_dir_all(&d);
    Ok(())
}
