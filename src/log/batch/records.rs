//! Reading a stored batch's records (decompressing them if need be).

use bytes::Bytes;

use super::{BatchError, BatchHeader, Compression, HEADER_LEN, codec, verify};
use crate::varint;

/// A stored batch: its bytes (shared, never copied again) and parsed header.
#[derive(Debug, Clone)]
pub struct Batch {
    pub header: BatchHeader,
    pub bytes: Bytes,
}

impl Batch {
    /// Wraps bytes already checked by [`verify`].
    pub fn new(header: BatchHeader, bytes: Bytes) -> Self {
        Batch { header, bytes }
    }

    /// Parses and verifies a whole batch.
    pub fn parse(bytes: Bytes) -> Result<Self, BatchError> {
        let header = verify(&bytes)?;
        Ok(Batch { header, bytes })
    }

    /// The records, each borrowing from the batch's bytes (or, for a compressed batch, from its
    /// records decompressed once).
    pub fn records(&self) -> Result<RecordIter, BatchError> {
        let bytes = match self.header.compression() {
            Compression::None => self.bytes.slice(HEADER_LEN..),
            codec => Bytes::from(codec::decompress(codec, &self.bytes[HEADER_LEN..])?),
        };
        Ok(RecordIter {
            bytes,
            pos: 0,
            left: self.header.record_count.max(0) as usize,
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
        })
    }
}

/// One record of a batch with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    headers: Bytes,
    header_count: usize,
}

impl Record {
    /// The record's headers as (key, value) pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let mut pos = 0;
        let buf = &self.headers[..];
        (0..self.header_count).map_while(move |_| {
            let key = read_bytes(buf, &mut pos).ok()??;
            let value = read_bytes(buf, &mut pos).ok()?;
            Some((key, value))
        })
    }
}

/// Reads a zigzag-length-prefixed byte string (`-1` = null).
#[inline(always)]
fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = read_varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&e| e <= buf.len())
        .ok_or(BatchError::Malformed("record field runs past the record"))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(Some(bytes))
}

#[inline(always)]
fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    let (value, n) = varint::decode_zigzag(&buf[*pos..])
        .ok_or(BatchError::Malformed("truncated varint in record"))?;
    *pos += n;
    Ok(value)
}

/// Iterates the records of an uncompressed batch.
pub struct RecordIter {
    bytes: Bytes,
    pos: usize,
    left: usize,
    base_offset: i64,
    base_timestamp: i64,
}

impl RecordIter {
    /// Records not yet returned.
    pub fn remaining(&self) -> usize {
        self.left
    }

    fn read(&mut self) -> Result<Record, BatchError> {
        let buf = &self.bytes[..];
        let mut pos = self.pos;
        let len = read_varint(buf, &mut pos)?;
        let end = pos
            .checked_add(
                usize::try_from(len)
                    .map_err(|_| BatchError::Malformed("negative record length"))?,
            )
            .filter(|&e| e <= buf.len())
            .ok_or(BatchError::Malformed("record runs past the batch"))?;
        let body = &buf[..end];
        // The attributes byte: a record too short for it would leave `pos` past the body,
        // where the next read would slice out of bounds (found by fuzzing).
        if pos >= end {
            return Err(BatchError::Malformed("record shorter than its attributes"));
        }
        pos += 1;
        let timestamp_delta = read_varint(body, &mut pos)?;
        let offset_delta = read_varint(body, &mut pos)?;
        let slice = |b: Option<&[u8]>| b.map(|b| self.bytes.slice_ref(b));
        let key = slice(read_bytes(body, &mut pos)?);
        let value = slice(read_bytes(body, &mut pos)?);
        let header_count = read_varint(body, &mut pos)?;
        let header_count = usize::try_from(header_count)
            .map_err(|_| BatchError::Malformed("negative header count"))?;
        let headers_start = pos;
        for _ in 0..header_count {
            read_bytes(body, &mut pos)?.ok_or(BatchError::Malformed("null header key"))?;
            read_bytes(body, &mut pos)?;
        }
        if pos != end {
            return Err(BatchError::Malformed(
                "record length disagrees with its contents",
            ));
        }
        self.pos = end;
        Ok(Record {
            // Wrapping, as the timestamp: a hostile delta gives a wrong offset, not a panic.
            offset: self.base_offset.wrapping_add(offset_delta),
            timestamp: self.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers: self.bytes.slice(headers_start..end),
            header_count,
        })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let record = self.read();
        if record.is_err() {
            self.left = 0;
        }
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}
