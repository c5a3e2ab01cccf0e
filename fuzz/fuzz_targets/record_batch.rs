#![no_main]
//! See blink::fuzz::record_batch.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::record_batch(data));
