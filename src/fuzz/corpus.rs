//! The seed corpus: real headers, control messages and frames from
//! running stacks.

use super::*;

/// Frames a member of a fuzzed view sends while it casts `sizes`
/// (several fragments for large ones), with their `com` headers.
fn frames_of(spec: &str, me: Rank, secure: bool, sizes: &[usize]) -> Vec<Vec<u8>> {
    let (Some(mut st), Some(tx)) = (member(spec, me, secure), pool()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut now = Time::ZERO;
    for (i, n) in sizes.iter().enumerate() {
        let body: Vec<u8> = (0..*n).map(|k| (k + i) as u8).collect();
        let mut m = match tx.alloc() {
            Some(m) => m,
            None => break,
        };
        if m.append(&body).is_err() {
            continue;
        }
        let _ = st.cast(now, m);
        now = now.plus_ns(3_000_000);
        st.handle_timeout(now);
        while st.poll_event().is_some() {}
        while let Some((_, f)) = st.poll_transmit() {
            out.push(f.to_vec());
        }
    }
    out
}

fn framed(sel: u8, frames: &[Vec<u8>], strip: usize) -> Vec<u8> {
    let mut b = vec![sel];
    for f in frames {
        let f = &f[strip.min(f.len())..];
        let f = &f[..f.len().min(255)];
        b.push(f.len() as u8);
        b.extend_from_slice(f);
    }
    b
}

/// A seed corpus for every target: real headers, control messages and
/// frames from running stacks (written to `fuzz/corpus/<target>/` by
/// `TUTTI_BLESS=1 cargo test --test fuzz_corpus`).
pub fn seed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    use crate::layers::gms::{Attempt, Ctrl, Outside, ViewMsg, XferCtrl};
    use crate::wire::nak::Stream;
    let mut c: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let sizes = [1usize, 64, 300, 4000];
    for (i, spec) in STACKS.iter().enumerate() {
        for me in [0, 2] {
            let frames = frames_of(spec, me, false, &sizes);
            for f in frames.iter().take(3) {
                c.push(("com_header", f[..LEN.min(f.len())].to_vec()));
            }
            let (small, full): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
                frames.iter().cloned().partition(|f| fast::is_compact(f));
            c.push(("stack_frames", framed(i as u8, &full, LEN)));
            c.push(("stack_frames", framed(0x20 | i as u8, &small, fast::LEN)));
            for f in small.iter().take(2) {
                let mut h = vec![3u8];
                h.extend_from_slice(f);
                c.push(("layer_headers", h));
            }
            c.push(("stack_frames", framed(0x80 | i as u8, &frames, 0)));
            if *spec == "vsync" || *spec == "vsync-total" {
                let k = if *spec == "vsync" { 0 } else { 1 };
                c.push(("secure_frames", framed(k, &frames, LEN)));
            }
        }
    }
    for (i, spec) in SECURE_STACKS.iter().enumerate() {
        let frames = frames_of(spec, 0, true, &sizes);
        c.push(("secure_frames", framed(0x80 | i as u8, &frames, 0)));
    }
    let naks = [
        NakHdr::Cast { seq: 5 },
        NakHdr::Send { seq: 1 },
        NakHdr::Raw,
        NakHdr::Retrans { orig: 2, seq: 9 },
        NakHdr::Nak {
            stream: Stream::Cast,
            orig: 1,
            n: 2,
        },
        NakHdr::Status {
            stream: Stream::Send,
            next: 3,
        },
        NakHdr::Ack { next: 4 },
        NakHdr::Lost {
            stream: Stream::Cast,
            orig: 0,
            from: 1,
            to: 4,
        },
    ];
    for h in naks {
        let mut b = vec![0u8; 1 + h.len()];
        h.emit(&mut b[1..]);
        if let NakHdr::Nak { .. } = h {
            for x in [1u64, 3, 5, 8] {
                b.extend_from_slice(&x.to_be_bytes());
            }
        }
        c.push(("layer_headers", b));
    }
    for h in [
        FragHdr::Whole,
        FragHdr::First { total: 9000 },
        FragHdr::Last,
    ] {
        let mut b = vec![1u8; 1 + h.len()];
        h.emit(&mut b[1..]);
        c.push(("layer_headers", b));
    }
    let mut g = vec![2u8];
    g.extend_from_slice(&1u16.to_be_bytes());
    g.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3]);
    c.push(("layer_headers", g));
    let at = Attempt {
        ltime: 3,
        vcoord: 7,
        coord: 0,
        n: 1,
    };
    let ctrls = [
        Ctrl::Flush {
            at,
            failed: vec![2],
            participants: vec![0, 1],
        },
        Ctrl::FlushOk {
            at,
            delivered: vec![1, 2, 3],
            last_primary_id: (2, 7),
            last_primary: vec![7],
        },
        Ctrl::Cut {
            at,
            cut: vec![1, 2, 3],
            holder: vec![0, 1, 1],
        },
        Ctrl::CutOk { at },
        Ctrl::Leave,
    ];
    for x in &ctrls {
        c.push(("control", encode(x)));
    }
    let k = identity(0).public();
    let outs = [
        Outside::Join {
            id: 5,
            addr: "m5".into(),
            key: Some(k),
        },
        Outside::Refused { why: "no".into() },
        Outside::Redirect { coord: "m0".into() },
        Outside::View(ViewMsg {
            from: vec![at],
            ltime: 4,
            vcoord: 0,
            members: vec![0, 1],
            addrs: vec!["m0".into(), "m1".into()],
            merged: Vec::new(),
            reply_to: "m0".into(),
            primary: true,
            last_primary_id: (3, 0),
            last_primary: vec![0, 1],
            keys: vec![k, identity(1).public()],
            sealed: vec![vec![1; 60], vec![2; 60]],
            sealer: Some(k),
        }),
        Outside::MergeRequest {
            ltime: 4,
            vcoord: 0,
            reply_to: "m0".into(),
        },
        Outside::ViewAck {
            ltime: 4,
            vcoord: 0,
            id: 1,
        },
    ];
    for x in &outs {
        c.push(("control", encode(x)));
    }
    c.push((
        "control",
        encode(&XferCtrl::Begin {
            len: 9,
            vector: vec![1, 2],
        }),
    ));
    for d in [
        Desc {
            sender: 1,
            region: 0,
            slot: 3,
            off: 128,
            len: 64,
        },
        Desc {
            sender: 1,
            region: 1,
            slot: 63,
            off: 1000,
            len: 24,
        },
        Desc {
            sender: 9,
            region: 0,
            slot: 64,
            off: 0,
            len: 1,
        },
    ] {
        let b: Vec<u8> = d.to_record().iter().flat_map(|w| w.to_le_bytes()).collect();
        c.push(("shm_desc", b));
    }
    if let Ok(s) = Secure::with_seed(identity(0), keys(), [2; 32]) {
        let at = SealFor {
            group: 1,
            ltime: 2,
            vcoord: 3,
            member: 4,
        };
        if let Some(sealed) = s.seal(&s.fresh_key(), &identity(1).public(), &at) {
            let mut b = identity(0).public().to_vec();
            b.extend_from_slice(&sealed);
            c.push(("secure_parts", b));
        }
    }
    c.push(("secure_parts", (0u8..64).collect()));
    c
}
