//! Building a batch: records written straight into the output buffer, the header filled in at
//! the end.

use super::{CRC_AT, HEADER_LEN, LOG_OVERHEAD, MAGIC_AT, compute_crc};
use crate::varint;

/// Builds one uncompressed batch, records written straight into the output buffer.
///
/// The header is reserved up front and filled in by [`BatchBuilder::finish`], so adding a record
/// costs its own bytes and a few varints: no per-record allocation.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::with_capacity(16 * 1024)
    }

    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_LEN));
        buf.resize(HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Bytes the batch would have if finished now.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Size a record of this shape adds to a batch (an upper bound: the timestamp delta is at most
    /// ten bytes).
    pub fn record_len_bound(key_len: Option<usize>, value_len: usize) -> usize {
        let body = 1 + varint::MAX_LEN + 5 + 5 + key_len.unwrap_or(0) + 5 + value_len + 1;
        body + 5
    }

    /// Appends a record with no headers. `timestamp` is Kafka's: milliseconds since the epoch.
    pub fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: &[u8]) {
        self.push_with_headers(timestamp, key, Some(value), &[]);
    }

    /// Appends a record with no key or headers whose `value_len`-byte value `write` encodes in
    /// place, so a message is serialized straight into the batch.
    pub fn push_encoded(
        &mut self,
        timestamp: i64,
        value_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let offset_delta = self.count as i64;
        let body_len = 1
            + varint::len_zigzag(timestamp_delta)
            + varint::len_zigzag(offset_delta)
            + 1
            + varint::len_zigzag(value_len as i64)
            + value_len
            + 1;
        let buf = &mut self.buf;
        buf.reserve(body_len + 5);
        varint::put_zigzag(buf, body_len as i64);
        buf.push(0);
        varint::put_zigzag(buf, timestamp_delta);
        varint::put_zigzag(buf, offset_delta);
        buf.push(1); // key: null
        varint::put_zigzag(buf, value_len as i64);
        let before = buf.len();
        write(buf);
        assert_eq!(
            buf.len() - before,
            value_len,
            "encoder wrote the length it announced"
        );
        buf.push(0); // no headers
        self.count += 1;
    }

    /// Appends a record; `value` None is a Kafka null value (a tombstone).
    pub fn push_with_headers(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let offset_delta = self.count as i64;
        let bytes_len = |b: Option<&[u8]>| {
            b.map_or(varint::len_zigzag(-1), |b| {
                varint::len_zigzag(b.len() as i64) + b.len()
            })
        };
        let body_len = 1
            + varint::len_zigzag(timestamp_delta)
            + varint::len_zigzag(offset_delta)
            + bytes_len(key)
            + bytes_len(value)
            + varint::len_zigzag(headers.len() as i64)
            + headers
                .iter()
                .map(|(k, v)| bytes_len(Some(k)) + bytes_len(*v))
                .sum::<usize>();
        let buf = &mut self.buf;
        varint::put_zigzag(buf, body_len as i64);
        buf.push(0); // record attributes: unused
        varint::put_zigzag(buf, timestamp_delta);
        varint::put_zigzag(buf, offset_delta);
        let put_bytes = |buf: &mut Vec<u8>, b: Option<&[u8]>| match b {
            Some(b) => {
                varint::put_zigzag(buf, b.len() as i64);
                buf.extend_from_slice(b);
            }
            None => varint::put_zigzag(buf, -1),
        };
        put_bytes(buf, key);
        put_bytes(buf, value);
        varint::put_zigzag(buf, headers.len() as i64);
        for (k, v) in headers {
            put_bytes(buf, Some(k));
            put_bytes(buf, *v);
        }
        self.count += 1;
    }

    /// Completes the header (base offset 0; the log writes the real one) and CRC, and resets the
    /// builder for the next batch, keeping its buffer's capacity for reuse by the caller.
    pub fn finish(&mut self) -> Vec<u8> {
        let capacity = self.buf.capacity();
        let mut buf = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
        self.buf.resize(HEADER_LEN, 0);
        let count = std::mem::take(&mut self.count);
        let max_timestamp = std::mem::replace(&mut self.max_timestamp, i64::MIN);
        let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
        buf[0..8].copy_from_slice(&0i64.to_be_bytes());
        buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
        buf[12..16].copy_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        buf[MAGIC_AT] = 2;
        buf[21..23].copy_from_slice(&0i16.to_be_bytes()); // attributes: no compression, create time
        buf[23..27].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        buf[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        let max_timestamp = if count == 0 {
            self.base_timestamp
        } else {
            max_timestamp
        };
        buf[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        buf[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id: none
        buf[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        buf[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = compute_crc(&buf);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        buf
    }
}
