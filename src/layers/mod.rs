//! The micro-protocol layers, one per file.

pub mod com;
pub mod crypt;
pub mod frag;
pub mod gms;
pub mod nak;
pub mod pass;
pub mod sign;
pub mod stable;
pub mod suspect;
pub mod token;
pub mod total;
pub mod xfer;

#[cfg(test)]
mod secure_tests;
#[cfg(test)]
mod tests;
