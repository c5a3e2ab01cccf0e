//! Random (version 4) UUIDs for new messages, and their canonical text form.
//!
//! Message identity needs uniqueness, not secrecy: a fast PRNG seeded from the OS per thread keeps
//! the cost far below a system call per message.

use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<fastrand::Rng> = RefCell::new(fastrand::Rng::new());
}

/// A new random RFC 4122 version 4 UUID.
pub fn new_uuid() -> [u8; 16] {
    let mut bytes = RNG.with(|rng| rng.borrow_mut().u128(..)).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    bytes
}

/// `8-4-4-4-12` lower-case hex, as Hindsight prints a Uuid.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_bits_and_format() {
        let uuid = new_uuid();
        let text = format_uuid(&uuid);
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_uuid(), uuid);
        let fixed = [
            0x27, 0x15, 0x0d, 0xe5, 0x42, 0x08, 0x44, 0x2d, 0xa5, 0x9a, 0x1d, 0x80, 0x2a, 0xed,
            0xce, 0x38,
        ];
        assert_eq!(format_uuid(&fixed), "27150de5-4208-442d-a59a-1d802aedce38");
    }
}
