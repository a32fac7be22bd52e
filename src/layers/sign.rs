//! `sign`: authenticates membership control frames, the ones that travel
//! outside any view (joins, views for joiners, merge discovery), with the
//! sender's long-term Ed25519 key.
//!
//! Going down, a control frame gets the sender's public key and a
//! signature over the group, the stack and the payload in front. Coming
//! up, the signature is checked before anything reads the payload; the
//! frame goes on with its signer named ([`Signer`]), so that `gms` can
//! bind a join or a view to the key that sent it. A valid signature by a
//! key outside the authorized list goes up too, marked, so that `gms` can
//! refuse the join and say so; checking those is rate-limited, so a flood
//! of them costs little. In-view frames pass through: `crypt` protects
//! them under the group key.

use std::sync::Arc;

use crate::event::{Down, PubKey, Signer, Time, Up};
use crate::layer::{Cx, DropReason, Layer, LayerInfo, Prop};
use crate::secure::{Secure, SIGN_DOMAIN, SIG_LEN};

/// Layer description.
pub static INFO: LayerInfo = LayerInfo {
    name: "sign",
    needs: &[Prop::Framing],
    needs_above: &[Prop::Membership],
    provides: &[Prop::Authenticated],
    bottom: false,
    about: "signs membership control frames with the member's long-term key; checks signers",
};

/// Least time between two checks of signatures by keys that are not
/// authorized (each costs an Ed25519 verification).
pub const STRANGER_CHECK_NS: u64 = 10_000_000;

/// The `sign` layer.
pub struct Sign {
    secure: Option<Arc<Secure>>,
    group: [u8; 4],
    stack: [u8; 2],
    /// When a stranger's signature was last checked.
    stranger_at: Option<Time>,
}

impl Sign {
    /// A `sign` layer for group `group`, stack `stack`. Without `secure`
    /// it drops every control frame (a secure stack fails closed).
    pub fn new(secure: Option<Arc<Secure>>, group: u32, stack: u16) -> Sign {
        Sign {
            secure,
            group: group.to_be_bytes(),
            stack: stack.to_be_bytes(),
            stranger_at: None,
        }
    }

    /// Who signed `body` with `sig`, claiming `key`; the drop reason if
    /// the signature is bad, or is a stranger's arriving within
    /// [`STRANGER_CHECK_NS`] of the last one checked.
    fn verify(
        &mut self,
        s: &Secure,
        key: &PubKey,
        sig: &[u8; 64],
        body: &[u8],
        now: Time,
    ) -> Result<Signer, DropReason> {
        let authorized = s.is_authorized(key);
        if !authorized {
            if self
                .stranger_at
                .is_some_and(|t| now.since(t) < STRANGER_CHECK_NS)
            {
                return Err(DropReason::Unauthorized);
            }
            self.stranger_at = Some(now);
        }
        let parts: [&[u8]; 4] = [SIGN_DOMAIN, &self.group, &self.stack, body];
        match s.verify(key, &parts, sig) {
            true => Ok(Signer {
                key: *key,
                authorized,
            }),
            false if authorized => Err(DropReason::BadSignature),
            false => Err(DropReason::Unauthorized),
        }
    }
}

impl Layer for Sign {
    fn info(&self) -> &'static LayerInfo {
        &INFO
    }

    fn down(&mut self, ev: Down, cx: &mut Cx<'_>) {
        let Down::Ctl(to, mut m) = ev else {
            cx.down(ev);
            return;
        };
        let Some(s) = &self.secure else {
            cx.dropped(DropReason::NoKey);
            return;
        };
        let sig = {
            let Some(body) = m.contiguous() else {
                cx.dropped(DropReason::TooLarge);
                return;
            };
            s.identity()
                .sign(&[SIGN_DOMAIN, &self.group, &self.stack, body])
        };
        let public = s.public();
        match m.push(SIG_LEN) {
            Ok(h) => {
                h[..32].copy_from_slice(&public);
                h[32..].copy_from_slice(&sig);
            }
            Err(_) => {
                cx.dropped(DropReason::NoBuffer);
                return;
            }
        }
        cx.down(Down::Ctl(to, m));
    }

    fn up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let Up::Ctl(mut m, _) = ev else {
            cx.up(ev);
            return;
        };
        let Some(s) = self.secure.clone() else {
            cx.dropped(DropReason::NoKey);
            return;
        };
        let f = m.front();
        if m.nsegs() != 1 || f.len() < SIG_LEN {
            cx.dropped(DropReason::Truncated);
            return;
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&f[..32]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&f[32..SIG_LEN]);
        match self.verify(&s, &key, &sig, &f[SIG_LEN..], cx.now()) {
            Ok(signer) => {
                if m.advance(SIG_LEN).is_err() {
                    cx.dropped(DropReason::Truncated);
                    return;
                }
                cx.up(Up::Ctl(m, Some(Box::new(signer))));
            }
            Err(why) => cx.dropped(why),
        }
    }
}
