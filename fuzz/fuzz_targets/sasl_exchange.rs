#![no_main]
//! See blink::fuzz::sasl_exchange.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::sasl_exchange(data));
