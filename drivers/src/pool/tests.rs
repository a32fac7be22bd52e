use super::*;

fn pool(slots: u32, slot_size: u32) -> Pool {
    Pool::new(PoolConfig {
        slots,
        slot_size,
        headroom: 32,
        tailroom: 8,
    })
    .unwrap()
}

#[test]
fn config_is_checked() {
    let bad = PoolConfig {
        slots: 0,
        ..PoolConfig::default()
    };
    assert!(matches!(Pool::new(bad), Err(PoolError::Config(_))));
    let bad = PoolConfig {
        slot_size: 104,
        headroom: 90,
        tailroom: 8,
        ..PoolConfig::default()
    };
    let e = Pool::new(bad).unwrap_err().to_string();
    assert!(e.contains("headroom"), "{e}");
}

#[test]
fn alloc_until_empty_then_free_returns_slots() {
    let p = pool(4, 128);
    let ms: Vec<Msg> = (0..4).map(|_| p.alloc().unwrap()).collect();
    assert!(p.alloc().is_none());
    assert_eq!(p.stats().in_use, 4);
    assert_eq!(p.stats().exhausted, 1);
    drop(ms);
    assert_eq!(p.stats().in_use, 0);
    assert_eq!(p.free_slots(), 4);
}

#[test]
fn push_and_pop_headers_in_place() {
    let p = pool(4, 128);
    let mut m = p.alloc().unwrap();
    m.append(b"payload").unwrap();
    let slot = m.slot();
    m.push(2).unwrap().copy_from_slice(b"h2");
    m.push(3).unwrap().copy_from_slice(b"h1_");
    assert_eq!(m.to_vec(), b"h1_h2payload");
    assert_eq!(m.slot(), slot, "no copy");
    assert_eq!(&m.front()[..3], b"h1_");
    m.advance(3).unwrap();
    m.advance(2).unwrap();
    assert_eq!(m.to_vec(), b"payload");
    assert_eq!(m.advance(100), Err(MsgError::Short));
    assert_eq!(m.push(33).unwrap_err(), MsgError::NoHeadroom);
}

#[test]
fn shared_handle_pushes_without_copy_once_then_copies() {
    let p = pool(8, 128);
    let mut m = p.alloc().unwrap();
    m.append(b"data").unwrap();
    m.push(1).unwrap()[0] = b'n';
    let kept = m.share();
    // First push on the shared slot wins the claim: no copy.
    m.push(2).unwrap().copy_from_slice(b"cc");
    assert_eq!(m.slot(), kept.slot());
    assert_eq!(p.stats().cow_copies, 0);
    // A second handle pushing into the already claimed headroom copies.
    let mut again = kept.share();
    again.push(2).unwrap().copy_from_slice(b"RR");
    assert_ne!(again.slot(), kept.slot());
    assert_eq!(p.stats().cow_copies, 1);
    assert_eq!(m.to_vec(), b"ccndata");
    assert_eq!(again.to_vec(), b"RRndata");
    assert_eq!(kept.to_vec(), b"ndata");
    drop((m, kept, again));
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn chains_hold_large_payloads_and_split_and_link_back() {
    let p = pool(64, 128);
    let cap = p.capacity();
    let data: Vec<u8> = (0..(cap * 5 + 7)).map(|i| i as u8).collect();
    let m = p.alloc_copy(&data).unwrap();
    assert_eq!(m.nsegs(), 6);
    assert_eq!(m.len(), data.len());
    assert_eq!(m.to_vec(), data);
    let copy = m.copy_exact().unwrap();
    assert_eq!(copy.to_vec(), data);
    drop(copy);
    let segs: Vec<Msg> = m.split().collect();
    assert_eq!(segs.len(), 6);
    let mut it = segs.into_iter();
    let mut back = it.next().unwrap();
    for s in it {
        back.link(s).unwrap();
    }
    assert_eq!(back.to_vec(), data);
    drop(back);
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn link_copies_segment_used_by_another_chain() {
    let p = pool(64, 128);
    let mut a = p.alloc_copy(b"first").unwrap();
    let b1 = p.alloc_copy(b"second").unwrap();
    let b2 = b1.share();
    a.link(b1).unwrap();
    let mut c = p.alloc_copy(b"other").unwrap();
    c.link(b2).unwrap();
    assert_eq!(a.to_vec(), b"firstsecond");
    assert_eq!(c.to_vec(), b"othersecond");
    drop((a, c));
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn reserve_is_zero_copy_and_refuses_shared() {
    let p = pool(4, 128);
    let mut m = p.alloc().unwrap();
    m.reserve(4).unwrap().copy_from_slice(b"abcd");
    let s = m.share();
    assert_eq!(m.reserve(1).unwrap_err(), MsgError::Shared);
    drop(s);
    assert!(m.reserve(200).is_err());
    assert_eq!(m.to_vec(), b"abcd");
}

#[test]
fn frames_land_at_offset_zero() {
    let p = pool(2, 128);
    let m = p.alloc_frame(&[7u8; 128]).unwrap();
    assert_eq!(m.len(), 128);
    assert_eq!(m.offset(), 0);
    assert!(p.alloc_frame(&[0u8; 129]).is_none());
}

#[test]
fn handles_move_between_threads() {
    let p = pool(1024, 256);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(64);
    let p2 = p.clone();
    let t = std::thread::spawn(move || {
        let mut sum = 0u64;
        while let Ok(m) = rx.recv() {
            sum += m.front()[0] as u64;
        }
        drop(p2);
        sum
    });
    let mut want = 0u64;
    for i in 0..10_000u32 {
        let mut m = loop {
            if let Some(m) = p.alloc() {
                break m;
            }
            std::thread::yield_now();
        };
        m.append(&[(i % 251) as u8]).unwrap();
        want += (i % 251) as u64;
        tx.send(m).unwrap();
    }
    drop(tx);
    assert_eq!(t.join().unwrap(), want);
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn messages_keep_their_pool_alive_without_a_pool_handle() {
    let p = Pool::new(PoolConfig::default()).unwrap();
    let mut a = p.alloc().unwrap();
    a.reserve(3).unwrap().copy_from_slice(b"abc");
    let b = a.share();
    let big = p
        .alloc_copy(&vec![7u8; 3 * PoolConfig::default().slot_size as usize])
        .unwrap();
    let segs: Vec<Msg> = big.split().collect();
    drop(p);
    assert_eq!(b.to_vec(), b"abc");
    // A pool handle from a message, after the original is gone.
    let again = a.pool();
    drop(a);
    drop(b);
    assert_eq!(segs.len(), 4);
    drop(segs);
    let c = again.alloc().unwrap();
    drop(again);
    assert!(c.is_empty());
    drop(c);
}

#[test]
fn bulk_shares_hand_out_windows_and_give_back_the_rest() {
    let p = pool(2, 256);
    let mut m = p.alloc().unwrap();
    m.reserve(12).unwrap().copy_from_slice(b"aaaabbbbcccc");
    let mut sh = m.share_bulk(4).unwrap();
    let a = sh.window(0, 4).unwrap();
    let c = sh.window(8, 4).unwrap();
    assert!(sh.window(10, 4).is_none(), "past the end");
    assert!(sh.window(13, 0).is_none(), "starts past the end");
    assert_eq!(a.front(), b"aaaa");
    assert_eq!(c.front(), b"cccc");
    assert_eq!(sh.left(), 2);
    drop(sh);
    drop(m);
    // The windows still hold the slot; the unused references went back.
    assert_eq!(p.stats().in_use, 1);
    drop(a);
    assert_eq!(p.stats().in_use, 1);
    drop(c);
    assert_eq!(p.stats().in_use, 0);
    // No more than asked for.
    let m = p.alloc().unwrap();
    let mut sh = m.share_bulk(1).unwrap();
    let w = sh.window(0, 0).unwrap();
    assert!(sh.window(0, 0).is_none());
    drop((m, w, sh));
    assert_eq!(p.free_slots(), 2);
}

#[test]
fn release_all_gives_back_runs_and_frees_each_slot_once() {
    let p = pool(4, 256);
    let (mut f, mut g) = (p.alloc().unwrap(), p.alloc().unwrap());
    f.reserve(8).unwrap().fill(1);
    g.reserve(8).unwrap().fill(2);
    let big = {
        let mut b = p.alloc().unwrap();
        b.reserve(8).unwrap().fill(3);
        let mut c = p.alloc().unwrap();
        c.reserve(8).unwrap().fill(4);
        b.link(c).unwrap();
        b
    };
    assert_eq!(big.nsegs(), 2);
    let (mut sf, mut sg) = (f.share_bulk(3).unwrap(), g.share_bulk(2).unwrap());
    let mut ms = Vec::new();
    for i in 0..3 {
        ms.push(sf.window(i, 1).unwrap());
    }
    ms.push(sg.window(0, 8).unwrap());
    ms.push(big.share());
    ms.push(sg.window(1, 2).unwrap());
    ms.push(f);
    ms.push(g);
    ms.push(big);
    assert_eq!(p.stats().in_use, 4);
    release_all(ms);
    assert_eq!(p.stats().in_use, 0);
    assert_eq!(p.free_slots(), 4);
    // Nothing was freed twice: four distinct slots come out again.
    let again: Vec<Msg> = (0..4).map(|_| p.alloc().unwrap()).collect();
    let mut slots: Vec<u32> = again.iter().map(|m| m.slot()).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 4);
    assert!(p.alloc().is_none());
}

#[test]
fn the_pool_state_goes_with_the_last_slot_and_not_before() {
    let p = pool(8, 256);
    let state = Arc::downgrade(&p.inner);
    let ms: Vec<Msg> = (0..6).map(|_| p.alloc().unwrap()).collect();
    let twins: Vec<Msg> = ms.iter().map(Msg::share).collect();
    drop(p);
    assert!(state.upgrade().is_some(), "slots in use keep it");
    release_all(ms);
    assert!(state.upgrade().is_some(), "the twins still hold every slot");
    let mut twins = twins.into_iter();
    let last = twins.next().unwrap();
    // Five slots freed together (one chain, one count given back).
    release_all(twins);
    assert!(state.upgrade().is_some(), "one slot still out");
    let again = last.pool();
    assert_eq!(again.free_slots(), 7, "the chain went back whole");
    let fresh: Vec<Msg> = (0..7).map(|_| again.alloc().unwrap()).collect();
    assert!(again.alloc().is_none());
    drop(again);
    release_all(fresh.into_iter().chain(std::iter::once(last)));
    assert!(state.upgrade().is_none(), "gone with the last slot");
}

#[test]
fn bulk_release_races_with_allocation_on_other_threads() {
    let p = pool(64, 128);
    let state = Arc::downgrade(&p.inner);
    let ts: Vec<_> = (0..3)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for round in 0..2000 {
                    let mut ms = Vec::new();
                    while ms.len() < 8 {
                        if let Some(mut m) = p.alloc() {
                            m.reserve(1).unwrap()[0] = t;
                            ms.push(m);
                        }
                    }
                    let twins: Vec<Msg> = ms.iter().map(Msg::share).collect();
                    if round % 2 == 0 {
                        release_all(ms);
                        assert!(twins.iter().all(|m| m.front() == [t]));
                        release_all(twins);
                    } else {
                        drop(ms);
                        release_all(twins);
                    }
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(p.free_slots(), 64);
    let all: Vec<Msg> = (0..64).map(|_| p.alloc().unwrap()).collect();
    let mut slots: Vec<u32> = all.iter().map(|m| m.slot()).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 64, "no slot was on the list twice");
    drop(p);
    release_all(all);
    assert!(state.upgrade().is_none());
}

#[test]
fn a_releaser_keeps_each_pools_slots_apart() {
    let (a, b) = (pool(4, 128), pool(4, 128));
    let (sa, sb) = (Arc::downgrade(&a.inner), Arc::downgrade(&b.inner));
    let mut ms = Vec::new();
    for i in 0..8 {
        ms.push(if i % 2 == 0 { a.alloc() } else { b.alloc() }.unwrap());
    }
    drop((a, b));
    let mut r = Releaser::new();
    for m in ms {
        r.push(m);
    }
    assert!(
        sa.upgrade().is_some() || sb.upgrade().is_some(),
        "the last run is still held"
    );
    drop(r);
    assert!(sa.upgrade().is_none() && sb.upgrade().is_none());
}

#[test]
fn an_allocator_counts_in_batches_and_gives_back_what_it_kept() {
    let p = pool(200, 128);
    let state = Arc::downgrade(&p.inner);
    let mut a = p.allocator();
    assert_eq!(a.credits(), 0, "nothing taken before the first buffer");
    let mut ms: Vec<Msg> = Vec::new();
    for i in 0..(CREDITS + 3) {
        let mut m = a.alloc().unwrap();
        m.reserve(1).unwrap()[0] = i as u8;
        assert_eq!(m.headroom(), 32, "full headroom, as Pool::alloc");
        ms.push(m);
    }
    assert_eq!(a.credits(), CREDITS - 3, "a second batch, three handed out");
    assert_eq!(
        p.stats().in_use as usize,
        CREDITS + 3,
        "slots in use are counted as always"
    );
    // Buffers from an allocator and from the pool mix: a slot's last
    // handle gives its count back either way.
    let plain = p.alloc().unwrap();
    let twins: Vec<Msg> = ms.iter().map(Msg::share).collect();
    release_all(ms.drain(..10));
    drop(p);
    drop(a);
    assert!(state.upgrade().is_some(), "buffers out keep the state");
    assert!(twins
        .iter()
        .enumerate()
        .all(|(i, m)| m.front() == [i as u8]));
    let again = plain.pool();
    drop(plain);
    release_all(ms);
    drop(twins);
    assert_eq!(again.free_slots(), 200, "every slot back");
    // An allocator that took a batch and handed out none of it.
    let mut b = again.allocator();
    drop(b.alloc().unwrap());
    assert_eq!(b.credits(), CREDITS - 1);
    drop(again);
    assert!(
        state.upgrade().is_some(),
        "the allocator's pool handle keeps it"
    );
    drop(b);
    assert!(
        state.upgrade().is_none(),
        "gone with the allocator's credits"
    );
}

#[test]
fn an_allocator_that_finds_the_pool_empty_takes_nothing() {
    let p = pool(2, 128);
    let mut a = p.allocator();
    let (x, y) = (a.alloc().unwrap(), a.alloc().unwrap());
    assert!(a.alloc().is_none());
    assert_eq!(a.credits(), CREDITS - 2);
    drop(x);
    let z = a.alloc().unwrap();
    assert_eq!(a.pool().free_slots(), 0);
    drop((y, z, a));
    assert_eq!(p.free_slots(), 2);
}

#[test]
fn allocators_on_several_threads_share_one_pool() {
    let p = pool(64, 128);
    let state = Arc::downgrade(&p.inner);
    let ts: Vec<_> = (0..3u8)
        .map(|t| {
            let mut a = p.allocator();
            std::thread::spawn(move || {
                let mut kept: Vec<Msg> = Vec::new();
                for round in 0..3000 {
                    if let Some(mut m) = a.alloc() {
                        m.reserve(1).unwrap()[0] = t;
                        kept.push(m);
                    }
                    if kept.len() > 8 || round % 7 == 0 {
                        assert!(kept.iter().all(|m| m.front() == [t]));
                        release_all(kept.drain(..));
                    }
                }
                // Buffers outlive the allocator that took them.
                drop(a);
                kept
            })
        })
        .collect();
    let left: Vec<Msg> = ts.into_iter().flat_map(|t| t.join().unwrap()).collect();
    drop(p);
    assert!(state.upgrade().is_some() || left.is_empty());
    drop(left);
    assert!(state.upgrade().is_none(), "every count given back");
}

#[test]
fn cache_hints_change_nothing() {
    let p = pool(4, 256);
    let mut m = p.alloc().unwrap();
    // Empty, then a window crossing several lines, then shared.
    m.demote();
    m.prefetch_room(256);
    m.reserve(200).unwrap().fill(9);
    m.demote();
    let s = m.share();
    s.demote();
    assert_eq!(m.to_vec(), vec![9u8; 200]);
    assert_eq!(s.len(), 200);
    drop((m, s));
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn windows_of_one_buffer_span_again_from_the_claim_mark() {
    let p = pool(3, 256);
    let mut m = p.alloc().unwrap();
    // Two "entries": a 2-byte length, then the bytes.
    m.reserve(12)
        .unwrap()
        .copy_from_slice(b"\0\x04aaaa\0\x04bbbb");
    let mut sh = m.share_bulk(3).unwrap();
    let a = sh.window(2, 4).unwrap();
    let b = sh.window(8, 4).unwrap();
    let lone = sh.window(8, 2).unwrap();
    assert!(a.precedes(&b, 2));
    assert!(!a.precedes(&b, 0));
    assert!(!b.precedes(&a, 2));
    let other = p.alloc().unwrap();
    assert!(!a.precedes(&other, 2), "another slot");
    // The span starts at the claim mark and grows over the lengths
    // between and the windows behind.
    let mut s = a.span(2).unwrap();
    assert_eq!(s.front(), b"\0\x04aaaa");
    assert_eq!(s.offset(), m.offset());
    assert!(a.span(1).is_none(), "not at the claim mark");
    assert!(b.span(2).is_none(), "not at the claim mark");
    assert!(a.span(1000).is_none(), "before the slot");
    assert_eq!(s.behind(&b), Some(&b"\0\x04bbbb"[..]));
    assert!(s.behind(&other).is_none(), "another slot");
    assert!(!s.extend_to(&other), "another slot");
    assert!(s.extend_to(&b));
    assert_eq!(s.front(), b"\0\x04aaaa\0\x04bbbb");
    assert!(s.behind(&a).is_none(), "not behind it");
    // A header goes in front of the span without a copy, once.
    s.push(2).unwrap().copy_from_slice(b"HH");
    assert_eq!(s.slot(), m.slot());
    assert_eq!(&s.front()[..4], b"HH\0\x04");
    // Now the mark moved: a second span would cover claimed bytes.
    assert!(a.span(2).is_none());
    drop((m, a, b, lone, sh, other));
    assert_eq!(p.stats().in_use, 1, "the span holds the slot");
    drop(s);
    assert_eq!(p.free_slots(), 3);
}
