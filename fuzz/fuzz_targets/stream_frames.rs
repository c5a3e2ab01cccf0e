#![no_main]
//! See blink::fuzz::stream_frames.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| blink::fuzz::stream_frames(data));
