//! Membership under faults in the deterministic simulator: random plans
//! of crashes (coordinator crashes during flushes among them), joins,
//! leaves, partitions and loss up to 10 %. `TUTTI_SEED=<n>` replays one
//! plan and prints its report; `TUTTI_SOAK=<n>` runs more seeds.

use tutti::sim::vsync::{run, run_seeds, Plan};

/// `TUTTI_PARTITIONS=0` leaves partitions out of the plans.
fn partitions() -> bool {
    std::env::var("TUTTI_PARTITIONS").map_or(true, |v| v != "0")
}

fn seeds() -> u64 {
    tutti::sim::soak_from_env(1000)
}

#[test]
fn membership_holds_under_random_faults() {
    if let Some(seed) = tutti::sim::seed_from_env() {
        let r = run(&Plan::random(seed, 0.1, partitions()));
        println!("{}\nviolations: {:#?}\n{}", r.plan, r.violations, r.dump);
        println!(
            "delivered {} views {} frames {} settled {:?}",
            r.delivered, r.views, r.frames, r.settled
        );
        assert!(r.ok());
        return;
    }
    let batch = run_seeds(1, seeds(), 0.1, partitions());
    println!(
        "{} plans ({} secure, {} with an intruder, refused in {}): {} casts delivered, {} views installed, worst time to one view after the faults: {} ms",
        batch.runs,
        batch.secure,
        batch.intruders,
        batch.refused,
        batch.delivered,
        batch.views,
        batch.worst_settle_ns / 1_000_000
    );
    // Secure runs and intruders are drawn often enough to matter, and an
    // intruder that reached the group was refused nearly always.
    assert!(batch.secure * 5 > batch.runs, "too few secure plans");
    assert!(
        batch.refused * 10 >= batch.intruders * 8,
        "intruders not refused"
    );
    let failed = batch.failed;
    for r in failed.iter().take(5) {
        eprintln!("FAILED {}\n  {}", r.plan, r.violations.join("\n  "));
    }
    for r in &failed {
        for v in &r.violations {
            eprintln!("seed {}: {v}", r.seed);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} plans failed; replay one with TUTTI_SEED=<seed> cargo test --release --test vsync_sim",
        failed.len(),
        seeds()
    );
}
