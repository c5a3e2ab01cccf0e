#![no_main]
//! See blink::fuzz::injection.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::injection(data));
