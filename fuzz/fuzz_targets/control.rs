#![no_main]
//! See `tutti::fuzz::control`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tutti::fuzz::control(data));
