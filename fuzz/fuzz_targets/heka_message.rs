#![no_main]
//! See blink::fuzz::heka_message.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::heka_message(data));
