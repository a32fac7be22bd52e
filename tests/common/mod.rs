//! Helpers shared by the tests that attack a running group.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use tutti::engine::DriverConfig;
use tutti_drivers::shm::ShmConfig;
use tutti_drivers::udp::UdpConfig;
use tutti_drivers::{To, Tx};

/// Sends `bytes` as one frame from the raw driver `c` to all its peers;
/// whether a buffer was free.
pub fn spray(c: &mut dyn tutti_drivers::Driver, bytes: &[u8]) -> bool {
    let Some(mut m) = c.pool().alloc() else {
        return false;
    };
    if m.reserve(bytes.len())
        .map(|b| b.copy_from_slice(bytes))
        .is_err()
    {
        return false;
    }
    let mut q = VecDeque::from([Tx {
        to: To::All,
        frame: m,
    }]);
    c.send(&mut q).unwrap();
    true
}

/// A scratch directory for shm endpoints, unique to this test process.
pub fn shm_dir(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tutti-{what}-{}", std::process::id()))
}

/// Configurations of shm endpoints `a`, `b`, `c` in `dir`.
pub fn shm_three(dir: &Path) -> [DriverConfig; 3] {
    ["a", "b", "c"].map(|n| {
        DriverConfig::Shm(ShmConfig {
            dir: dir.to_path_buf(),
            name: n.into(),
            ..ShmConfig::default()
        })
    })
}

/// Configurations of three UDP endpoints on free loopback ports, and
/// their addresses.
pub fn udp_three() -> ([DriverConfig; 3], [std::net::SocketAddr; 3]) {
    let addrs = [(); 3].map(|_| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    });
    (addrs.map(|a| DriverConfig::Udp(UdpConfig::new(a))), addrs)
}

/// Drains group `g`'s events at `core`: every cast must be the next
/// honest message (a 4-byte counter: nothing forged, lost or reordered),
/// and the view must not change.
pub fn take_honest(core: &mut tutti::engine::Core, g: tutti::engine::GroupIx, next: &mut u32) {
    while let Some(ev) = core.next_event(g) {
        match ev {
            tutti::engine::Event::Cast { msg, .. } => {
                let bytes = msg.to_vec();
                assert_eq!(bytes.len(), 4, "nothing forged is delivered");
                let i = u32::from_be_bytes(bytes.try_into().unwrap());
                assert_eq!(i, *next, "honest stream in order, nothing lost or invented");
                *next += 1;
            }
            tutti::engine::Event::View(v) => panic!("the attack changed the view: {v:?}"),
            _ => {}
        }
    }
}

/// While `a` multicasts `total` counters to `b` (group `ga` / `gb`),
/// `attack` sprays frames from the raw driver `c` once per round and says
/// how many it got out. Every honest message must reach `b` once, in
/// order, with no view change, within 30 s. Returns the frames sprayed.
pub fn under_attack(
    (a, ga): (&mut tutti::engine::Core, tutti::engine::GroupIx),
    (b, gb): (&mut tutti::engine::Core, tutti::engine::GroupIx),
    c: &mut dyn tutti_drivers::Driver,
    total: u32,
    mut attack: impl FnMut(&mut dyn tutti_drivers::Driver) -> u64,
) -> u64 {
    let (mut sent, mut next, mut sprayed) = (0u32, 0u32, 0u64);
    let t0 = std::time::Instant::now();
    while next < total && t0.elapsed() < std::time::Duration::from_secs(30) {
        if sent < total {
            let m = a.pool().alloc_copy(&sent.to_be_bytes()).unwrap();
            if a.cast(ga, m).is_ok() {
                sent += 1;
            }
        }
        sprayed += attack(c);
        let _ = c.recv(&mut Vec::new(), 64);
        let _ = c.maintain();
        a.poll().unwrap();
        b.poll().unwrap();
        take_honest(b, gb, &mut next);
        while a.next_event(ga).is_some() {}
    }
    assert_eq!(next, total, "every honest message arrived");
    sprayed
}

/// Two engines `a`, `b` and a raw driver `c` that `b` takes frames from
/// (they share a group of their own, so `b`'s driver knows `c`), with
/// their addresses.
pub struct Three {
    pub a: tutti::engine::Core,
    pub b: tutti::engine::Core,
    pub c: Box<dyn tutti_drivers::Driver>,
    pub na: String,
    pub nb: String,
}

/// Opens [`Three`] from three driver configurations.
pub fn open_three(cfgs: [DriverConfig; 3]) -> Three {
    let [ca, cb, cc] = cfgs;
    let a = tutti::engine::Core::new(ca.open().unwrap());
    let mut b = tutti::engine::Core::new(cb.open().unwrap());
    let mut c = cc.open().unwrap();
    let (na, nb, nc) = (
        a.driver().local_addr(),
        b.driver().local_addr(),
        c.local_addr(),
    );
    b.join(&tutti::engine::GroupSpec::new(
        "g2",
        "reliable",
        vec![nb.clone(), nc],
    ))
    .unwrap();
    c.add_peer(&nb).unwrap();
    Three { a, b, c, na, nb }
}
