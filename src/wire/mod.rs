//! Wire formats: the frame header and every layer's header, encoded and
//! decoded through checked views over byte slices.
//!
//! Contract (as in smoltcp): bytes from the network are untrusted. They are
//! read only through [`Reader`] or a type's `parse`/`new_checked`, which
//! check lengths before touching a field, so a decoder can reject a frame
//! but can never panic or read out of bounds. Every rejection says why
//! ([`WireError::reason`]) and maps to a drop counter
//! ([`WireError::drop_reason`]). All integers are big-endian.

pub mod com;
pub mod fast;
pub mod frag;
pub mod nak;
pub mod stable;

use std::fmt;

use crate::layer::DropReason;

/// Why bytes were rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header or body needs.
    Truncated,
    /// Not a tutti frame.
    BadMagic,
    /// Unsupported version.
    BadVersion,
    /// Reserved bits set.
    Reserved,
    /// Unknown header type.
    UnknownTag(u8),
    /// A field that cannot hold this value; names the field.
    BadField(&'static str),
    /// Bytes left over after a fixed-size body.
    Trailing,
}

impl WireError {
    /// Human-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadMagic => "bad magic",
            WireError::BadVersion => "unsupported version",
            WireError::Reserved => "reserved bits set",
            WireError::UnknownTag(_) => "unknown header type",
            WireError::BadField(f) => f,
            WireError::Trailing => "trailing bytes",
        }
    }

    /// The drop counter this rejection is counted under.
    pub fn drop_reason(&self) -> DropReason {
        match self {
            WireError::Truncated => DropReason::Truncated,
            WireError::BadMagic => DropReason::BadMagic,
            WireError::BadVersion => DropReason::BadVersion,
            WireError::Reserved => DropReason::Reserved,
            WireError::UnknownTag(_) => DropReason::UnknownTag,
            WireError::BadField(_) | WireError::Trailing => DropReason::BadField,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::UnknownTag(t) => write!(f, "unknown header type {t}"),
            WireError::BadField(name) => write!(f, "bad field: {name}"),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for WireError {}

/// Bounds-checked cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// Big-endian u16.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Big-endian u32.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Big-endian u64.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Fails unless every byte was consumed.
    #[inline]
    pub fn finish(&self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::Trailing)
        }
    }
}

/// Cursor that writes into a buffer sized exactly by the caller (from a
/// header's `len()`), so running past its end is a bug in this crate, not
/// something input can cause.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }

    /// Writes bytes.
    #[inline]
    pub fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    /// Writes one byte.
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    /// Writes a big-endian u16.
    #[inline]
    pub fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    /// Writes a big-endian u32.
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// Writes a big-endian u64.
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// Bytes written.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests;
