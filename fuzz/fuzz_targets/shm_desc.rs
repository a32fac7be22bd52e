#![no_main]
//! See `tutti::fuzz::shm_desc`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tutti::fuzz::shm_desc(data));
