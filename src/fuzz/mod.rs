//! Fuzz target bodies: one function per decoder of untrusted bytes.
//!
//! The same bodies run three ways: as cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, libFuzzer on nightly), over the seed corpus
//! and seeded mutations of it in `tests/fuzz_corpus.rs` (stable, in CI),
//! and from proptests. Each must return on any input without panicking;
//! where a decoder has an encoder, what decodes must encode back to the
//! same value.

use std::sync::{Arc, OnceLock};

use tutti_drivers::shm::Desc;
use tutti_drivers::{Pool, PoolConfig, SlotSink};

use crate::event::{Addr, GroupKey, PubKey, Rank, Time, View, ViewId};
use crate::layers::gms::{decode_ctrl, decode_outside, decode_xfer, encode};
use crate::secure::{FrameAad, FrameKey, Identity, ReplayWindow, SealFor, Secure, CTR_LEN};
use crate::stack::{build, GroupStack, Spec, StackConfig};
use crate::wire::com::{ComRepr, DST_ALL, LEN};
use crate::wire::fast::{self, Compact, Entries};
use crate::wire::frag::FragHdr;
use crate::wire::nak::{parse_ranges, NakHdr};
use crate::wire::stable::parse_gossip;

mod corpus;
pub use corpus::seed_corpus;

/// A target body.
pub type Target = fn(&[u8]);

/// The targets, by name (`fuzz/fuzz_targets/<name>.rs`, corpus in
/// `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("com_header", com_header),
    ("layer_headers", layer_headers),
    ("control", control),
    ("shm_desc", shm_desc),
    ("stack_frames", stack_frames),
    ("secure_frames", secure_frames),
    ("secure_parts", secure_parts),
];

/// Members of the fuzzed views.
const N: usize = 3;
/// Stacks the frame targets run, picked by the first byte.
const STACKS: &[&str] = &["reliable", "fifo", "vsync", "vsync-total", "vsync-token"];
const SECURE_STACKS: &[&str] = &["vsync-secure", "vsync-total-secure"];

/// The `com` frame header: parse, and what parses emits back the same.
pub fn com_header(data: &[u8]) {
    if let Ok(r) = ComRepr::parse(data) {
        let mut b = [0u8; LEN];
        r.emit(&mut b);
        assert_eq!(ComRepr::parse(&b).ok(), Some(r), "com header round trip");
    }
}

/// `nak`, `frag` and `stable` headers (the first byte picks one).
pub fn layer_headers(data: &[u8]) {
    let Some((&sel, b)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        3 => {
            // The compact header and a packed frame's entries.
            if let Ok(c) = Compact::parse(b) {
                let mut out = [0u8; fast::LEN];
                c.emit(&mut out);
                assert_eq!(&out[..], &b[..fast::LEN], "compact header round trip");
                if c.packed {
                    let body = &b[fast::LEN..];
                    let mut end = 0;
                    for e in Entries::new(body) {
                        let (off, len) = e.expect("parse checked every entry");
                        assert!(off + len <= body.len());
                        end = off + len;
                    }
                    assert_eq!(end, body.len(), "entries fill a packed frame");
                }
            }
        }
        0 => {
            if let Ok((h, n)) = NakHdr::parse(b) {
                assert_eq!(n, h.len());
                let mut out = vec![0u8; n];
                h.emit(&mut out);
                assert_eq!(NakHdr::parse(&out).ok(), Some((h, n)), "nak round trip");
                if let NakHdr::Nak { n: k, .. } = h {
                    let _ = parse_ranges(&b[n..], k);
                }
            }
        }
        1 => {
            if let Ok((h, n)) = FragHdr::parse(b) {
                let mut out = vec![0u8; n];
                h.emit(&mut out);
                assert_eq!(FragHdr::parse(&out).ok(), Some((h, n)), "frag round trip");
            }
        }
        _ => {
            let n = (sel as usize / 3) % 8 + 1;
            let (mut rcv, mut st) = (vec![0u64; n], vec![0u64; n]);
            let _ = parse_gossip(b, &mut rcv, &mut st);
        }
    }
}

/// `gms` and `xfer` control messages (rkyv, validated): what decodes
/// encodes back to the same value.
pub fn control(data: &[u8]) {
    if let Ok(c) = decode_ctrl(data) {
        assert_eq!(decode_ctrl(&encode(&c)).ok(), Some(c));
    }
    if let Ok(o) = decode_outside(data) {
        assert_eq!(decode_outside(&encode(&o)).ok(), Some(o));
    }
    if let Ok(x) = decode_xfer(data) {
        assert_eq!(decode_xfer(&encode(&x)).ok(), Some(x));
    }
}

struct Nowhere;

impl SlotSink for Nowhere {
    fn give_back(&self, _slot: u32, _lent: u32) {}
}

const DESC_SLOTS: u32 = 64;
const DESC_SLOT: u32 = 1024;

fn foreign_pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("tutti-fuzz-desc-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .ok()?;
        f.set_len(DESC_SLOTS as u64 * DESC_SLOT as u64).ok()?;
        let _ = std::fs::remove_file(&path);
        let cfg = PoolConfig {
            slots: DESC_SLOTS,
            slot_size: DESC_SLOT,
            headroom: 0,
            tailroom: 0,
        };
        Pool::foreign(&f, 0, cfg, Box::new(Nowhere)).ok()
    })
    .as_ref()
}

/// shm receive descriptors (24 bytes each) as a dishonest sender could
/// write them: decoded and adopted from a foreign region, never outside
/// it.
pub fn shm_desc(data: &[u8]) {
    let Some(pool) = foreign_pool() else {
        return;
    };
    for c in data.chunks_exact(24) {
        let mut w = [0u64; 3];
        for (i, x) in w.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[8 * i..8 * i + 8]);
            *x = u64::from_le_bytes(b);
        }
        let d = Desc::from_record(w);
        assert_eq!(Desc::from_record(d.to_record()), d);
        if let Some(m) = pool.adopt(d.slot, d.off, d.len) {
            assert!(d.slot < DESC_SLOTS);
            assert!(d.off as u64 + d.len as u64 <= DESC_SLOT as u64);
            assert_eq!(m.len(), d.len as usize);
        }
    }
}

fn pool() -> Option<Pool> {
    Pool::new(PoolConfig {
        slots: 256,
        slot_size: 2048,
        headroom: 128,
        tailroom: 32,
    })
    .ok()
}

/// The long-term identity of member `i` of the fuzzed (and tested) views.
pub fn identity(i: usize) -> Identity {
    Identity::from_seed([i as u8 + 0x41; 32])
}

fn keys() -> &'static [PubKey] {
    static KEYS: OnceLock<Vec<PubKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..N).map(|i| identity(i).public()).collect())
}

/// The public keys of members `0..n`.
pub fn keys_of(n: usize) -> Vec<PubKey> {
    if n == N {
        return keys().to_vec();
    }
    (0..n).map(|i| identity(i).public()).collect()
}

const FUZZ_KEY: [u8; 32] = [0x33; 32];

/// Member `me` of a static view of `n` (ids `0..n`, addresses `m0`...,
/// view 3.0) over `spec`, its layers' buffers from `ctl`. With `key`, a
/// secure stack: member `i` holds [`identity`]`(i)`, all are authorized,
/// and the view carries `key` as its pre-shared group key. (The fuzz
/// targets, the secure layers' tests and `benches/secure.rs` use it.)
pub fn static_member(
    spec: &str,
    n: usize,
    me: Rank,
    key: Option<[u8; 32]>,
    ctl: Pool,
) -> Option<Box<dyn GroupStack>> {
    let mut cfg = StackConfig::default();
    let keys = key.map(|_| keys_of(n));
    if let Some(keys) = &keys {
        cfg.secure = Some(Arc::new(
            Secure::with_seed(identity(me as usize), keys, [me as u8; 32]).ok()?,
        ));
    }
    let mut st = build(spec, &cfg, ctl, me % 2 == 0).ok()?;
    let addrs = (0..n)
        .map(|k| Addr::from(format!("m{k}").as_str()))
        .collect();
    let mut v = View::new(view_id(), (0..n as u64).collect(), me)
        .ok()?
        .with_addrs(addrs)
        .ok()?;
    if let (Some(keys), Some(key)) = (keys, key) {
        v.keys = keys;
        v.key = Some(GroupKey::from_bytes(key));
    }
    st.install_view(Time::ZERO, v);
    Some(st)
}

/// Member `me` of a static view of [`N`] (with a pre-shared key for the
/// secure stacks).
fn member(spec: &str, me: Rank, secure: bool) -> Option<Box<dyn GroupStack>> {
    static_member(spec, N, me, secure.then_some(FUZZ_KEY), pool()?)
}

fn view_id() -> ViewId {
    ViewId { ltime: 3, coord: 0 }
}

/// Runs `frames` into a member and drains it, moving time on.
fn feed(st: &mut dyn GroupStack, rx: &Pool, frames: impl Iterator<Item = Vec<u8>>) {
    let mut now = Time::ZERO;
    for f in frames {
        if let Some(m) = rx.alloc_frame(&f) {
            st.receive(now, m);
        }
        while st.poll_event().is_some() {}
        while st.poll_transmit().is_some() {}
        now = now.plus_ns(3_000_000);
        st.handle_timeout(now);
    }
}

/// Splits `data` into frames: a length byte, then that many bytes.
fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&n, r) = rest.split_first()?;
        let n = (n as usize).min(r.len());
        let (f, r) = r.split_at(n);
        rest = r;
        Some(f)
    })
}

/// The com header of a frame from `src` (to everyone, or to rank 1).
fn header(spec: &str, src: Rank, p2p: bool) -> Vec<u8> {
    let mut h = vec![0u8; LEN];
    ComRepr {
        ctl: false,
        p2p,
        group: StackConfig::default().group,
        stack: Spec::parse(spec).map(|s| s.id()).unwrap_or(0),
        src,
        dst: if p2p { 1 } else { DST_ALL },
        view: view_id().tag(),
    }
    .emit(&mut h);
    h
}

/// A compact header of a cast (or a packed frame) from `src`, numbered
/// `seq`, in the fuzzed view.
fn compact_header(spec: &str, src: Rank, seq: u64, packed: bool) -> Vec<u8> {
    let stack = Spec::parse(spec).map(|s| s.id()).unwrap_or(0);
    let c = Compact {
        cookie: fast::cookie(StackConfig::default().group, stack, view_id().tag(), src),
        seq: seq % fast::SEQ_LIMIT,
        packed,
    };
    let mut h = vec![0u8; fast::LEN];
    c.emit(&mut h);
    h
}

/// Whole frames into whole stacks: the first byte picks the stack and
/// whether frames get a valid header in front (so the fuzzer reaches the
/// layers at once: a `com` header, or with bit 0x20 a compact one, packed
/// on every other frame with bit 0x10) or come raw; the rest is frames
/// (length byte, bytes).
pub fn stack_frames(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let spec = STACKS[sel as usize % STACKS.len()];
    let raw = sel & 0x80 != 0;
    let (Some(mut st), Some(rx)) = (member(spec, 1, false), pool()) else {
        return;
    };
    let frames = split(rest).enumerate().map(|(i, b)| {
        if raw {
            return b.to_vec();
        }
        // Alternate senders (0 and 2), multicast and point-to-point.
        let src = if i % 2 == 0 { 0 } else { 2 };
        let mut f = if sel & 0x20 != 0 {
            compact_header(spec, src, (i / 2) as u64, sel & 0x10 != 0 && i % 2 == 1)
        } else {
            header(spec, src, sel & 0x40 != 0 && i % 3 == 0)
        };
        f.extend_from_slice(b);
        f
    });
    feed(st.as_mut(), &rx, frames);
}

/// Frames into secure stacks. With the first byte's top bit clear, each
/// body is sealed under the view's key first, so what lies above `crypt`
/// is fuzzed too; otherwise the bytes arrive as they are (forgeries,
/// signed and unsigned control frames).
pub fn secure_frames(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let spec = SECURE_STACKS[sel as usize % SECURE_STACKS.len()];
    let raw = sel & 0x80 != 0;
    let (Some(mut st), Some(rx)) = (member(spec, 1, true), pool()) else {
        return;
    };
    let stack = Spec::parse(spec).map(|s| s.id()).unwrap_or(0);
    let fk = FrameKey::new(&GroupKey::from_bytes(FUZZ_KEY));
    let mut ctr = [0u64; N];
    let frames = split(rest).enumerate().map(|(i, b)| {
        if raw {
            return b.to_vec();
        }
        let src: Rank = if i % 2 == 0 { 0 } else { 2 };
        let p2p = sel & 0x40 != 0 && i % 3 == 0;
        let aad = FrameAad {
            group: StackConfig::default().group,
            stack,
            view: view_id().tag(),
            src,
            dst: if p2p { 1 } else { DST_ALL },
            ctr: ctr[src as usize],
        };
        ctr[src as usize] += 1;
        let mut f = header(spec, src, p2p);
        f.extend_from_slice(&aad.ctr.to_be_bytes());
        let mut body = b.to_vec();
        let tag = fk.seal(&aad, &mut body).unwrap_or_default();
        f.extend_from_slice(&body);
        f.extend_from_slice(&tag);
        f
    });
    feed(st.as_mut(), &rx, frames);
}

/// The pieces of the secure layers on their own: sealed group keys,
/// sealed frames, the replay window.
pub fn secure_parts(data: &[u8]) {
    let Some(s) = Secure::with_seed(identity(1), keys(), [1; 32]).ok() else {
        return;
    };
    let at = SealFor {
        group: 1,
        ltime: 2,
        vcoord: 3,
        member: 4,
    };
    assert!(s.open(data, &identity(0).public(), &at).is_none());
    if data.len() >= 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(&data[..32]);
        let _ = s.open(&data[32..], &k, &at);
        let _ = s.verify(&k, &[&data[32..]], &[0; 64]);
    }
    let fk = FrameKey::new(&GroupKey::from_bytes(FUZZ_KEY));
    if data.len() >= CTR_LEN + 16 {
        let (body, tag) = data.split_at(data.len() - 16);
        let aad = FrameAad {
            group: 1,
            stack: 2,
            view: 3,
            src: 0,
            dst: DST_ALL,
            ctr: 0,
        };
        assert!(!fk.open(&aad, &mut body.to_vec(), tag), "a forgery opened");
    }
    let mut w = ReplayWindow::default();
    for c in data.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let ctr = u64::from_le_bytes(b) >> (c[0] % 64);
        if w.fresh(ctr) {
            w.accept(ctr);
            assert!(!w.fresh(ctr), "a counter accepted twice");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn targets_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            for (_, t) in TARGETS {
                t(&b);
            }
        }
    }
}
