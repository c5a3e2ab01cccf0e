#![no_main]
//! See blink::fuzz::plugin_config.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::plugin_config(data));
