//! One member of a process group with membership (`vsync`): it finds the
//! group through its contacts (or founds it), keeps a small state (how
//! many messages it has seen) that a joiner receives by state transfer,
//! multicasts a greeting every half second, prints views and messages,
//! and leaves after a while. Start several, in several terminals:
//!
//!     cargo run --release --example membership -- alice alice,bob,carol 10
//!     cargo run --release --example membership -- bob   alice,bob,carol 10
//!     cargo run --release --example membership -- carol alice,bob,carol 5
//!
//! Arguments: own name, contacts, seconds to stay. Kill one with Ctrl-C or
//! SIGKILL and watch the others install a view without it.

use std::time::{Duration, Instant};

use tutti::engine::{DriverConfig, Endpoint, Event, GroupSpec};
use tutti::layers::suspect::SuspectConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).cloned().unwrap_or_else(|| "alice".into());
    let contacts: Vec<String> = args
        .get(2)
        .map(|c| c.split(',').map(String::from).collect())
        .unwrap_or_default();
    let stay = Duration::from_secs(args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10));

    let dir = std::env::temp_dir().join("tutti-example-membership");
    std::fs::create_dir_all(&dir)?;
    let ep = Endpoint::builder()
        .driver(DriverConfig::shm(&dir, &name))
        .build()?;
    let mut spec = GroupSpec::new("example", "vsync", contacts);
    spec.config.suspect = SuspectConfig::SHM; // 50 ms failure detector
    spec.config.gms.app_state = true; // we answer GetState ourselves
    let group = ep.join(spec)?;

    let started = Instant::now();
    let mut seen: u64 = 0; // the application's state
    let mut members = Vec::new();
    let mut last_hello = Instant::now();
    let mut left = false;
    loop {
        match group.recv(Duration::from_millis(50)) {
            Some(Event::View(v)) => {
                members = v.addrs.iter().map(|a| a.to_string()).collect();
                println!(
                    "[{name}] view {} {:?}, I am rank {}",
                    v.id.ltime, members, v.rank
                );
            }
            Some(Event::Cast { src, msg, .. }) => {
                seen += 1;
                let from = members.get(src as usize).cloned().unwrap_or_default();
                println!(
                    "[{name}] {from}: {}",
                    String::from_utf8_lossy(&msg.to_vec())
                );
            }
            // A joiner needs our state: as of this very event.
            Some(Event::GetState) => group.give_state(&seen.to_be_bytes()),
            // We joined: the state comes before our first view.
            Some(Event::State(Some(s))) if s.len() == 8 => {
                seen = u64::from_be_bytes(s[..8].try_into()?);
                println!("[{name}] joined; the group had seen {seen} messages");
            }
            Some(Event::Exit) => {
                println!("[{name}] left the group");
                return Ok(());
            }
            _ => {}
        }
        if !left && started.elapsed() > stay {
            group.leave();
            left = true;
        }
        if !left && !members.is_empty() && last_hello.elapsed() > Duration::from_millis(500) {
            last_hello = Instant::now();
            if let Some(m) = group.message(format!("hello from {name} ({seen} seen)").as_bytes()) {
                // WouldBlock during a view change: skip this greeting.
                let _ = group.cast(m);
            }
        }
    }
}
