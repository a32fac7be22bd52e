//! The Protocol Accelerator: the fast path is equivalent to the full path.
//!
//! The same random membership plans (crashes, joins, leaves, partitions,
//! loss) run in the deterministic simulator with the fast path on and off:
//! every frame on the wire, every delivery and every view must be the same.
//! `TUTTI_SOAK=<n>` runs more seeds.

use tutti::sim::vsync::{run, Plan, Report};

/// Both runs of a plan held every oracle and are the same protocol: the
/// same frames on the wire, deliveries, views and counts.
fn same_protocol(a: &Report, b: &Report, (na, nb): (&str, &str)) {
    for (r, n) in [(a, na), (b, nb)] {
        assert!(r.ok(), "{n}: {}\n{:#?}\n{}", r.plan, r.violations, r.dump);
    }
    let plan = &a.plan;
    assert_eq!(a.wire, b.wire, "{plan}: the wire differs");
    assert_eq!(a.delivery, b.delivery, "{plan}: deliveries differ");
    assert_eq!(
        (a.delivered, a.views, a.frames),
        (b.delivered, b.views, b.frames),
        "{plan}"
    );
}

/// Both runs sent and delivered as many casts on the fast path, and
/// packed as many.
fn same_fast_counts(a: &Report, b: &Report) {
    let counts = |r: &Report| (r.stats.fast_out, r.stats.fast_in, r.stats.packed_casts);
    assert_eq!(counts(a), counts(b), "{}", a.plan);
}

#[test]
fn fast_path_and_full_path_are_the_same_protocol() {
    let (mut fast_in, mut fast_out, mut missed, mut runs) = (0u64, 0u64, 0u64, 0u64);
    let mut later = 0u64;
    for seed in 1..=tutti::sim::soak_from_env(150) {
        let mut plan = Plan::random(seed, 0.1, true);
        // Packing is a choice of the fast path alone: one cast at a time.
        plan.burst = 1;
        plan.fast = true;
        let on = run(&plan);
        plan.fast = false;
        let off = run(&plan);
        same_protocol(&on, &off, ("fast path on", "fast path off"));
        assert_eq!(off.stats.fast_in + off.stats.fast_out, 0, "{plan}");
        fast_in += on.stats.fast_in;
        later += on.stats.fast_later;
        fast_out += on.stats.fast_out;
        missed += on.stats.fast_missed;
        runs += 1;
    }
    println!(
        "{runs} plans: fast path sent {fast_out} casts, delivered {fast_in} ({later} before the layers' part, post-processed); {missed} compact frames took the full path"
    );
    assert!(fast_out > 0 && fast_in > 0, "the fast path ran");
    assert!(later > 0, "deliveries were post-processed");
}

/// Casts in bursts: the fast path packs them, frames carrying several
/// casts are lost, duplicated and cut by view changes; every membership
/// oracle must still hold.
#[test]
fn packed_casts_survive_faults() {
    let (mut frames, mut casts, mut runs) = (0u64, 0u64, 0u64);
    for seed in 1..=tutti::sim::soak_from_env(150) {
        let mut plan = Plan::random(seed, 0.1, true);
        plan.fast = true;
        plan.burst = plan.burst.max(4);
        let r = run(&plan);
        assert!(r.ok(), "{}\n{:#?}\n{}", r.plan, r.violations, r.dump);
        frames += r.stats.packed_frames;
        casts += r.stats.packed_casts;
        runs += 1;
    }
    println!("{runs} plans: {casts} casts went in {frames} packed frames");
    assert!(frames > 0 && casts > 2 * frames, "casts were packed");
}

/// Runs: the casts of a batch and of a packed frame taken by every layer
/// at once are the same protocol as one at a time (the same frames on
/// the wire, deliveries and views), through crashes, joins, partitions
/// and loss.
#[test]
fn runs_and_one_at_a_time_are_the_same_protocol() {
    let (mut out, mut plans, mut run_out, mut run_in) = (0u64, 0u64, 0u64, 0u64);
    for seed in 1..=tutti::sim::soak_from_env(150) {
        let mut plan = Plan::random(seed, 0.1, true);
        plan.fast = true;
        plan.burst = plan.burst.max(4);
        plan.runs = true;
        let on = run(&plan);
        plan.runs = false;
        let off = run(&plan);
        same_protocol(&on, &off, ("runs", "no runs"));
        same_fast_counts(&on, &off);
        assert_eq!(off.stats.run_out + off.stats.run_in, 0, "{plan}");
        out += on.stats.fast_out;
        run_out += on.stats.run_out;
        run_in += on.stats.run_in;
        plans += 1;
    }
    println!(
        "{plans} plans: {out} casts on the fast path, {run_out} of them sent in runs, {run_in} delivered in runs; the same with runs and without"
    );
    assert!(run_out > 0 && run_in > 0, "runs were taken");
}

/// A group that does not take its own casts (`discard_own`) runs the same
/// protocol: the same frames on the wire and the same deliveries of the
/// others' casts as when it takes them, and none of its own. The
/// application keeps its own casts in its state as the stack takes them
/// (it sees no delivery of them): under FIFO order, where a sender's own
/// delivery comes with its cast, the state it transfers to joiners is the
/// one it has when its casts are delivered, so everything is compared.
/// Under total order a sender's casts come back up only once ordered, so
/// an application that keeps its own at once transfers another state (and
/// the runs part); there the run that discards is judged by the oracles
/// themselves, with its own casts where it made them: total order over
/// the others' casts, virtual synchrony, self-delivery, FIFO, delivery in
/// the sending view, views, liveness (not state transfer: a giver's state
/// holds its own casts before they are ordered, and its joiners get them
/// twice, see `Checker::own_unordered`). Token stacks are left out of that:
/// their casts may go out a view later than the application made them,
/// so an application that keeps its own at once can hold a cast in
/// another view than the group delivers it in; an application there must
/// take its own deliveries.
#[test]
fn discarding_own_casts_changes_nothing_else() {
    let (mut runs, mut own, mut judged) = (0u64, 0u64, 0u64);
    for seed in 1..=tutti::sim::soak_from_env(150) {
        let mut plan = Plan::random(seed, 0.1, true);
        let (fifo, token) = (!plan.total, plan.token);
        let kept = run(&plan);
        plan.discard_own = true;
        let discarded = run(&plan);
        let plan = &kept.plan;
        assert!(kept.ok(), "{plan}\n{:#?}\n{}", kept.violations, kept.dump);
        assert_eq!(discarded.own_delivered, 0, "{plan}: own casts delivered");
        if !token {
            assert!(
                discarded.ok(),
                "{plan} discarding own casts\n{:#?}\n{}",
                discarded.violations,
                discarded.dump
            );
            judged += 1;
        }
        if fifo {
            assert_eq!(kept.wire, discarded.wire, "{plan}: the wire differs");
            assert_eq!(
                kept.delivery_others, discarded.delivery_others,
                "{plan}: the deliveries of the others' casts differ"
            );
            own += kept.own_delivered;
            runs += 1;
        }
    }
    println!("{judged} plans discarding own casts judged by the oracles");
    println!("{runs} plans compared: {own} own deliveries not made");
    assert!(own > 0, "own casts were discarded");
}

/// Bursts written in place into frames (`Packer`: each cast a window on
/// the frame that carries it, sent without a copy where it reaches `com`
/// in order) are the same protocol as bursts of a buffer each: the same
/// frames on the wire (a frame written in place holds what `com` packs
/// into one; where a batch is cut, the casts that follow join it as they
/// lie, or are copied where they cannot), deliveries, views and counts.
#[test]
fn casts_written_in_place_are_the_same_protocol() {
    let (mut plans, mut in_place) = (0u64, 0u64);
    for seed in 1..=tutti::sim::soak_from_env(150) {
        let mut plan = Plan::random(seed, 0.1, true);
        plan.burst = plan.burst.max(4);
        plan.in_place = true;
        let on = run(&plan);
        plan.in_place = false;
        let off = run(&plan);
        same_protocol(&on, &off, ("in place", "copied"));
        same_fast_counts(&on, &off);
        assert_eq!(off.stats.in_place, 0, "{plan}");
        if !plan.fast {
            assert_eq!(on.stats.in_place, 0, "{plan}: the full path copies");
        }
        in_place += on.stats.in_place;
        plans += 1;
    }
    println!("{plans} plans: {in_place} casts went out in the frame they were written in");
    assert!(in_place > 0, "frames went out as written");
}
