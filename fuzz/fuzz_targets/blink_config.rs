#![no_main]
//! See blink::fuzz::blink_config.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::blink_config(data));
