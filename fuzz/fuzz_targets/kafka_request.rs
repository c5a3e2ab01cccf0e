#![no_main]
//! Request frames through the broker's whole request path (blink::fuzz::KafkaTarget).

use std::sync::OnceLock;

use blink::fuzz::KafkaTarget;
use libfuzzer_sys::fuzz_target;

static TARGET: OnceLock<(tempfile::TempDir, KafkaTarget)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (_, target) = TARGET.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let target = KafkaTarget::new(dir.path());
        (dir, target)
    });
    target.request(data);
});
