#![no_main]
//! See `tutti::fuzz::com_header`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tutti::fuzz::com_header(data));
