//! A group of three endpoints over shared memory, in one process for the
//! example's sake (in real use each is its own process, started with the
//! same member list). Each joins, multicasts a few messages written
//! straight into registered buffers, and prints what it receives.
//!
//! Run: cargo run --release --example group

use std::time::Duration;

use tutti::engine::{DriverConfig, Endpoint, Event, GroupSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tutti-example-{}", std::process::id()));
    let names = ["alice", "bob", "carol"];
    let members: Vec<String> = names.iter().map(|s| s.to_string()).collect();

    // One endpoint (one polling thread) per member.
    let endpoints = names
        .iter()
        .map(|n| {
            Endpoint::builder()
                .driver(DriverConfig::shm(&dir, n))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Everyone joins the same group with the same stack and member list.
    let groups = endpoints
        .iter()
        .map(|e| e.join(GroupSpec::new("chat", "fifo", members.clone())))
        .collect::<Result<Vec<_>, _>>()?;

    for (rank, g) in groups.iter().enumerate() {
        for i in 0..3 {
            // Zero-copy send: take a registered buffer, write into it, cast it.
            let mut msg = g.alloc().ok_or("no free buffer")?;
            let text = format!("{} says hello #{i}", names[rank]);
            msg.reserve(text.len())?.copy_from_slice(text.as_bytes());
            g.cast(msg).map_err(|e| e.kind.to_string())?;
        }
    }

    for (rank, g) in groups.iter().enumerate() {
        let mut got = 0;
        while got < 9 {
            match g.recv(Duration::from_secs(5)) {
                Some(Event::View(v)) => println!("{}: view with {} members", names[rank], v.size()),
                Some(Event::Cast { src, msg, .. }) => {
                    got += 1;
                    println!(
                        "{} <- {}: {}",
                        names[rank],
                        names[src as usize],
                        String::from_utf8_lossy(&msg.to_vec())
                    );
                }
                Some(_) => {}
                None => return Err(format!("{}: timed out", names[rank]).into()),
            }
        }
    }
    drop(groups);
    drop(endpoints);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
