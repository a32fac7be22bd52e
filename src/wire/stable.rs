//! Header of the `stable` layer.
//!
//! | type | name   | fields                                             |
//! |------|--------|----------------------------------------------------|
//! | 0    | DATA   | (none: a message of the layers above)              |
//! | 1    | GOSSIP | n u16, then n × received u64, then n × stable u64  |
//!
//! `received[s]` is how many casts of rank `s` the gossiping member has
//! delivered; `stable[s]` is the stability vector it has computed.

use super::{Reader, WireError, Writer};

/// Type byte of a data message.
pub const DATA: u8 = 0;
/// Type byte of a gossip message.
pub const GOSSIP: u8 = 1;

/// Length of a gossip body (after the type byte) for `n` members.
pub fn gossip_len(n: usize) -> usize {
    2 + 16 * n
}

/// Parses a gossip body for a view of `n` members into `received` and
/// `stable` (each `n` long). Refuses a body for another view size.
pub fn parse_gossip(
    body: &[u8],
    received: &mut [u64],
    stable: &mut [u64],
) -> Result<(), WireError> {
    let n = received.len();
    let mut r = Reader::new(body);
    if r.u16()? as usize != n || stable.len() != n {
        return Err(WireError::BadField("gossip vector length"));
    }
    for v in received.iter_mut() {
        *v = r.u64()?;
    }
    for (s, rcv) in stable.iter_mut().zip(received.iter()) {
        *s = r.u64()?;
        if *s > *rcv {
            return Err(WireError::BadField("stable beyond received"));
        }
    }
    r.finish()
}

/// Writes a gossip body into `out` (exactly [`gossip_len`] bytes).
pub fn emit_gossip(received: &[u64], stable: &[u64], out: &mut [u8]) {
    let mut w = Writer::new(out);
    w.u16(received.len() as u16);
    for v in received {
        w.u64(*v);
    }
    for v in stable {
        w.u64(*v);
    }
}
