//! Bad input on a live group: while `a` multicasts to `b`, a third
//! endpoint `c` that `b` knows (they share another group) sprays foreign,
//! truncated and corrupt frames at `b`, over shm and over UDP, and a
//! stranger fires datagrams at `b`'s socket. Nothing crashes, every
//! garbage frame is dropped and counted by reason, and every honest
//! message arrives once, in order. The same for membership control frames
//! sprayed at a `vsync` group.

mod common;

use std::time::{Duration, Instant};

use tutti::engine::{fnv64, Core, DriverConfig, Event, GroupSpec};
use tutti::layer::DropReason;
use tutti::sim::rng::Rng;
use tutti::wire::com::{ComRepr, DST_ALL, LEN};
use tutti::Spec;
use tutti_drivers::shm::ShmConfig;

fn garbage(rng: &mut Rng, group: u32, stack: u16, view: u32) -> Vec<u8> {
    let mut hdr = vec![0u8; LEN];
    let repr = ComRepr {
        ctl: false,
        p2p: false,
        group,
        stack,
        src: 0, // claims to be `a`
        dst: DST_ALL,
        view,
    };
    repr.emit(&mut hdr);
    let mut tail = vec![0u8; rng.below(40) as usize];
    rng.fill(&mut tail);
    match rng.below(7) {
        // Random bytes.
        0 => tail,
        // Truncated frame header.
        1 => hdr[..rng.below(LEN as u64) as usize].to_vec(),
        // Unknown nak type.
        2 => {
            hdr.push(8 + (rng.below(248) as u8));
            hdr.extend_from_slice(&tail);
            hdr
        }
        // Truncated nak header.
        3 => {
            hdr.extend_from_slice(&[0, 1, 2]);
            hdr
        }
        // Reserved bits set.
        4 => {
            hdr[3] |= 0x80;
            hdr
        }
        // Another wire version.
        5 => {
            hdr[2] = 9;
            hdr
        }
        // A group nobody here joined.
        _ => {
            hdr[4..8].copy_from_slice(&(group ^ 0x5a5a).to_be_bytes());
            hdr.extend_from_slice(&tail);
            hdr
        }
    }
}

fn run(cfgs: [DriverConfig; 3], stranger: Option<std::net::SocketAddr>) {
    let common::Three {
        mut a,
        mut b,
        mut c,
        na,
        nb,
    } = common::open_three(cfgs);
    let g1 = vec![na.clone(), nb.clone()];
    let ga = a
        .join(&GroupSpec::new("g1", "reliable", g1.clone()))
        .unwrap();
    let gb = b.join(&GroupSpec::new("g1", "reliable", g1)).unwrap();
    let group = fnv64("g1") as u32;
    let view = tutti::ViewId {
        ltime: 1,
        coord: fnv64(&na),
    }
    .tag();
    let stack = Spec::parse("reliable").unwrap().id();
    let mut rng = Rng::new(7);
    // The static view, installed at the join.
    while a.next_event(ga).is_some() {}
    while b.next_event(gb).is_some() {}
    let sprayed = common::under_attack((&mut a, ga), (&mut b, gb), c.as_mut(), 3000, |c| {
        // Garbage from a known peer...
        let bytes = garbage(&mut rng, group, stack, view);
        // ...and from a stranger.
        if let Some(to) = stranger {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let _ = s.send_to(&bytes, to);
        }
        u64::from(common::spray(c, &bytes))
    });
    let (drops, _) = b.group_stats(gb).unwrap();
    let engine = b.drops();
    println!(
        "sprayed {sprayed}: stack drops {drops}; engine: unknown_group={} bad_frame={}; driver rx_bad={}",
        engine.unknown_group,
        engine.bad_frame,
        b.driver_stats().rx_bad
    );
    for r in [
        DropReason::UnknownTag,
        DropReason::Truncated,
        DropReason::Reserved,
        DropReason::BadVersion,
    ] {
        assert!(drops.get(r) > 0, "{r:?} counted: {drops}");
    }
    assert!(engine.unknown_group > 0);
    if stranger.is_some() {
        assert!(b.driver_stats().rx_bad > 0, "strangers' datagrams counted");
    }
}

#[test]
fn garbage_over_shm() {
    let dir = common::shm_dir("hostile");
    run(common::shm_three(&dir), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_over_udp() {
    let (cfgs, addrs) = common::udp_three();
    run(cfgs, Some(addrs[1]));
}

/// Membership control frames from a process outside the group (garbage
/// after a valid control header, truncated and mutated rkyv messages, views
/// for other views, beacons naming made-up coordinators) sprayed at a
/// `vsync` group over shm: the group keeps its view, the honest stream
/// arrives complete and in order, the refusals are counted.
#[test]
fn control_garbage_at_a_vsync_group() {
    use tutti::layers::gms::{encode, Outside, ViewMsg};
    let dir = std::env::temp_dir().join(format!("tutti-hostile-ctl-{}", std::process::id()));
    let cfg = |n: &str| {
        DriverConfig::Shm(ShmConfig {
            dir: dir.clone(),
            name: n.into(),
            ..ShmConfig::default()
        })
    };
    let mut a = Core::new(cfg("a").open().unwrap());
    let mut b = Core::new(cfg("b").open().unwrap());
    let mut c = cfg("c").open().unwrap();
    let members = vec!["a".to_string(), "b".to_string()];
    let mut spec = GroupSpec::new("v1", "vsync", members);
    spec.config.suspect = tutti::layers::suspect::SuspectConfig::SHM;
    spec.config.gms.join_timeout_ns = 50_000_000;
    spec.config.gms.tick_ns = 10_000_000;
    let ga = a.join(&spec).unwrap();
    let gb = b.join(&spec).unwrap();
    c.add_peer("b").unwrap();
    let group = fnv64("v1") as u32;
    let stack = Spec::parse("vsync").unwrap().id();
    // Wait for one view of both.
    let t0 = Instant::now();
    let (mut va, mut vb) = (0, 0);
    while va != 2 || vb != 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no view of two");
        a.poll().unwrap();
        b.poll().unwrap();
        while let Some(ev) = a.next_event(ga) {
            if let Event::View(v) = ev {
                va = v.size();
            }
        }
        while let Some(ev) = b.next_event(gb) {
            if let Event::View(v) = ev {
                vb = v.size();
            }
        }
    }
    let valid: Vec<Vec<u8>> = vec![
        encode(&Outside::View(ViewMsg {
            from: Vec::new(),
            ltime: 99,
            vcoord: 7,
            members: vec![7, 8],
            addrs: vec!["x".into(), "y".into()],
            merged: Vec::new(),
            reply_to: "x".into(),
            primary: true,
            last_primary_id: (0, 0),
            last_primary: Vec::new(),
            keys: Vec::new(),
            sealed: Vec::new(),
            sealer: None,
        })),
        encode(&Outside::Redirect { coord: "z".into() }),
        encode(&Outside::MergeGrant {
            ltime: 1,
            vcoord: 2,
        }),
    ];
    let mut rng = Rng::new(11);
    let sprayed = common::under_attack((&mut a, ga), (&mut b, gb), c.as_mut(), 2000, |c| {
        let mut frame = vec![0u8; LEN];
        ComRepr::control(group, stack).emit(&mut frame);
        let mut body = valid[rng.below(valid.len() as u64) as usize].clone();
        match rng.below(3) {
            // Random bytes.
            0 => {
                body = vec![0u8; rng.below(80) as usize];
                rng.fill(&mut body);
            }
            // Truncated.
            1 => body.truncate(rng.below(body.len() as u64) as usize),
            // Mutated in place.
            _ => {
                let i = rng.below(body.len() as u64) as usize;
                body[i] ^= 1 + rng.below(255) as u8;
            }
        }
        frame.extend_from_slice(&body);
        u64::from(common::spray(c, &frame))
    });
    let (drops, _) = b.group_stats(gb).unwrap();
    println!("sprayed {sprayed} control frames: stack drops {drops}");
    assert!(
        drops.get(DropReason::BadField) > 0,
        "refusals counted: {drops}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
