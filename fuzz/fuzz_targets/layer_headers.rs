#![no_main]
//! See `tutti::fuzz::layer_headers`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tutti::fuzz::layer_headers(data));
