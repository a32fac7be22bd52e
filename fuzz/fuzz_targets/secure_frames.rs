#![no_main]
//! See `tutti::fuzz::secure_frames`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tutti::fuzz::secure_frames(data));
