//! Round trips between two processes over shm through the Rust API
//! (threaded `Endpoint` and `Group`): the twin of `ffi/examples/pingpong.c`
//! (the C API), with the same stack, endpoint settings and payload, so
//! their medians compare. Starts its echoing peer itself; prints one JSON
//! line.
//!
//!     cargo run --release --example api_pingpong -- <dir> <count> [pin]
//!
//! With `pin`, each process (its application thread and the polling
//! thread it starts) runs on one core of its own: 0 for the measuring
//! side, 1 for the echo.

use std::time::{Duration, Instant};

use tutti::engine::{DriverConfig, Endpoint, Event, GroupSpec};
use tutti::Group;

fn member(dir: &str, name: &str) -> Result<(Endpoint, Group), Box<dyn std::error::Error>> {
    let ep = Endpoint::builder()
        .driver(DriverConfig::shm(dir, name))
        .build()?;
    let members = vec!["pa".to_string(), "pb".to_string()];
    let g = ep.join(GroupSpec::new("pp", "reliable", members))?;
    Ok((ep, g))
}

fn cast(g: &Group, bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let mut m = g.message(bytes).ok_or("no buffer")?;
    while let Err(e) = g.cast(m) {
        m = e.msg;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "/dev/shm/tutti-pp".into());
    let count: usize = args
        .get(2)
        .and_then(|c| c.parse().ok())
        .unwrap_or(20_000)
        .max(1);
    let warm = 1000;
    let msg = [0u8; 64];
    let pin = args.get(3).map(String::as_str) == Some("pin");
    let pin_to = |core: usize| {
        // The polling thread, started later, inherits this thread's
        // affinity.
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            eprintln!("could not pin to core {core}");
        }
    };
    if args.get(3).map(String::as_str) == Some("echo")
        || args.get(4).map(String::as_str) == Some("echo")
    {
        if pin {
            pin_to(1);
        }
        let (_ep, g) = member(&dir, "pb")?;
        let mut n = 0;
        while n < count + warm {
            match g.recv(Duration::from_secs(5)) {
                Some(Event::Cast { src: 0, .. }) => {
                    cast(&g, &msg)?;
                    n += 1;
                }
                Some(_) => {}
                None => {
                    let first = g.dump();
                    std::thread::sleep(Duration::from_millis(300));
                    return Err(format!(
                        "echo: nothing for 5 s after {n}; stack:\n{first}\n300 ms later:\n{}",
                        g.dump()
                    )
                    .into());
                }
            }
        }
        return Ok(());
    }
    let mut kid_args = vec![dir.clone(), count.to_string()];
    if pin {
        kid_args.push("pin".into());
    }
    kid_args.push("echo".into());
    let mut kid = std::process::Command::new(std::env::current_exe()?)
        .args(&kid_args)
        .spawn()?;
    if pin {
        pin_to(0);
    }
    let (_ep, g) = member(&dir, "pa")?;
    std::thread::sleep(Duration::from_millis(300));
    let mut rtt = Vec::with_capacity(count);
    for i in 0..count + warm {
        let t0 = Instant::now();
        cast(&g, &msg)?;
        loop {
            match g.recv(Duration::from_secs(5)) {
                Some(Event::Cast { src: 1, .. }) => break,
                Some(_) => {}
                None => {
                    let first = g.dump();
                    std::thread::sleep(Duration::from_millis(300));
                    return Err(format!(
                        "no answer to {i}; stack:\n{first}\n300 ms later:\n{}",
                        g.dump()
                    )
                    .into());
                }
            }
        }
        if i >= warm {
            rtt.push(t0.elapsed().as_nanos() as u64);
        }
    }
    rtt.sort_unstable();
    println!(
        "{{\"api\":\"rust\",\"count\":{count},\"pinned\":{pin},\"p50_ns\":{},\"p99_ns\":{}}}",
        rtt[count / 2],
        rtt[count * 99 / 100]
    );
    kid.wait()?;
    Ok(())
}
