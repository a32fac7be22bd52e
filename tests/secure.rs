//! Secure groups on real transports.
//!
//! - A `vsync-secure` group of two, each member with its own key, while a
//!   third endpoint that the receiver knows sprays forged data frames
//!   (right group, stack and view, wrong key), control frames with bad
//!   signatures, and well-signed membership messages from a key that is
//!   not authorized, over shm and over UDP: nothing forged is delivered,
//!   the honest stream arrives complete and in order, the view stays, and
//!   the drops are counted by reason.
//! - The key changes with every view: a member that leaves holds none of
//!   the keys after it.
//! - `tutti node` processes: an unauthorized process cannot join, and
//!   both sides say so.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tutti::engine::{fnv64, Core, DriverConfig, Event, GroupIx, GroupSpec};
use tutti::layer::DropReason;
use tutti::layers::gms::{encode, Outside, ViewMsg};
use tutti::secure::{hex, Identity, Secure, SIGN_DOMAIN};
use tutti::sim::rng::Rng;
use tutti::wire::com::{ComRepr, DST_ALL, LEN};
use tutti::{Spec, View};
use tutti_drivers::shm::ShmConfig;

/// Tests here start processes or spin endpoints: one at a time on 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const SPEC: &str = "vsync-secure";

fn identity(i: u8) -> Identity {
    Identity::from_seed([i; 32])
}

fn secure(i: u8, members: &[u8]) -> Arc<Secure> {
    let keys: Vec<[u8; 32]> = members.iter().map(|m| identity(*m).public()).collect();
    Arc::new(Secure::new(identity(i), &keys).unwrap())
}

fn spec(names: &[String], me: u8, members: &[u8]) -> GroupSpec {
    let mut s = GroupSpec::new("s1", SPEC, names.to_vec());
    s.config.suspect = tutti::layers::suspect::SuspectConfig::SHM;
    s.config.gms.join_timeout_ns = 50_000_000;
    s.config.gms.tick_ns = 10_000_000;
    s.config.secure = Some(secure(me, members));
    s
}

/// Polls until every core's view of `g` has `n` members; returns the
/// last views.
fn wait_views(cores: &mut [(&mut Core, GroupIx)], n: usize) -> Vec<Arc<View>> {
    let t0 = Instant::now();
    let mut views: Vec<Option<Arc<View>>> = vec![None; cores.len()];
    loop {
        for (k, (c, g)) in cores.iter_mut().enumerate() {
            c.poll().unwrap();
            while let Some(ev) = c.next_event(*g) {
                if let Event::View(v) = ev {
                    views[k] = Some(v);
                }
            }
        }
        if views
            .iter()
            .all(|v| v.as_ref().is_some_and(|v| v.size() == n))
        {
            return views.into_iter().flatten().collect();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no view of {n}");
    }
}

/// A frame the attacker makes: forged data in the group's current view,
/// control frames with bad signatures, or membership messages signed by
/// its own key, which the group does not authorize.
fn attack(
    rng: &mut Rng,
    me: &Identity,
    member_key: &[u8; 32],
    (view, src): (u32, u16),
    valid: &[Vec<u8>],
) -> Vec<u8> {
    let group = fnv64("s1") as u32;
    let stack = Spec::parse(SPEC).unwrap().id();
    let mut f = vec![0u8; LEN];
    match rng.below(4) {
        // Data from the honest sender, in the current view: counter,
        // bytes, tag.
        0 | 1 => {
            ComRepr {
                ctl: false,
                p2p: false,
                group,
                stack,
                src,
                dst: DST_ALL,
                view,
            }
            .emit(&mut f);
            let mut body = vec![0u8; 24 + rng.below(100) as usize];
            rng.fill(&mut body);
            // Low counters, so that the replay window does not catch them
            // first.
            body[..8].copy_from_slice(&rng.below(50).to_be_bytes());
            f.extend_from_slice(&body);
        }
        // A member's key, a signature that is not its.
        2 => {
            ComRepr::control(group, stack).emit(&mut f);
            f.extend_from_slice(member_key);
            let mut sig = [0u8; 64];
            rng.fill(&mut sig);
            f.extend_from_slice(&sig);
            f.extend_from_slice(&valid[rng.below(valid.len() as u64) as usize]);
        }
        // A well-signed message from a key nobody authorized.
        _ => {
            ComRepr::control(group, stack).emit(&mut f);
            let body = &valid[rng.below(valid.len() as u64) as usize];
            let sig = me.sign(&[
                SIGN_DOMAIN,
                &group.to_be_bytes(),
                &stack.to_be_bytes(),
                body,
            ]);
            f.extend_from_slice(&me.public());
            f.extend_from_slice(&sig);
            f.extend_from_slice(body);
        }
    }
    f
}

fn spray_at_secure_group(cfgs: [DriverConfig; 3]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let common::Three {
        mut a,
        mut b,
        mut c,
        na,
        nb,
    } = common::open_three(cfgs);
    let names = vec![na, nb.clone()];
    let ga = a.join(&spec(&names, 1, &[1, 2])).unwrap();
    let gb = b.join(&spec(&names, 2, &[1, 2])).unwrap();
    let views = wait_views(&mut [(&mut a, ga), (&mut b, gb)], 2);
    let view = views[1].clone();
    assert!(view.key.is_some(), "a secure view carries a key");
    assert_eq!(views[0].key, view.key, "one key for the view");
    let tag = view.id.tag();
    // `a`'s rank, as `b` sees it.
    let sender = 1 - view.rank;
    let attacker = identity(66);
    let valid: Vec<Vec<u8>> = vec![
        encode(&Outside::View(ViewMsg {
            from: Vec::new(),
            ltime: view.id.ltime + 1,
            vcoord: 66,
            members: vec![66, view.members[1]],
            addrs: vec!["evil".into(), nb.clone()],
            merged: Vec::new(),
            reply_to: "evil".into(),
            primary: true,
            last_primary_id: (0, 0),
            last_primary: Vec::new(),
            keys: vec![attacker.public(), identity(2).public()],
            sealed: vec![vec![0; 60], vec![0; 60]],
            sealer: Some(attacker.public()),
        })),
        encode(&Outside::MergeRequest {
            ltime: 1,
            vcoord: 66,
            reply_to: "evil".into(),
        }),
        encode(&Outside::Beacon {
            ltime: 1,
            vcoord: 66,
            coord: "evil".into(),
        }),
    ];
    let mut rng = Rng::new(5);
    let sprayed = common::under_attack((&mut a, ga), (&mut b, gb), c.as_mut(), 2000, |c| {
        let f = attack(
            &mut rng,
            &attacker,
            &identity(1).public(),
            (tag, sender),
            &valid,
        );
        u64::from(common::spray(c, &f))
    });
    let (drops, _) = b.group_stats(gb).unwrap();
    println!("sprayed {sprayed} frames: stack drops {drops}");
    for r in [
        DropReason::Forged,
        DropReason::BadSignature,
        DropReason::Unauthorized,
    ] {
        assert!(drops.get(r) > 0, "{r:?} counted: {drops}");
    }
}

#[test]
fn forgeries_over_shm() {
    let dir = common::shm_dir("secure");
    spray_at_secure_group(common::shm_three(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forgeries_over_udp() {
    spray_at_secure_group(common::udp_three().0);
}

/// Three members, then one leaves: every view has its own key, and the
/// one that left never holds the key of the view after it.
#[test]
fn every_view_has_a_fresh_key() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("tutti-rekey-{}", std::process::id()));
    let cfg = |n: &str| {
        DriverConfig::Shm(ShmConfig {
            dir: dir.clone(),
            name: n.into(),
            ..ShmConfig::default()
        })
    };
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut cores: Vec<Core> = names
        .iter()
        .map(|n| Core::new(cfg(n).open().unwrap()))
        .collect();
    let gs: Vec<GroupIx> = cores
        .iter_mut()
        .enumerate()
        .map(|(i, c)| c.join(&spec(&names, i as u8 + 1, &[1, 2, 3])).unwrap())
        .collect();
    let mut keys_seen = Vec::new();
    let (c0, rest) = cores.split_at_mut(1);
    let (c1, c2) = rest.split_at_mut(1);
    let v3 = wait_views(
        &mut [
            (&mut c0[0], gs[0]),
            (&mut c1[0], gs[1]),
            (&mut c2[0], gs[2]),
        ],
        3,
    );
    let k3 = v3[0].key.clone().unwrap();
    assert!(v3.iter().all(|v| v.key.as_ref() == Some(&k3)));
    keys_seen.push(k3.clone());
    c2[0].submit(gs[2], tutti::engine::Request::Down(tutti::Down::Leave));
    let v2 = wait_views(&mut [(&mut c0[0], gs[0]), (&mut c1[0], gs[1])], 2);
    let k2 = v2[0].key.clone().unwrap();
    assert_eq!(v2[1].key.as_ref(), Some(&k2));
    assert_ne!(k2, k3, "the view after a leave has a new key");
    // What the leaver saw: never the new key.
    let t0 = Instant::now();
    let mut leaver_keys = vec![k3.clone()];
    while t0.elapsed() < Duration::from_millis(300) {
        c2[0].poll().unwrap();
        c0[0].poll().unwrap();
        c1[0].poll().unwrap();
        while let Some(ev) = c2[0].next_event(gs[2]) {
            if let Event::View(v) = ev {
                leaver_keys.extend(v.key.clone());
            }
        }
    }
    assert!(!leaver_keys.contains(&k2), "the leaver holds the new key");
    let _ = std::fs::remove_dir_all(&dir);
    drop(keys_seen);
}

/// `tutti node` processes: two members with authorized keys, and one
/// whose key is not in the list. It is refused and exits; both sides log
/// the refusal; no view ever names it.
#[test]
fn unauthorized_process_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let base = std::env::temp_dir().join(format!("tutti-refuse-{}", std::process::id()));
    let shm = base.join("shm");
    std::fs::create_dir_all(&shm).unwrap();
    let mut pubs = Vec::new();
    for (i, n) in ["a", "b", "x"].iter().enumerate() {
        let id = identity(10 + i as u8);
        std::fs::write(base.join(format!("{n}.key")), id.secret_hex()).unwrap();
        pubs.push(hex(&id.public()));
    }
    std::fs::write(
        base.join("authorized"),
        format!("{}\n{}\n", pubs[0], pubs[1]),
    )
    .unwrap();
    let node = |name: &str, contacts: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tutti"));
        cmd.args(["node", "--name", name, "--stack", SPEC, "--quiet"])
            .arg("--dir")
            .arg(&shm)
            .arg("--key")
            .arg(base.join(format!("{name}.key")))
            .arg("--authorized")
            .arg(base.join("authorized"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !contacts.is_empty() {
            cmd.args(["--contacts", contacts]);
        }
        cmd.spawn().unwrap()
    };
    let mut a = node("a", "");
    std::thread::sleep(Duration::from_millis(400));
    let mut b = node("b", "a");
    std::thread::sleep(Duration::from_millis(400));
    let mut x = node("x", "a,b");
    // Its input stays open: it must exit because it was refused, not
    // because its input ended.
    let x_in = x.stdin.take();
    let t0 = Instant::now();
    while x.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = x.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(x_in);
    let xo = x.wait_with_output().unwrap();
    let x_out = String::from_utf8_lossy(&xo.stdout).to_string();
    let x_err = String::from_utf8_lossy(&xo.stderr).to_string();
    std::thread::sleep(Duration::from_millis(200));
    // End the members' input: they leave and exit.
    drop(a.stdin.take());
    drop(b.stdin.take());
    let mut lines = Vec::new();
    let mut errs = String::new();
    for p in [&mut a, &mut b] {
        let out = BufReader::new(p.stdout.take().unwrap());
        lines.extend(out.lines().map_while(Result::ok));
        let mut e = String::new();
        use std::io::Read;
        p.stderr.take().unwrap().read_to_string(&mut e).unwrap();
        errs.push_str(&e);
        p.wait().unwrap();
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        x_out.contains("\"event\":\"refused\"") && x_out.contains("not authorized"),
        "the intruder says it was refused:\n{x_out}"
    );
    assert!(x_out.contains("\"event\":\"exit\""), "{x_out}");
    assert!(!x_out.contains("\"event\":\"view\""), "{x_out}");
    assert!(x_err.contains("refused"), "logged on stderr: {x_err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"event\":\"refused\"") && l.contains("not authorized")),
        "a member says it refused:\n{}",
        lines.join("\n")
    );
    assert!(errs.contains("refused join"), "logged on stderr: {errs}");
    let x_id = x_out
        .lines()
        .find(|l| l.contains("\"event\":\"start\""))
        .and_then(|l| l.split("\"id\":").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap()
        .to_string();
    for l in lines.iter().filter(|l| l.contains("\"event\":\"view\"")) {
        assert!(!l.contains(&x_id), "a view names the intruder: {l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"event\":\"view\"") && l.matches(',').count() > 0),
        "the members formed views"
    );
}
