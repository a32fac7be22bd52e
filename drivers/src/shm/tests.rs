use super::*;
use crate::conformance::{self, Factory};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tutti-shm-{tag}-{}-{}",
        std::process::id(),
        fresh_id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small(dir: &std::path::Path, name: &str) -> ShmConfig {
    let slot = PoolConfig {
        slots: 1024,
        slot_size: 1024,
        headroom: 64,
        tailroom: 16,
    };
    ShmConfig {
        dir: dir.to_path_buf(),
        name: name.into(),
        data: slot,
        ctl: PoolConfig { slots: 64, ..slot },
        rx_ring: 256,
    }
}

struct Shm;

impl Factory for Shm {
    type D = ShmDriver;
    const LOSSLESS: bool = true;
    fn make(&self, n: usize) -> Vec<ShmDriver> {
        let dir = tmpdir("conf");
        let mut ds: Vec<ShmDriver> = (0..n)
            .map(|i| ShmDriver::open(small(&dir, &format!("m{i}"))).unwrap())
            .collect();
        for (i, d) in ds.iter_mut().enumerate() {
            for j in (0..n).filter(|j| *j != i) {
                d.add_peer(&format!("m{j}")).unwrap();
            }
        }
        ds
    }
}

#[test]
fn conformance() {
    conformance::run_all(&Shm);
}

#[test]
fn names_are_checked_and_taken_names_refused() {
    let dir = tmpdir("names");
    assert!(ShmDriver::open(small(&dir, "../x")).is_err());
    assert!(ShmDriver::open(small(&dir, "")).is_err());
    let a = ShmDriver::open(small(&dir, "a")).unwrap();
    match ShmDriver::open(small(&dir, "a")) {
        Err(DriverError::NameInUse(_)) => {}
        other => panic!("expected NameInUse, got {:?}", other.map(|_| ())),
    }
    drop(a);
    assert!(
        !ctl::path_of(&dir, "a").exists(),
        "closing removes the file"
    );
    ShmDriver::open(small(&dir, "a")).unwrap();
}

#[test]
fn files_of_dead_processes_are_swept() {
    let dir = tmpdir("sweep");
    let d = ShmDriver::open(small(&dir, "ghost")).unwrap();
    // Make the file look like it belongs to a process that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    d.me.header().pid.store(dead, Ordering::Relaxed);
    std::mem::forget(d);
    let path = ctl::path_of(&dir, "ghost");
    assert!(path.exists());
    let _other = ShmDriver::open(small(&dir, "other")).unwrap();
    assert!(
        !path.exists(),
        "opening an endpoint swept the dead one's file"
    );
}

#[test]
fn bad_descriptors_are_counted_and_dropped() {
    let mut ds = Shm.make(2);
    let id0 = ds[0].id;
    // Slot out of range, window past the slot, unknown region, unknown sender.
    for rec in [
        [id0, 1 << 20, 16],
        [id0, 3, (1000u64 << 32) | 100],
        [id0, (7 << 32) | 3, 16],
        [12345, 3, 16],
    ] {
        assert!(ds[1].rx.push(rec));
    }
    let mut out = Vec::new();
    ds[1].recv(&mut out, 16).unwrap();
    assert!(out.is_empty());
    assert_eq!(ds[1].stats().rx_bad, 4);
    // A lying returner cannot free what it was not lent.
    let before = ds[0].pool().stats().in_use;
    let m = ds[0].pool().alloc().unwrap();
    assert!(ds[0].ret.push([ds[1].id, m.slot() as u64, 5]));
    ds[0].maintain().unwrap();
    assert_eq!(ds[0].pool().stats().in_use, before + 1);
}

#[test]
fn buffers_lent_to_a_dead_peer_come_back() {
    let mut ds = Shm.make(2);
    let base = ds[0].pool().stats().in_use;
    let mut q: VecDeque<Tx> = (0..10)
        .map(|_| Tx {
            to: To::Peer(0),
            frame: ds[0]
                .pool()
                .alloc_copy(b"held by a peer that dies")
                .unwrap(),
        })
        .collect();
    ds[0].send(&mut q).unwrap();
    assert_eq!(ds[0].pool().stats().in_use, base + 10);
    // The receiver "dies": its file claims a pid that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let b = ds.pop().unwrap();
    b.me.header().pid.store(dead, Ordering::Relaxed);
    std::mem::forget(b);
    std::thread::sleep(LIVENESS_EVERY * 2);
    ds[0].maintain().unwrap();
    assert_eq!(ds[0].stats().peers_dead, 1);
    assert_eq!(ds[0].pool().stats().in_use, base, "lent buffers taken back");
    // Sending to the dead peer is a counted drop, not an error.
    let mut q = VecDeque::from([Tx {
        to: To::All,
        frame: ds[0].pool().alloc_copy(b"x").unwrap(),
    }]);
    ds[0].send(&mut q).unwrap();
    assert!(ds[0].stats().tx_full >= 1);
}
