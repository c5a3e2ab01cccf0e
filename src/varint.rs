//! Base-128 varints, the integer framing shared by protobuf (Heka messages) and Kafka records.
//!
//! Protobuf writes unsigned LEB128 (negative `int64`/`int32` become ten bytes); Kafka records use
//! the zigzag form so small negative numbers stay short. Decoders take a slice and return the value
//! with the number of bytes consumed, or `None` when the slice ends early or the varint is longer
//! than ten bytes: callers turn that into an error that names what they were reading.

/// Largest encoding of a 64-bit varint.
pub const MAX_LEN: usize = 10;

/// Decodes an unsigned varint from the start of `buf`.
#[inline]
pub fn decode_u64(buf: &[u8]) -> Option<(u64, usize)> {
    // Fast path: one byte, the common case for tags and short lengths.
    let first = *buf.first()?;
    if first < 0x80 {
        return Some((first as u64, 1));
    }
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(MAX_LEN).enumerate() {
        value |= ((byte & 0x7f) as u64) << (7 * i);
        if byte < 0x80 {
            if i == MAX_LEN - 1 && byte > 1 {
                return None; // more than 64 bits
            }
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes a zigzag varint (Kafka `varint`/`varlong`).
#[inline]
pub fn decode_zigzag(buf: &[u8]) -> Option<(i64, usize)> {
    let (raw, len) = decode_u64(buf)?;
    Some((unzigzag(raw), len))
}

/// Appends `value` as an unsigned varint.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `value` in zigzag form.
#[inline]
pub fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    put_u64(out, zigzag(value));
}

/// Number of bytes `put_u64(value)` writes.
#[inline]
pub fn len_u64(value: u64) -> usize {
    // Each byte carries 7 bits; a zero still takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Number of bytes `put_zigzag(value)` writes.
#[inline]
pub fn len_zigzag(value: i64) -> usize {
    len_u64(zigzag(value))
}

#[inline]
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
pub fn unzigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            put_u64(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(decode_u64(bytes), Some((value, bytes.len())));
            assert_eq!(len_u64(value), bytes.len());
        }
    }

    #[test]
    fn zigzag_matches_kafka() {
        // From the Kafka protocol guide: 0→0, -1→1, 1→2, -2→3.
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(decode_u64(&[]), None);
        assert_eq!(decode_u64(&[0x80]), None);
        assert_eq!(decode_u64(&[0xff; 10]), None);
        assert_eq!(
            decode_u64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
    }

    proptest! {
        #[test]
        fn round_trips(value: u64, signed: i64) {
            let mut out = Vec::new();
            put_u64(&mut out, value);
            prop_assert_eq!(out.len(), len_u64(value));
            prop_assert_eq!(decode_u64(&out), Some((value, out.len())));
            out.clear();
            put_zigzag(&mut out, signed);
            prop_assert_eq!(out.len(), len_zigzag(signed));
            prop_assert_eq!(decode_zigzag(&out), Some((signed, out.len())));
        }
    }
}
