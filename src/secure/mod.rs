//! Secure groups: long-term identities, the list of authorized keys, and
//! the per-view group key.
//!
//! Each process holds one Ed25519 key pair. It signs membership control
//! frames with it (the `sign` layer), and the same key, mapped to
//! Curve25519, gives the X25519 static Diffie-Hellman secret under which a
//! coordinator seals each view's fresh group key for each member alone
//! (`gms`). The group key encrypts every frame of that view (`crypt`).
//! Nothing here is home-made cryptography: ring's AES-256-GCM, RustCrypto's
//! HKDF and SHA-256, and dalek's Ed25519 and X25519. (RustCrypto's
//! ChaCha20-Poly1305 was the first choice; it took about 1.9 us to seal a
//! 64-byte frame on this machine's AVX2 path, ring's AES-GCM 0.11 us.)
//!
//! Key files are text: a secret key file holds the 32-byte seed in hex, a
//! public key is 64 hex digits, and an authorized-keys file holds one
//! public key per line (`#` starts a comment).

mod frame;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

pub use frame::{FrameAad, FrameKey, ReplayWindow, CRYPT_OVERHEAD, CTR_LEN, TAG_LEN, WINDOW_BITS};

/// A member's long-term public key (Ed25519, 32 bytes).
pub type PubKey = [u8; 32];

/// Bytes of a signature trailer on a control frame: signer key, then
/// signature.
pub const SIG_LEN: usize = 32 + 64;

/// Bytes of a group key sealed for one member: nonce, key, tag.
pub const SEALED_LEN: usize = 12 + 32 + 16;

/// What went wrong with keys or key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureError(pub String);

impl fmt::Display for SecureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SecureError {}

/// A short printable form of a public key (first 8 bytes in hex).
pub fn short(k: &PubKey) -> String {
    hex(&k[..8])
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Parses 64 hex digits into 32 bytes.
pub fn parse_key_hex(s: &str) -> Result<[u8; 32], SecureError> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return Err(SecureError(format!(
            "a key is 64 hex digits, got {} characters",
            s.chars().count()
        )));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| SecureError(format!("not a hex key: {s}")))?;
    }
    Ok(out)
}

/// One process's long-term key pair.
pub struct Identity {
    seed: [u8; 32],
    sk: SigningKey,
    public: PubKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", short(&self.public))
    }
}

impl Identity {
    /// The key pair of a 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Identity {
        let sk = SigningKey::from_bytes(&seed);
        let public = sk.verifying_key().to_bytes();
        Identity { seed, sk, public }
    }

    /// A new random key pair.
    pub fn generate() -> Result<Identity, SecureError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| SecureError(format!("no randomness from the OS: {e}")))?;
        Ok(Identity::from_seed(seed))
    }

    /// Reads a secret key file (64 hex digits).
    pub fn load(path: &Path) -> Result<Identity, SecureError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecureError(format!("cannot read key file {}: {e}", path.display())))?;
        let seed = parse_key_hex(strip_comments(&text).next().unwrap_or(""))
            .map_err(|e| SecureError(format!("key file {}: {e}", path.display())))?;
        Ok(Identity::from_seed(seed))
    }

    /// The secret key file's contents.
    pub fn secret_hex(&self) -> String {
        hex(&self.seed)
    }

    /// The public key.
    pub fn public(&self) -> PubKey {
        self.public
    }

    /// Signs the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 64] {
        self.sk.sign(&concat(parts)).to_bytes()
    }

    /// X25519 shared secret with `peer` (both keys mapped from Ed25519),
    /// `None` for a peer key that is not a valid point or gives a
    /// low-order result.
    fn dh(&self, peer: &PubKey) -> Option<[u8; 32]> {
        let vk = VerifyingKey::from_bytes(peer).ok()?;
        let shared = x25519_dalek::x25519(self.sk.to_scalar_bytes(), vk.to_montgomery().to_bytes());
        if shared == [0u8; 32] {
            return None;
        }
        Some(shared)
    }
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

fn strip_comments(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
}

/// Reads an authorized-keys file: one public key (64 hex digits) per line.
pub fn load_authorized(path: &Path) -> Result<Vec<PubKey>, SecureError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SecureError(format!(
            "cannot read authorized keys {}: {e}",
            path.display()
        ))
    })?;
    strip_comments(&text)
        .enumerate()
        .map(|(i, l)| {
            parse_key_hex(l).map_err(|e| {
                SecureError(format!(
                    "authorized keys {}, key {}: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// A view's group key (32 bytes). Its `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey(Arc<[u8; 32]>);

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

impl GroupKey {
    /// A key from its bytes (a pre-shared key for a static view, tests).
    pub fn from_bytes(b: [u8; 32]) -> GroupKey {
        GroupKey(Arc::new(b))
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// What binds a sealed group key to one view and one member.
#[derive(Clone, Copy, Debug)]
pub struct SealFor {
    /// Group id.
    pub group: u32,
    /// View: logical time.
    pub ltime: u64,
    /// View: coordinator id.
    pub vcoord: u64,
    /// The member the key is sealed for.
    pub member: u64,
}

impl SealFor {
    fn info(&self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[..4].copy_from_slice(&self.group.to_be_bytes());
        b[4..12].copy_from_slice(&self.ltime.to_be_bytes());
        b[12..20].copy_from_slice(&self.vcoord.to_be_bytes());
        b[20..].copy_from_slice(&self.member.to_be_bytes());
        b
    }
}

/// Domain separation of control-frame signatures.
pub const SIGN_DOMAIN: &[u8] = b"tutti control frame v1";
const SEAL_SALT: &[u8] = b"tutti view key seal v1";
const ENTROPY_DOMAIN: &[u8] = b"tutti entropy v1";

/// A process's security configuration: its identity, the keys allowed in
/// the group, and a generator of fresh group keys. Shared by the `sign`,
/// `crypt` and `gms` layers of every secure stack of the process.
pub struct Secure {
    id: Identity,
    authorized: Vec<(PubKey, VerifyingKey)>,
    seed: [u8; 32],
    drawn: AtomicU64,
    /// X25519 secrets shared with authorized keys, computed once (they
    /// do not change from view to view; bounded by the authorized list).
    shared: Mutex<HashMap<PubKey, [u8; 32]>>,
}

impl fmt::Debug for Secure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secure({:?}, {} authorized)",
            self.id,
            self.authorized.len()
        )
    }
}

impl PartialEq for Secure {
    fn eq(&self, other: &Secure) -> bool {
        self.id.public == other.id.public
            && self
                .authorized
                .iter()
                .map(|a| a.0)
                .eq(other.authorized.iter().map(|a| a.0))
    }
}

impl Eq for Secure {}

impl Secure {
    /// `id` in a group whose members must hold one of `authorized` (which
    /// may or may not list `id` itself: a process whose own key is not
    /// listed is refused by the others). Draws a seed for group keys from
    /// the OS.
    pub fn new(id: Identity, authorized: &[PubKey]) -> Result<Secure, SecureError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| SecureError(format!("no randomness from the OS: {e}")))?;
        Secure::with_seed(id, authorized, seed)
    }

    /// Like [`Secure::new`] with a given seed for group keys (the
    /// simulator, which must replay runs exactly).
    pub fn with_seed(
        id: Identity,
        authorized: &[PubKey],
        seed: [u8; 32],
    ) -> Result<Secure, SecureError> {
        if authorized.is_empty() {
            return Err(SecureError(
                "no authorized keys: nobody could join the group".into(),
            ));
        }
        let mut list = Vec::with_capacity(authorized.len());
        for k in authorized {
            let vk = VerifyingKey::from_bytes(k).map_err(|_| {
                SecureError(format!("authorized key {} is not an Ed25519 key", hex(k)))
            })?;
            if !list.iter().any(|(p, _)| p == k) {
                list.push((*k, vk));
            }
        }
        Ok(Secure {
            id,
            authorized: list,
            seed,
            drawn: AtomicU64::new(0),
            shared: Mutex::new(HashMap::new()),
        })
    }

    /// This process's public key.
    pub fn public(&self) -> PubKey {
        self.id.public
    }

    /// This process's identity.
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Whether `k` may be a member.
    pub fn is_authorized(&self, k: &PubKey) -> bool {
        self.authorized.iter().any(|(p, _)| p == k)
    }

    /// Checks `sig` by `k` over the concatenation of `parts`. Strict
    /// verification (no malleable signatures, no small-order keys).
    pub fn verify(&self, k: &PubKey, parts: &[&[u8]], sig: &[u8; 64]) -> bool {
        let parsed;
        let vk = match self.authorized.iter().find(|(p, _)| p == k) {
            Some((_, vk)) => vk,
            None => match VerifyingKey::from_bytes(k) {
                Ok(v) => {
                    parsed = v;
                    &parsed
                }
                Err(_) => return false,
            },
        };
        vk.verify_strict(&concat(parts), &Signature::from_bytes(sig))
            .is_ok()
    }

    /// 32 bytes nobody else can predict: SHA-256 of the secret seed and a
    /// counter.
    fn draw(&self) -> [u8; 32] {
        let n = self.drawn.fetch_add(1, Ordering::Relaxed);
        let mut h = Sha256::new();
        h.update(ENTROPY_DOMAIN);
        h.update(self.seed);
        h.update(n.to_be_bytes());
        h.finalize().into()
    }

    /// A fresh group key.
    pub fn fresh_key(&self) -> GroupKey {
        GroupKey::from_bytes(self.draw())
    }

    /// The X25519 secret shared with `peer`, cached for authorized keys.
    fn shared_with(&self, peer: &PubKey) -> Option<[u8; 32]> {
        if let Some(s) = self.shared.lock().ok().and_then(|m| m.get(peer).copied()) {
            return Some(s);
        }
        let s = self.id.dh(peer)?;
        if self.is_authorized(peer) {
            if let Ok(mut m) = self.shared.lock() {
                m.insert(*peer, s);
            }
        }
        Some(s)
    }

    fn kek(&self, peer: &PubKey, at: &SealFor) -> Option<ring::aead::LessSafeKey> {
        let shared = self.shared_with(peer)?;
        let hk = Hkdf::<Sha256>::new(Some(SEAL_SALT), &shared);
        let mut k = [0u8; 32];
        hk.expand(&at.info(), &mut k).ok()?;
        frame::aes_gcm(&k)
    }

    /// Seals `key` for the member holding `member_key`: only that member
    /// (and this process) can open it. `None` when `member_key` is not a
    /// usable key.
    pub fn seal(&self, key: &GroupKey, member_key: &PubKey, at: &SealFor) -> Option<Vec<u8>> {
        let aead = self.kek(member_key, at)?;
        let nonce: [u8; 12] = self.draw()[..12].try_into().ok()?;
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key.bytes());
        let tag = frame::seal_with(&aead, nonce, &at.info(), &mut out[12..])?;
        out.extend_from_slice(&tag);
        Some(out)
    }

    /// Opens a key sealed for this process by the holder of `sealer`.
    pub fn open(&self, sealed: &[u8], sealer: &PubKey, at: &SealFor) -> Option<GroupKey> {
        if sealed.len() != SEALED_LEN {
            return None;
        }
        let aead = self.kek(sealer, at)?;
        let mut k: [u8; 32] = sealed[12..44].try_into().ok()?;
        let nonce: [u8; 12] = sealed[..12].try_into().ok()?;
        if !frame::open_with(&aead, nonce, &at.info(), &mut k, &sealed[44..]) {
            return None;
        }
        Some(GroupKey::from_bytes(k))
    }
}

#[cfg(test)]
mod tests;
