//! The protobuf wire format, as far as Heka messages use it: key/value entries read one at a
//! time, with errors that say what and where.

use super::DecodeError;
use crate::varint;

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;

/// One protobuf key/value pair read from a buffer.
pub(super) struct Entry<'a> {
    pub tag: u64,
    pub wire_type: u8,
    /// Where the entry starts, from the start of the message.
    pub at: usize,
    /// The varint value for wire type 0, the 8 bytes for 1, the contents for 2.
    pub varint: u64,
    pub bytes: &'a [u8],
}

/// Reads the entry starting at `*pos` and advances past it.
#[inline(always)]
pub(super) fn next_entry<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Entry<'a>, DecodeError> {
    match read_entry(buf, *pos) {
        Some((entry, end)) => {
            *pos = end;
            Ok(entry)
        }
        None => Err(entry_error(buf, *pos)),
    }
}

/// The entry at `at` and where it ends, or `None` if it is malformed. Every message read goes
/// through here a dozen times, so it is kept small for inlining; the detailed error is worked
/// out separately ([`entry_error`]) in the rare case it is needed.
#[inline(always)]
pub(super) fn read_entry(buf: &[u8], at: usize) -> Option<(Entry<'_>, usize)> {
    let (key, n) = varint::decode_u64(buf.get(at..)?)?;
    let mut p = at + n;
    let wire_type = (key & 7) as u8;
    let mut entry = Entry {
        tag: key >> 3,
        wire_type,
        at,
        varint: 0,
        bytes: &[],
    };
    match wire_type {
        VARINT => {
            let (value, n) = varint::decode_u64(buf.get(p..)?)?;
            entry.varint = value;
            p += n;
        }
        FIXED64 => {
            entry.bytes = buf.get(p..p.checked_add(8)?)?;
            p += 8;
        }
        LEN => {
            let (len, n) = varint::decode_u64(buf.get(p..)?)?;
            p += n;
            let end = p.checked_add(usize::try_from(len).ok()?)?;
            entry.bytes = buf.get(p..end)?;
            p = end;
        }
        _ => return None,
    }
    Some((entry, p))
}

/// Why the entry at `at` cannot be read.
#[cold]
#[inline(never)]
pub(super) fn entry_error(buf: &[u8], at: usize) -> DecodeError {
    let Some((key, n)) = varint::decode_u64(&buf[at..]) else {
        return DecodeError::Truncated { what: "tag", at };
    };
    let p = at + n;
    let wire_type = (key & 7) as u8;
    let truncated = |what, at| DecodeError::Truncated { what, at };
    match wire_type {
        VARINT => truncated("varint", p),
        FIXED64 => truncated("fixed64", p),
        LEN => match varint::decode_u64(&buf[p..]) {
            None => truncated("length", p),
            Some(_) => truncated("length-delimited value", at),
        },
        _ => DecodeError::UnknownTag {
            tag: key >> 3,
            wire_type,
            at,
        },
    }
}

pub(super) fn expect(entry: &Entry, what: &'static str, wire_type: u8) -> Result<(), DecodeError> {
    if entry.wire_type == wire_type {
        return Ok(());
    }
    let expected = match wire_type {
        VARINT => "0 (varint)",
        FIXED64 => "1 (fixed64)",
        _ => "2 (length-delimited)",
    };
    Err(DecodeError::WireType {
        what,
        wire_type: entry.wire_type,
        expected,
        at: entry.at,
    })
}
