#![no_main]
//! See blink::fuzz::json_document.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::json_document(data));
