//! Wire tests: fixed byte layouts, emission into poisoned buffers (a field
//! never written shows up as 0xAA), round trips, and decoders fed arbitrary
//! bytes (they may refuse, never panic).

use proptest::prelude::*;

use super::com::{ComRepr, Frame, DST_ALL, LEN, MAGIC};
use super::frag::FragHdr;
use super::nak::{emit_ranges, parse_ranges, ranges_len, NakHdr, RangeList, Stream, MAX_RANGES};
use super::stable::{emit_gossip, gossip_len, parse_gossip};
use super::WireError;

const POISON: u8 = 0xAA;

#[test]
fn com_header_layout_is_fixed() {
    let r = ComRepr {
        ctl: false,
        p2p: true,
        group: 0x0102_0304,
        stack: 0x0506,
        src: 7,
        dst: 9,
        view: 0x0a0b_0c0d,
    };
    let mut b = [POISON; LEN];
    r.emit(&mut b);
    assert_eq!(
        b,
        [0x74, 0x75, 2, 1, 1, 2, 3, 4, 5, 6, 0, 7, 0, 9, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d]
    );
    assert_eq!(ComRepr::parse(&b).unwrap(), r);
    let f = Frame::new_checked(&b[..]).unwrap();
    assert!(f.is_p2p());
    assert_eq!((f.src(), f.dst(), f.group()), (7, 9, 0x0102_0304));
}

#[test]
fn com_header_refusals_say_why() {
    let r = ComRepr {
        ctl: false,
        p2p: false,
        group: 1,
        stack: 2,
        src: 0,
        dst: DST_ALL,
        view: 1,
    };
    let mut b = [0u8; LEN];
    r.emit(&mut b);
    assert_eq!(ComRepr::parse(&b[..LEN - 1]), Err(WireError::Truncated));
    let mut bad = b;
    bad[0] = 0;
    assert_eq!(ComRepr::parse(&bad), Err(WireError::BadMagic));
    let mut bad = b;
    bad[2] = 9;
    assert_eq!(ComRepr::parse(&bad), Err(WireError::BadVersion));
    let mut bad = b;
    bad[3] = 0x80;
    assert_eq!(ComRepr::parse(&bad), Err(WireError::Reserved));
    let mut bad = b;
    bad[15] = 1;
    assert_eq!(ComRepr::parse(&bad), Err(WireError::Reserved));
    // A multicast addressed to one member.
    let mut bad = b;
    bad[13] = 3;
    bad[12] = 0;
    assert!(matches!(ComRepr::parse(&bad), Err(WireError::BadField(_))));
    assert_eq!(u16::from_be_bytes([b[0], b[1]]), MAGIC);
}

fn all_nak_headers() -> Vec<NakHdr> {
    vec![
        NakHdr::Cast { seq: 1 << 40 },
        NakHdr::Send { seq: 3 },
        NakHdr::Raw,
        NakHdr::Retrans { orig: 4, seq: 5 },
        NakHdr::Nak {
            stream: Stream::Send,
            orig: 2,
            n: 3,
        },
        NakHdr::Status {
            stream: Stream::Cast,
            next: 77,
        },
        NakHdr::Ack { next: 12 },
        NakHdr::Lost {
            stream: Stream::Cast,
            orig: 1,
            from: 5,
            to: 9,
        },
    ]
}

#[test]
fn nak_headers_round_trip_and_fill_their_length() {
    for h in all_nak_headers() {
        let mut b = vec![POISON; h.len()];
        h.emit(&mut b);
        assert_eq!(NakHdr::parse(&b).unwrap(), (h, h.len()), "{h:?}");
        // Every byte written (no poison left except where a value has it).
        assert!(NakHdr::parse(&b[..h.len() - 1]).is_err() || h.len() == 1);
    }
    let mut b = [0u8; 9];
    NakHdr::Cast { seq: 0x0102 }.emit(&mut b);
    assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 1, 2]);
}

#[test]
fn nak_header_refusals() {
    assert_eq!(NakHdr::parse(&[]), Err(WireError::Truncated));
    assert_eq!(NakHdr::parse(&[99]), Err(WireError::UnknownTag(99)));
    // NAK with zero or too many ranges.
    assert!(NakHdr::parse(&[4, 0, 0, 1, 0]).is_err());
    assert!(NakHdr::parse(&[4, 0, 0, 1, MAX_RANGES as u8 + 1]).is_err());
    // Unknown stream.
    assert!(NakHdr::parse(&[5, 7, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    // LOST with an empty range.
    let mut b = [0u8; 20];
    NakHdr::Lost {
        stream: Stream::Cast,
        orig: 0,
        from: 5,
        to: 6,
    }
    .emit(&mut b);
    b[19] = 5;
    assert!(NakHdr::parse(&b).is_err());
}

#[test]
fn nak_ranges_round_trip_and_are_checked() {
    let mut r = RangeList::default();
    r.push(1, 3);
    r.push(5, 6);
    let mut b = vec![POISON; ranges_len(2)];
    emit_ranges(&r, &mut b);
    assert_eq!(parse_ranges(&b, 2).unwrap(), r);
    assert_eq!(parse_ranges(&b, 3), Err(WireError::Truncated));
    assert_eq!(parse_ranges(&b, 1), Err(WireError::Trailing));
    let mut overlap = RangeList::default();
    overlap.push(1, 5);
    overlap.push(4, 6);
    emit_ranges(&overlap, &mut b);
    assert!(parse_ranges(&b, 2).is_err());
}

#[test]
fn frag_and_stable_headers() {
    for h in [
        FragHdr::Whole,
        FragHdr::First { total: 1 << 24 },
        FragHdr::Middle,
        FragHdr::Last,
    ] {
        let mut b = vec![POISON; h.len()];
        h.emit(&mut b);
        assert_eq!(FragHdr::parse(&b).unwrap(), (h, h.len()));
    }
    assert_eq!(FragHdr::parse(&[4]), Err(WireError::UnknownTag(4)));
    assert_eq!(FragHdr::parse(&[1, 0]), Err(WireError::Truncated));

    let recv = [5u64, 7, 9];
    let stable = [5u64, 6, 0];
    let mut b = vec![POISON; gossip_len(3)];
    emit_gossip(&recv, &stable, &mut b);
    let (mut r, mut s) = ([0u64; 3], [0u64; 3]);
    parse_gossip(&b, &mut r, &mut s).unwrap();
    assert_eq!((r, s), (recv, stable));
    let (mut r2, mut s2) = ([0u64; 2], [0u64; 2]);
    assert!(
        parse_gossip(&b, &mut r2, &mut s2).is_err(),
        "view size mismatch"
    );
    let bad_stable = [6u64, 6, 0];
    emit_gossip(&recv, &bad_stable, &mut b);
    assert!(
        parse_gossip(&b, &mut r, &mut s).is_err(),
        "stable beyond received"
    );
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96), n in any::<u8>()) {
        let _ = ComRepr::parse(&bytes);
        let _ = Frame::new_checked(&bytes[..]);
        let _ = NakHdr::parse(&bytes);
        let _ = parse_ranges(&bytes, n);
        let _ = FragHdr::parse(&bytes);
        let mut r = vec![0u64; (n % 8) as usize];
        let mut s = vec![0u64; (n % 8) as usize];
        let _ = parse_gossip(&bytes, &mut r, &mut s);
        let _ = super::com::peek_src(&bytes);
    }

    #[test]
    fn com_round_trips(p2p in any::<bool>(), group in any::<u32>(), stack in any::<u16>(),
                       src in 0u16..0xFFFF, dst in 0u16..0xFFFF, view in any::<u32>()) {
        let r = ComRepr { p2p, ctl: false, group, stack, src, dst: if p2p { dst } else { DST_ALL }, view };
        let mut b = [POISON; LEN];
        r.emit(&mut b);
        prop_assert_eq!(ComRepr::parse(&b).unwrap(), r);
    }

    #[test]
    fn nak_round_trips(tag in 0u8..8, a in any::<u64>(), b in any::<u64>(), orig in any::<u16>(), n in 1u8..=32) {
        let (lo, hi) = (a.min(b), a.max(b).max(1));
        let lo = if lo == hi { hi - 1 } else { lo };
        let stream = if a % 2 == 0 { Stream::Cast } else { Stream::Send };
        let h = match tag {
            0 => NakHdr::Cast { seq: a },
            1 => NakHdr::Send { seq: a },
            2 => NakHdr::Raw,
            3 => NakHdr::Retrans { orig, seq: a },
            4 => NakHdr::Nak { stream, orig, n },
            5 => NakHdr::Status { stream, next: a },
            6 => NakHdr::Ack { next: a },
            _ => NakHdr::Lost { stream, orig, from: lo, to: hi },
        };
        let mut buf = vec![POISON; h.len()];
        h.emit(&mut buf);
        prop_assert_eq!(NakHdr::parse(&buf).unwrap(), (h, h.len()));
    }
}
