use super::frame::FrameAad;
use super::*;

fn id(n: u8) -> Identity {
    Identity::from_seed([n; 32])
}

fn secure(n: u8, authorized: &[u8]) -> Secure {
    let keys: Vec<PubKey> = authorized.iter().map(|a| id(*a).public()).collect();
    Secure::with_seed(id(n), &keys, [n ^ 0x55; 32]).unwrap()
}

fn at(member: u64) -> SealFor {
    SealFor {
        group: 7,
        ltime: 3,
        vcoord: 11,
        member,
    }
}

#[test]
fn sealed_key_opens_only_for_its_member_and_view() {
    let coord = secure(1, &[1, 2, 3]);
    let b = secure(2, &[1, 2, 3]);
    let c = secure(3, &[1, 2, 3]);
    let k = coord.fresh_key();
    let sealed = coord.seal(&k, &b.public(), &at(2)).unwrap();
    assert_eq!(sealed.len(), SEALED_LEN);
    assert_eq!(b.open(&sealed, &coord.public(), &at(2)), Some(k.clone()));
    // Another member, another view, another claimed sealer: refused.
    assert_eq!(c.open(&sealed, &coord.public(), &at(2)), None);
    assert_eq!(b.open(&sealed, &coord.public(), &at(3)), None);
    assert_eq!(b.open(&sealed, &c.public(), &at(2)), None);
    let mut bad = sealed.clone();
    bad[20] ^= 1;
    assert_eq!(b.open(&bad, &coord.public(), &at(2)), None);
    assert_eq!(b.open(&sealed[..40], &coord.public(), &at(2)), None);
    // The coordinator opens what it sealed for itself.
    let own = coord.seal(&k, &coord.public(), &at(1)).unwrap();
    assert_eq!(coord.open(&own, &coord.public(), &at(1)), Some(k));
}

#[test]
fn fresh_keys_differ() {
    let s = secure(1, &[1]);
    let a = s.fresh_key();
    let b = s.fresh_key();
    assert_ne!(a, b);
    assert_eq!(format!("{a:?}"), "GroupKey(..)");
}

#[test]
fn signatures_verify_and_bind_every_part() {
    let s = secure(1, &[1, 2]);
    let sig = s.identity().sign(&[b"ab", b"cd"]);
    assert!(s.verify(&s.public(), &[b"ab", b"cd"], &sig));
    assert!(s.verify(&s.public(), &[b"abcd"], &sig));
    assert!(!s.verify(&s.public(), &[b"ab", b"ce"], &sig));
    assert!(!s.verify(&id(2).public(), &[b"ab", b"cd"], &sig));
    // A key outside the list still verifies (the caller decides).
    let stranger = id(9);
    let sig = stranger.sign(&[b"x"]);
    assert!(s.verify(&stranger.public(), &[b"x"], &sig));
    assert!(!s.is_authorized(&stranger.public()));
    assert!(!s.verify(&[0xff; 32], &[b"x"], &sig));
}

#[test]
fn key_files_round_trip_and_bad_ones_are_refused() {
    let dir = std::env::temp_dir().join(format!("tutti-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let i = id(4);
    let kf = dir.join("key");
    std::fs::write(&kf, format!("# secret\n{}\n", i.secret_hex())).unwrap();
    assert_eq!(Identity::load(&kf).unwrap().public(), i.public());
    let af = dir.join("authorized");
    std::fs::write(
        &af,
        format!("{}  # me\n\n{}\n", hex(&i.public()), hex(&id(5).public())),
    )
    .unwrap();
    assert_eq!(
        load_authorized(&af).unwrap(),
        vec![i.public(), id(5).public()]
    );
    std::fs::write(&af, "abc\n").unwrap();
    let e = load_authorized(&af).unwrap_err().0;
    assert!(e.contains("key 1") && e.contains("64 hex digits"), "{e}");
    std::fs::write(&kf, "zz".repeat(32)).unwrap();
    assert!(Identity::load(&kf).is_err());
    assert!(Identity::load(&dir.join("missing")).is_err());
    assert!(Secure::with_seed(id(1), &[], [0; 32]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn frames_authenticate_their_header_fields() {
    let k = GroupKey::from_bytes([9; 32]);
    let fk = FrameKey::new(&k);
    let aad = FrameAad {
        group: 1,
        stack: 2,
        view: 3,
        src: 4,
        dst: 0xffff,
        ctr: 5,
    };
    let mut buf = b"hello world".to_vec();
    let tag = fk.seal(&aad, &mut buf).unwrap();
    assert_ne!(&buf, b"hello world");
    let mut b2 = buf.clone();
    assert!(fk.open(&aad, &mut b2, &tag));
    assert_eq!(&b2, b"hello world");
    for bad in [
        FrameAad { src: 5, ..aad },
        FrameAad { dst: 1, ..aad },
        FrameAad { ctr: 6, ..aad },
        FrameAad { view: 4, ..aad },
        FrameAad { group: 2, ..aad },
    ] {
        let mut b = buf.clone();
        assert!(!fk.open(&bad, &mut b, &tag));
    }
    let other = FrameKey::new(&GroupKey::from_bytes([8; 32]));
    let mut b = buf.clone();
    assert!(!other.open(&aad, &mut b, &tag));
    assert!(!fk.open(&aad, &mut buf.clone(), &tag[..15]));
}

#[test]
fn replay_window_takes_each_counter_once() {
    let mut w = ReplayWindow::default();
    for c in [0, 2, 1, 5, 3] {
        assert!(w.fresh(c));
        w.accept(c);
        assert!(!w.fresh(c));
    }
    assert!(w.fresh(4));
    w.accept(5000);
    assert!(!w.fresh(5000));
    assert!(w.fresh(4999));
    // The window holds the newest WINDOW_BITS counters.
    assert!(!w.fresh(5000 - WINDOW_BITS));
    assert!(w.fresh(5000 - WINDOW_BITS + 1));
    // Bits of counters that slid out do not mark the new ones.
    let mut w = ReplayWindow::default();
    w.accept(7);
    w.accept(7 + WINDOW_BITS);
    assert!(w.fresh(7 + 2 * WINDOW_BITS));
    assert!(!w.fresh(u64::MAX));
}
