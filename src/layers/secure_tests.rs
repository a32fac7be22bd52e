//! `sign`, `crypt` and the secure side of `gms`, driven through whole
//! `vsync-secure` stacks with hand-moved frames: replays, forgeries,
//! frames under another key, unsigned and unauthorized control frames.

use std::sync::Arc;

use tutti_drivers::{Pool, PoolConfig};

use crate::event::{Addr, Dest, JoinReq, PubKey, Rank, Time, Up, View, ViewId};
use crate::layer::DropReason;
use crate::secure::{Identity, Secure, CRYPT_OVERHEAD};
use crate::stack::{build, GroupStack, StackConfig};
use crate::wire::com::{ComRepr, LEN};

const SPEC: &str = "vsync-secure";

fn pool() -> Pool {
    Pool::new(PoolConfig {
        slots: 1024,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    })
    .unwrap()
}

fn id(i: usize) -> Identity {
    crate::fuzz::identity(i)
}

fn secure(i: usize, authorized: &[PubKey]) -> Arc<Secure> {
    Arc::new(Secure::with_seed(id(i), authorized, [i as u8; 32]).unwrap())
}

/// A static view of `n` members, all authorized, with a pre-shared key.
struct Pair {
    s: Vec<Box<dyn GroupStack>>,
    rx: Pool,
    tx: Pool,
    keys: Vec<PubKey>,
}

impl Pair {
    fn new(n: usize, key: [u8; 32]) -> Pair {
        Pair::with(n, Some(key))
    }

    /// `key` `None`: the same group over plain `vsync`.
    fn with(n: usize, key: Option<[u8; 32]>) -> Pair {
        let keys = crate::fuzz::keys_of(n);
        let s = (0..n).map(|i| Pair::member(i, n, key)).collect();
        let mut p = Pair {
            s,
            rx: pool(),
            tx: pool(),
            keys,
        };
        p.settle();
        p
    }

    /// Moves every frame between members until quiet (the joiners' state
    /// transfer, acknowledgements), then drops what the members said.
    fn settle(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            for i in 0..self.s.len() {
                // Events first: the stack answers state requests as they
                // leave it.
                while self.s[i].poll_event().is_some() {}
                for (d, f) in self.out(i) {
                    moved = true;
                    for j in 0..self.s.len() {
                        let to_j = match &d {
                            Dest::All => j != i,
                            Dest::Rank(r) => *r as usize == j,
                            Dest::Addr(a) => **a == *format!("m{j}"),
                        };
                        if to_j {
                            self.give(j, &f);
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        for i in 0..self.s.len() {
            while self.s[i].poll_event().is_some() {}
            assert!(
                self.s[i].ready(),
                "member {i} has its view: {}\n{:?}",
                self.s[i].dump(),
                self.s[i].drops().nonzero().collect::<Vec<_>>()
            );
        }
    }

    fn member(i: usize, n: usize, key: Option<[u8; 32]>) -> Box<dyn GroupStack> {
        let spec = if key.is_some() { SPEC } else { "vsync" };
        let mut st = crate::fuzz::static_member(spec, n, i as Rank, key, pool()).unwrap();
        while st.poll_event().is_some() {}
        st
    }

    fn out(&mut self, i: usize) -> Vec<(Dest, Vec<u8>)> {
        std::iter::from_fn(|| self.s[i].poll_transmit())
            .map(|(d, f)| (d, f.to_vec()))
            .collect()
    }

    fn give(&mut self, to: usize, frame: &[u8]) {
        let m = self.rx.alloc_frame(frame).unwrap();
        self.s[to].receive(Time::ZERO, m);
    }

    fn casts(&mut self, i: usize) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(ev) = self.s[i].poll_event() {
            if let Up::Cast { msg, .. } = ev {
                v.push(msg.to_vec());
            }
        }
        v
    }

    fn drops(&self, i: usize, r: DropReason) -> u64 {
        self.s[i].drops().get(r)
    }

    /// Casts `payload` from member 0 and returns its one frame.
    fn cast_frame(&mut self, payload: &[u8]) -> Vec<u8> {
        let m = self.tx.alloc_copy(payload).unwrap();
        self.s[0].cast(Time::ZERO, m).unwrap();
        let frames: Vec<Vec<u8>> = self
            .out(0)
            .into_iter()
            .filter(|(d, _)| *d == Dest::All)
            .map(|(_, f)| f)
            .collect();
        assert_eq!(frames.len(), 1);
        frames.into_iter().next().unwrap()
    }
}

#[test]
fn casts_are_encrypted_and_delivered_once() {
    let mut p = Pair::new(2, [7; 32]);
    let payload = b"attack at dawn, bring snacks".to_vec();
    let f = p.cast_frame(&payload);
    assert!(
        !f.windows(payload.len()).any(|w| w == payload),
        "the payload is not on the wire in the clear"
    );
    p.give(1, &f);
    assert_eq!(p.casts(1), vec![payload.clone()]);
    // The same frame again: a replay, refused before anything reads it.
    p.give(1, &f);
    assert!(p.casts(1).is_empty());
    assert_eq!(p.drops(1, DropReason::Replayed), 1);
    // What encryption adds to a frame: the counter and the tag (a secure
    // stack has no compact format: `com`, then `nak` CAST and `frag`
    // WHOLE in front of the payload).
    assert_eq!(f.len(), LEN + 9 + 1 + payload.len() + CRYPT_OVERHEAD);
}

#[test]
fn forged_and_moved_frames_are_refused() {
    let mut p = Pair::new(3, [7; 32]);
    let f = p.cast_frame(b"one");
    // A flipped bit anywhere after the frame header.
    for i in [LEN, LEN + 8, f.len() - 1, f.len() / 2 + LEN / 2] {
        let mut g = f.clone();
        g[i] ^= 0x40;
        p.give(1, &g);
    }
    // The same bytes claiming another sender (rank 2): the associated
    // data no longer matches.
    let mut g = f.clone();
    let mut repr = ComRepr::parse(&g).unwrap();
    repr.src = 2;
    repr.emit(&mut g[..LEN]);
    p.give(1, &g);
    // Truncated below counter and tag.
    p.give(1, &f[..LEN + 10]);
    assert!(p.casts(1).is_empty(), "nothing forged is delivered");
    assert_eq!(p.drops(1, DropReason::Forged), 5);
    assert_eq!(p.drops(1, DropReason::Truncated), 1);
    // The honest frame still goes through afterwards.
    p.give(1, &f);
    assert_eq!(p.casts(1), vec![b"one".to_vec()]);
}

#[test]
fn frames_under_another_key_are_refused() {
    let mut honest = Pair::new(2, [7; 32]);
    let mut other = Pair::new(2, [8; 32]);
    let f = other.cast_frame(b"from outside");
    honest.give(1, &f);
    assert!(honest.casts(1).is_empty());
    assert_eq!(honest.drops(1, DropReason::Forged), 1);
}

#[test]
fn a_view_without_a_key_carries_nothing() {
    let keys: Vec<PubKey> = (0..2).map(|i| id(i).public()).collect();
    let cfg = StackConfig {
        secure: Some(secure(0, &keys)),
        ..StackConfig::default()
    };
    let mut st = build(SPEC, &cfg, pool(), false).unwrap();
    let mut v = View::new(ViewId { ltime: 3, coord: 0 }, vec![0, 1], 0)
        .unwrap()
        .with_addrs(vec![Addr::from("m0"), Addr::from("m1")])
        .unwrap();
    v.keys = keys;
    st.install_view(Time::ZERO, v);
    while st.poll_event().is_some() {}
    let m = pool().alloc_copy(b"x").unwrap();
    st.cast(Time::ZERO, m).unwrap();
    assert!(
        std::iter::from_fn(|| st.poll_transmit()).all(|(d, _)| matches!(d, Dest::Addr(_))),
        "no in-view frame leaves"
    );
    assert!(st.drops().get(DropReason::NoKey) > 0);
}

#[test]
fn secure_stacks_need_an_identity() {
    let e = build(SPEC, &StackConfig::default(), pool(), true)
        .err()
        .unwrap();
    assert!(e.0.contains("identity"), "{e}");
    let cfg = StackConfig {
        secure: Some(secure(0, &[id(0).public()])),
        ..StackConfig::default()
    };
    let e = build("com:crypt:nak:stable:suspect:gms", &cfg, pool(), false)
        .err()
        .unwrap();
    assert!(e.0.contains("authenticated-control"), "{e}");
    // A stack that is not secure ignores the identity.
    assert!(build("vsync", &cfg, pool(), true).is_ok());
}

#[test]
fn control_frames_must_be_signed_by_authorized_keys() {
    let mut p = Pair::new(2, [7; 32]);
    let grp = StackConfig::default().group;
    let stack = crate::stack::Spec::parse(SPEC).unwrap().id();
    let mut hdr = vec![0u8; LEN];
    ComRepr::control(grp, stack).emit(&mut hdr);
    // Too short for a signature; then a well-formed trailer with a bad
    // signature by a member's key.
    let mut short = hdr.clone();
    short.extend_from_slice(&[1, 2, 3]);
    p.give(0, &short);
    let mut forged = hdr.clone();
    forged.extend_from_slice(&p.keys[1]);
    forged.extend_from_slice(&[0u8; 64]);
    forged.extend_from_slice(b"payload");
    p.give(0, &forged);
    assert_eq!(p.drops(0, DropReason::Truncated), 1);
    assert_eq!(p.drops(0, DropReason::BadSignature), 1);

    // A process with a key that is not authorized asks to join: both
    // sides report the refusal, and the stranger gives up.
    let cfg = StackConfig {
        secure: Some(secure(9, &p.keys)),
        ..StackConfig::default()
    };
    let mut stranger = build(SPEC, &cfg, pool(), true).unwrap();
    stranger.join(
        Time::ZERO,
        JoinReq {
            me: 99,
            addr: Addr::from("stranger"),
            contacts: vec![Addr::from("m0")],
        },
    );
    let joins: Vec<Vec<u8>> = std::iter::from_fn(|| stranger.poll_transmit())
        .map(|(_, f)| f.to_vec())
        .collect();
    assert!(!joins.is_empty());
    for j in &joins {
        p.give(0, j);
    }
    let refused: Vec<String> = std::iter::from_fn(|| p.s[0].poll_event())
        .filter_map(|e| match e {
            Up::Refused(why) => Some(why.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("not authorized"), "{refused:?}");
    let replies: Vec<Vec<u8>> = p
        .out(0)
        .into_iter()
        .filter(|(d, _)| *d == Dest::Addr(Addr::from("stranger")))
        .map(|(_, f)| f)
        .collect();
    assert!(!replies.is_empty(), "the refusal goes back");
    for r in &replies {
        let m = p.rx.alloc_frame(r).unwrap();
        stranger.receive(Time::ZERO, m);
    }
    let evs: Vec<Up> = std::iter::from_fn(|| stranger.poll_event()).collect();
    assert!(
        evs.iter()
            .any(|e| matches!(e, Up::Refused(w) if w.contains("not authorized"))),
        "{evs:?}"
    );
    assert!(evs.iter().any(|e| matches!(e, Up::Exit)), "{evs:?}");
}
