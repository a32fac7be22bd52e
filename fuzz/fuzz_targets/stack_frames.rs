#![no_main]
//! See `tutti::fuzz::stack_frames`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tutti::fuzz::stack_frames(data));
