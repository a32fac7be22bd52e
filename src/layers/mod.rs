//! The micro-protocol layers, one per file.

pub mod com;
pub mod frag;
pub mod nak;
pub mod stable;

#[cfg(test)]
mod tests;
