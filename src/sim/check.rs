//! Workload payloads and the checkers (oracles) that judge a run.
//!
//! Every simulated message carries who sent it, to whom, its index in the
//! sender's stream and its length, followed by bytes derived from those
//! fields: a receiver can tell a real message from an invented or corrupted
//! one, and knows which index must come next from each sender.

use tutti_drivers::{Msg, MsgError, Pool};

use crate::event::Rank;

const MAGIC: u32 = 0x5349_4d50;
/// Bytes of the payload header.
pub const HDR: usize = 17;

/// What a payload says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Sender rank.
    pub src: Rank,
    /// Point-to-point (true) or multicast.
    pub p2p: bool,
    /// Destination rank (point-to-point only).
    pub dst: Rank,
    /// Index in the sender's stream (casts, or sends to `dst`).
    pub index: u32,
    /// Whole payload length.
    pub len: u32,
}

impl Tag {
    fn encode(&self) -> [u8; HDR] {
        let mut h = [0u8; HDR];
        h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        h[4..6].copy_from_slice(&self.src.to_be_bytes());
        h[6] = self.p2p as u8;
        h[7..9].copy_from_slice(&self.dst.to_be_bytes());
        h[9..13].copy_from_slice(&self.index.to_be_bytes());
        h[13..17].copy_from_slice(&self.len.to_be_bytes());
        h
    }

    fn decode(h: &[u8]) -> Option<Tag> {
        if h.len() < HDR || h[0..4] != MAGIC.to_be_bytes() || h[6] > 1 {
            return None;
        }
        Some(Tag {
            src: u16::from_be_bytes([h[4], h[5]]),
            p2p: h[6] == 1,
            dst: u16::from_be_bytes([h[7], h[8]]),
            index: u32::from_be_bytes([h[9], h[10], h[11], h[12]]),
            len: u32::from_be_bytes([h[13], h[14], h[15], h[16]]),
        })
    }

    fn key(&self) -> u64 {
        ((self.src as u64) << 48)
            ^ ((self.dst as u64) << 32)
            ^ ((self.p2p as u64) << 31)
            ^ self.index as u64
    }
}

/// Body byte `i` of the message tagged `key` (cheap, position dependent).
#[inline]
fn body_word(key: u64, i: u64) -> u64 {
    let mut z = key ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 32)
}

/// Builds the payload for `tag` in `pool` (chained when large). A length
/// below the header's is raised to it.
pub fn make(pool: &Pool, mut tag: Tag) -> Result<Msg, MsgError> {
    tag.len = tag.len.max(HDR as u32);
    let mut m = pool.alloc().ok_or(MsgError::NoBuffer)?;
    let len = tag.len as usize;
    m.append(&tag.encode())?;
    let key = tag.key();
    let mut chunk = [0u8; 4096];
    let mut off = HDR;
    while off < len {
        let n = (len - off).min(chunk.len());
        for (j, b) in chunk[..n].iter_mut().enumerate() {
            let pos = (off + j) as u64;
            *b = (body_word(key, pos / 8) >> ((pos % 8) * 8)) as u8;
        }
        m.append(&chunk[..n])?;
        off += n;
    }
    Ok(m)
}

/// Checks a delivered payload; returns its tag or why it is not genuine.
pub fn verify(msg: &Msg) -> Result<Tag, String> {
    let mut hdr = [0u8; HDR];
    let mut pos = 0usize;
    let mut tag: Option<Tag> = None;
    let mut key = 0u64;
    for seg in msg.segments() {
        for &b in seg {
            if pos < HDR {
                hdr[pos] = b;
                if pos == HDR - 1 {
                    let t = Tag::decode(&hdr).ok_or("payload header is not genuine")?;
                    key = t.key();
                    tag = Some(t);
                }
            } else {
                let want = (body_word(key, pos as u64 / 8) >> ((pos as u64 % 8) * 8)) as u8;
                if b != want {
                    return Err(format!("payload byte {pos} corrupted"));
                }
            }
            pos += 1;
        }
    }
    let t = tag.ok_or("payload shorter than its header")?;
    if t.len as usize != pos {
        return Err(format!("payload length {pos}, header says {}", t.len));
    }
    Ok(t)
}

/// What one member has delivered, checked as it happens.
#[derive(Clone, Debug)]
pub struct Oracle {
    me: Rank,
    /// Next cast index expected from each sender.
    pub next_cast: Vec<u32>,
    /// Next point-to-point index expected from each sender.
    pub next_send: Vec<u32>,
    /// Everything that went wrong.
    pub violations: Vec<String>,
    /// Payload bytes delivered.
    pub bytes: u64,
}

impl Oracle {
    /// An oracle for member `me` of an `n`-member view.
    pub fn new(me: Rank, n: usize) -> Oracle {
        Oracle {
            me,
            next_cast: vec![0; n],
            next_send: vec![0; n],
            violations: Vec::new(),
            bytes: 0,
        }
    }

    /// Checks a delivery of `msg` from `src`; `p2p` tells the event kind.
    /// `sent` is how many messages `src` has sent on that stream so far.
    pub fn deliver(&mut self, src: Rank, p2p: bool, msg: &Msg, sent: u32) {
        let me = self.me;
        let t = match verify(msg) {
            Ok(t) => t,
            Err(e) => {
                self.violations.push(format!(
                    "member {me}: invented or corrupt message from {src}: {e}"
                ));
                return;
            }
        };
        if t.src != src || t.p2p != p2p || (p2p && t.dst != me) {
            self.violations.push(format!(
                "member {me}: message {t:?} delivered as from {src} (p2p={p2p})"
            ));
            return;
        }
        if t.index >= sent {
            self.violations.push(format!(
                "member {me}: message {} of {src} delivered before it was sent",
                t.index
            ));
        }
        let next = if p2p {
            &mut self.next_send[src as usize]
        } else {
            &mut self.next_cast[src as usize]
        };
        if t.index < *next {
            self.violations.push(format!(
                "member {me}: duplicate delivery of {} from {src} (p2p={p2p})",
                t.index
            ));
        } else if t.index > *next {
            self.violations.push(format!(
                "member {me}: FIFO broken: got {} from {src} (p2p={p2p}), expected {}",
                t.index, *next
            ));
            *next = t.index + 1;
        } else {
            *next += 1;
        }
        self.bytes += msg.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_drivers::PoolConfig;

    #[test]
    fn payloads_verify_and_corruption_is_caught() {
        let pool = Pool::new(PoolConfig::default()).unwrap();
        let tag = Tag {
            src: 2,
            p2p: false,
            dst: 0,
            index: 9,
            len: 5000,
        };
        let m = make(&pool, tag).unwrap();
        assert!(m.nsegs() > 1);
        assert_eq!(verify(&m).unwrap(), tag);
        let mut bytes = m.to_vec();
        bytes[4000] ^= 1;
        let bad = pool.alloc_copy(&bytes).unwrap();
        assert!(verify(&bad).is_err());
        let short = pool.alloc_copy(&bytes[..100]).unwrap();
        assert!(verify(&short).is_err());
        let mut o = Oracle::new(0, 3);
        o.deliver(2, false, &m, 10);
        assert_eq!(o.violations.len(), 1, "index 9 when 0 expected");
    }
}
