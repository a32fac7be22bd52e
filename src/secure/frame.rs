//! Frame encryption under a view's group key (AES-256-GCM), and the
//! replay window.
//!
//! A frame's nonce is its sender's rank and the sender's frame counter in
//! the view; group keys are fresh for every view and ranks are unique in
//! one, so no nonce repeats under a key. The associated data binds the
//! frame to its group, stack, view, sender and destination.

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use sha2::Sha256;

use super::GroupKey;

/// Bytes of the frame counter in front of a sealed frame.
pub const CTR_LEN: usize = 8;
/// Bytes of the authentication tag behind a sealed frame.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed frame adds.
pub const CRYPT_OVERHEAD: usize = CTR_LEN + TAG_LEN;

const FRAME_INFO: &[u8] = b"tutti frame key v1";

/// What a frame's authentication covers besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct FrameAad {
    /// Group id.
    pub group: u32,
    /// Stack id.
    pub stack: u16,
    /// View tag.
    pub view: u32,
    /// Sender rank.
    pub src: u16,
    /// Destination rank (0xFFFF: everyone).
    pub dst: u16,
    /// Sender's frame counter.
    pub ctr: u64,
}

impl FrameAad {
    fn nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..2].copy_from_slice(&self.src.to_be_bytes());
        n[4..].copy_from_slice(&self.ctr.to_be_bytes());
        n
    }

    fn bytes(&self) -> [u8; 14] {
        let mut b = [0u8; 14];
        b[..4].copy_from_slice(&self.group.to_be_bytes());
        b[4..6].copy_from_slice(&self.stack.to_be_bytes());
        b[6..10].copy_from_slice(&self.view.to_be_bytes());
        b[10..12].copy_from_slice(&self.src.to_be_bytes());
        b[12..14].copy_from_slice(&self.dst.to_be_bytes());
        b
    }
}

/// AES-256-GCM under `key` (ring's, with AES-NI and carry-less
/// multiplication where the CPU has them; constant-time otherwise).
pub(super) fn aes_gcm(key: &[u8; 32]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

/// Encrypts `buf` in place under `key`; returns the tag.
pub(super) fn seal_with(
    key: &LessSafeKey,
    nonce: [u8; 12],
    aad: &[u8],
    buf: &mut [u8],
) -> Option<[u8; TAG_LEN]> {
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
        .ok()?;
    tag.as_ref().try_into().ok()
}

/// Decrypts `buf` in place under `key` if `tag` authenticates it.
pub(super) fn open_with(
    key: &LessSafeKey,
    nonce: [u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> bool {
    let Ok(tag) = Tag::try_from(tag) else {
        return false;
    };
    key.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        tag,
        buf,
        0..,
    )
    .is_ok()
}

/// The AEAD of one view.
pub struct FrameKey {
    aead: Option<LessSafeKey>,
}

impl FrameKey {
    /// The frame key of group key `k` (derived, so that the group key
    /// itself never encrypts anything).
    pub fn new(k: &GroupKey) -> FrameKey {
        let hk = Hkdf::<Sha256>::new(None, k.bytes());
        let mut fk = [0u8; 32];
        // 32 bytes is far below HKDF-SHA-256's limit: this cannot fail.
        let _ = hk.expand(FRAME_INFO, &mut fk);
        FrameKey { aead: aes_gcm(&fk) }
    }

    /// Encrypts `buf` in place; returns the tag.
    pub fn seal(&self, aad: &FrameAad, buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        seal_with(self.aead.as_ref()?, aad.nonce(), &aad.bytes(), buf)
    }

    /// Decrypts `buf` in place if `tag` authenticates it; `false` (and
    /// `buf` unspecified) otherwise.
    pub fn open(&self, aad: &FrameAad, buf: &mut [u8], tag: &[u8]) -> bool {
        match &self.aead {
            Some(k) => open_with(k, aad.nonce(), &aad.bytes(), buf, tag),
            None => false,
        }
    }
}

/// Bits of the replay window: counters this far behind the newest are
/// refused (IPsec and WireGuard keep windows of this kind).
pub const WINDOW_BITS: u64 = 1024;

/// One sender's replay window: which of the last [`WINDOW_BITS`] counters
/// have been accepted.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// One past the highest counter accepted.
    top: u64,
    bits: [u64; (WINDOW_BITS / 64) as usize],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; (WINDOW_BITS / 64) as usize],
        }
    }
}

impl ReplayWindow {
    fn bit(ctr: u64) -> (usize, u64) {
        let i = ctr % WINDOW_BITS;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Whether `ctr` may be new: ahead of the window, or inside it and not
    /// yet accepted.
    pub fn fresh(&self, ctr: u64) -> bool {
        if ctr == u64::MAX {
            return false;
        }
        if ctr >= self.top {
            return true;
        }
        if self.top - ctr > WINDOW_BITS {
            return false;
        }
        let (w, b) = Self::bit(ctr);
        self.bits[w] & b == 0
    }

    /// Records `ctr` as accepted (after its frame authenticated).
    pub fn accept(&mut self, ctr: u64) {
        if ctr == u64::MAX {
            return;
        }
        if ctr >= self.top {
            // Clear the bits of the counters the window slides over.
            let slide = (ctr + 1 - self.top).min(WINDOW_BITS);
            for c in (ctr + 1 - slide)..=ctr {
                let (w, b) = Self::bit(c);
                self.bits[w] &= !b;
            }
            self.top = ctr + 1;
        }
        let (w, b) = Self::bit(ctr);
        self.bits[w] |= b;
    }
}
