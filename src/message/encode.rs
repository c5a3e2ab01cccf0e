//! Protobuf encoding of owned Heka messages.
//!
//! Lengths are computed arithmetically before anything is written, so a message is encoded in a
//! single pass straight into the caller's buffer with no temporary buffer per field. Single
//! numeric values are written unpacked and arrays packed, as lua_sandbox does; both forms decode.

use super::{Field, FieldValues, Message, ValueType};
use crate::varint::{len_u64, put_u64};

/// A protobuf field key: tag and wire type.
pub(crate) fn key(tag: u64, wire_type: u64) -> u64 {
    (tag << 3) | wire_type
}

fn len_bytes_entry(len: usize) -> usize {
    1 + len_u64(len as u64) + len
}

/// A length-delimited field.
pub(crate) fn put_bytes(out: &mut Vec<u8>, tag: u64, bytes: &[u8]) {
    put_u64(out, key(tag, 2));
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A varint field.
pub(crate) fn put_varint(out: &mut Vec<u8>, tag: u64, value: u64) {
    put_u64(out, key(tag, 0));
    put_u64(out, value);
}

impl Field {
    /// Size of the packed run or of the repeated entries holding the values.
    fn values_len(&self) -> usize {
        match &self.values {
            FieldValues::String(v) | FieldValues::Bytes(v) => {
                v.iter().map(|b| len_bytes_entry(b.len())).sum()
            }
            FieldValues::Integer(v) => {
                packed_or_single(v.iter().map(|&i| len_u64(i as u64)).sum(), v.len())
            }
            FieldValues::Double(v) => packed_or_single(8 * v.len(), v.len()),
            FieldValues::Bool(v) => packed_or_single(v.len(), v.len()),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = len_bytes_entry(self.name.len());
        if self.values.value_type() != ValueType::String {
            len += 2;
        }
        if let Some(r) = &self.representation {
            len += len_bytes_entry(r.len());
        }
        len + self.values_len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, &self.name);
        let value_type = self.values.value_type();
        if value_type != ValueType::String {
            put_varint(out, 2, value_type as u64);
        }
        if let Some(r) = &self.representation {
            put_bytes(out, 3, r);
        }
        let tag = 4 + value_type as u64;
        match &self.values {
            FieldValues::String(v) | FieldValues::Bytes(v) => {
                v.iter().for_each(|b| put_bytes(out, tag, b));
            }
            FieldValues::Integer(v) => put_numbers(
                out,
                tag,
                v,
                |out, &i| put_u64(out, i as u64),
                |&i| len_u64(i as u64),
            ),
            FieldValues::Double(v) => {
                if let [single] = v.as_slice() {
                    put_u64(out, key(tag, 1));
                    out.extend_from_slice(&single.to_le_bytes());
                } else if !v.is_empty() {
                    put_u64(out, key(tag, 2));
                    put_u64(out, 8 * v.len() as u64);
                    v.iter()
                        .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
                }
            }
            FieldValues::Bool(v) => put_numbers(out, tag, v, |out, &b| out.push(b as u8), |_| 1),
        }
    }
}

/// Length of numeric values: one unpacked entry (key + value), or key + length + packed run.
fn packed_or_single(payload: usize, count: usize) -> usize {
    match count {
        0 => 0,
        1 => 1 + payload,
        _ => 1 + len_u64(payload as u64) + payload,
    }
}

fn put_numbers<T>(
    out: &mut Vec<u8>,
    tag: u64,
    values: &[T],
    put: impl Fn(&mut Vec<u8>, &T),
    len: impl Fn(&T) -> usize,
) {
    match values {
        [] => {}
        [single] => {
            put_u64(out, key(tag, 0));
            put(out, single);
        }
        many => {
            put_u64(out, key(tag, 2));
            put_u64(out, many.iter().map(&len).sum::<usize>() as u64);
            many.iter().for_each(|v| put(out, v));
        }
    }
}

impl Message {
    /// Exact size of the protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        let opt = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, |b| len_bytes_entry(b.len()));
        let int = |i: Option<i32>| i.map_or(0, |i| 1 + len_u64(i as i64 as u64));
        len_bytes_entry(16)
            + 1
            + len_u64(self.timestamp as u64)
            + opt(&self.r#type)
            + opt(&self.logger)
            + int(self.severity)
            + opt(&self.payload)
            + opt(&self.env_version)
            + int(self.pid)
            + opt(&self.hostname)
            + self
                .fields
                .iter()
                .map(|f| len_bytes_entry(f.encoded_len()))
                .sum::<usize>()
    }

    /// Appends the protobuf encoding to `out` (callers size `out`: the length is known to
    /// them, and walking the fields again here would double the hot path's work).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, &self.uuid);
        put_varint(out, 2, self.timestamp as u64);
        let opt = |out: &mut Vec<u8>, tag, b: &Option<Vec<u8>>| {
            if let Some(b) = b {
                put_bytes(out, tag, b);
            }
        };
        opt(out, 3, &self.r#type);
        opt(out, 4, &self.logger);
        if let Some(s) = self.severity {
            put_varint(out, 5, s as i64 as u64);
        }
        opt(out, 6, &self.payload);
        opt(out, 7, &self.env_version);
        if let Some(p) = self.pid {
            put_varint(out, 8, p as i64 as u64);
        }
        opt(out, 9, &self.hostname);
        for field in &self.fields {
            put_u64(out, key(10, 2));
            put_u64(out, field.encoded_len() as u64);
            field.encode(out);
        }
    }

    /// The protobuf encoding as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}
