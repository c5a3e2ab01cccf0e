#![no_main]
//! See blink::fuzz::matcher.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::matcher(data));
