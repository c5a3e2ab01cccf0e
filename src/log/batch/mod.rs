//! Kafka RecordBatch v2 (magic 2): the unit the log stores and Fetch serves.
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records…
//! ```
//! All integers big-endian; `batchLength` counts the bytes after itself; the CRC-32C covers
//! everything from `attributes` to the end, so the base offset can be written in without touching
//! it. Records are varint-framed (see [`Record`]). This module is pure: bytes in, values out.

mod builder;
mod records;

pub use builder::BatchBuilder;
pub use records::{Batch, Record, RecordIter};

pub use super::codec::Compression;
use super::codec::{self, CodecError};

/// Bytes before the first record.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s count starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Why bytes are not a usable record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
    #[error("record batch has magic {0}; only magic 2 (Kafka ≥ 0.11) is supported")]
    Magic(i8),
    #[error("record batch length {0} is impossible")]
    Length(i32),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("record batch is malformed: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// The fixed-size header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf[at..at + N]
        .try_into()
        .expect("caller checked the header length")
}

impl BatchHeader {
    /// Reads the header at the start of `buf` and checks magic and length (not the CRC).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                have: buf.len(),
                need: HEADER_LEN,
            });
        }
        let header = BatchHeader {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length: i32::from_be_bytes(be(buf, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(be(buf, CRC_AT)),
            attributes: i16::from_be_bytes(be(buf, ATTRIBUTES_AT)),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)),
            base_timestamp: i64::from_be_bytes(be(buf, 27)),
            max_timestamp: i64::from_be_bytes(be(buf, 35)),
            producer_id: i64::from_be_bytes(be(buf, 43)),
            producer_epoch: i16::from_be_bytes(be(buf, 51)),
            base_sequence: i32::from_be_bytes(be(buf, 53)),
            record_count: i32::from_be_bytes(be(buf, 57)),
        };
        if header.magic != 2 {
            return Err(BatchError::Magic(header.magic));
        }
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Length(header.batch_length));
        }
        Ok(header)
    }

    /// Bytes the whole batch occupies.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset one past the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// CRC-32C of a whole batch's checked region, as stored in its header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks a complete batch (header, length and CRC) and returns its header.
pub fn verify(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() != header.total_len() {
        return Err(BatchError::Truncated {
            have: batch.len(),
            need: header.total_len(),
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::Crc {
            stored: header.crc,
            computed,
        });
    }
    if header.last_offset_delta < 0 || header.record_count < 0 {
        return Err(BatchError::Malformed(
            "negative record count or offset delta",
        ));
    }
    Ok(header)
}

/// The same batch with its records decompressed: the codec bits cleared, length and CRC
/// recomputed; offsets, timestamps, producer id and sequence are unchanged.
pub fn decompressed(header: &BatchHeader, batch: &[u8]) -> Result<Vec<u8>, BatchError> {
    let records = codec::decompress(header.compression(), &batch[HEADER_LEN..])?;
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&records);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::Malformed("decompressed batch is larger than 2 GiB"))?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = header.attributes & !0x7;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Writes `offset` as the batch's base offset (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[..8].copy_from_slice(&offset.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    #[test]
    fn builds_a_valid_batch() {
        let mut builder = BatchBuilder::new();
        builder.push(1000, Some(b"k"), b"v1");
        builder.push(999, None, b"v2");
        builder.push_with_headers(1005, None, None, &[(b"h", Some(b"x")), (b"n", None)]);
        let mut bytes = builder.finish();
        assert!(builder.is_empty());
        set_base_offset(&mut bytes, 40);
        let batch = Batch::parse(Bytes::from(bytes)).unwrap();
        assert_eq!(batch.header.base_offset, 40);
        assert_eq!(batch.header.record_count, 3);
        assert_eq!(batch.header.last_offset(), 42);
        assert_eq!(batch.header.base_timestamp, 1000);
        assert_eq!(batch.header.max_timestamp, 1005);
        assert_eq!(batch.header.producer_id, -1);
        let records: Vec<Record> = batch.records().unwrap().map(Result::unwrap).collect();
        assert_eq!(records[0].offset, 40);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[1].timestamp, 999);
        assert_eq!(records[1].key, None);
        assert_eq!(records[2].value, None);
        let headers: Vec<_> = records[2].headers().collect();
        assert_eq!(headers, [(&b"h"[..], Some(&b"x"[..])), (&b"n"[..], None)]);
    }

    /// A batch from the Kafka protocol guide's layout, written out by hand: one record, key null,
    /// value "a", timestamp 0, base offset 0.
    #[test]
    fn reads_a_hand_written_batch() {
        let record: &[u8] = &[
            0x0e, // length 7 (zigzag)
            0x00, // attributes
            0x00, // timestamp delta 0
            0x00, // offset delta 0
            0x01, // key length -1
            0x02, b'a', // value length 1, "a"
            0x00, // no headers
        ];
        let mut batch = Vec::new();
        batch.extend_from_slice(&0i64.to_be_bytes());
        batch.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + record.len()) as i32).to_be_bytes());
        batch.extend_from_slice(&0i32.to_be_bytes());
        batch.push(2);
        batch.extend_from_slice(&[0; 4]); // crc, below
        batch.extend_from_slice(&0i16.to_be_bytes());
        batch.extend_from_slice(&0i32.to_be_bytes());
        batch.extend_from_slice(&0i64.to_be_bytes());
        batch.extend_from_slice(&0i64.to_be_bytes());
        batch.extend_from_slice(&(-1i64).to_be_bytes());
        batch.extend_from_slice(&(-1i16).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.extend_from_slice(&1i32.to_be_bytes());
        batch.extend_from_slice(record);
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());

        let mut builder = BatchBuilder::new();
        builder.push(0, None, b"a");
        assert_eq!(builder.finish(), batch, "the builder writes the same bytes");
        let parsed = Batch::parse(Bytes::from(batch)).unwrap();
        let rec = parsed.records().unwrap().next().unwrap().unwrap();
        assert_eq!(rec.value.as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn detects_corruption() {
        let mut builder = BatchBuilder::new();
        builder.push(5, None, b"payload");
        let good = builder.finish();
        for i in ATTRIBUTES_AT..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(verify(&bad), Err(BatchError::Crc { .. })),
                "flip at {i}"
            );
        }
        let mut bad = good.clone();
        bad[MAGIC_AT] = 1;
        assert_eq!(verify(&bad), Err(BatchError::Magic(1)));
        assert!(matches!(
            verify(&good[..good.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut compressed = good.clone();
        compressed[22] |= 2;
        let crc = compute_crc(&compressed);
        compressed[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse(Bytes::from(compressed)).unwrap();
        assert!(matches!(
            batch.records(),
            Err(BatchError::Codec(CodecError::Failed {
                codec: Compression::Snappy,
                ..
            }))
        ));
    }

    #[test]
    fn a_compressed_batch_reads_like_the_plain_one_and_decompresses_to_it() {
        let mut builder = BatchBuilder::new();
        for i in 0..50i64 {
            builder.push(
                1_700_000_000_000 + i,
                Some(b"k"),
                format!("value {i}").as_bytes(),
            );
        }
        let mut plain = builder.finish();
        set_base_offset(&mut plain, 100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain[HEADER_LEN..]).unwrap();
        let mut gzip = plain[..HEADER_LEN].to_vec();
        gzip.extend_from_slice(&gz.finish().unwrap());
        let length = (gzip.len() - LOG_OVERHEAD) as i32;
        gzip[8..12].copy_from_slice(&length.to_be_bytes());
        gzip[ATTRIBUTES_AT + 1] |= 1;
        let crc = compute_crc(&gzip);
        gzip[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());

        let read = |bytes: &[u8]| -> Vec<Record> {
            Batch::parse(Bytes::copy_from_slice(bytes))
                .unwrap()
                .records()
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(read(&gzip), read(&plain));
        let header = verify(&gzip).unwrap();
        assert_eq!(header.compression(), Compression::Gzip);
        assert_eq!(decompressed(&header, &gzip).unwrap(), plain);
    }

    proptest! {
        #[test]
        fn round_trip(
            records in proptest::collection::vec(
                (any::<i64>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))),
                1..20),
            base in 0i64..1 << 40,
        ) {
            let mut builder = BatchBuilder::new();
            for (ts, key, value) in &records {
                builder.push_with_headers(*ts, key.as_deref(), value.as_deref(), &[]);
            }
            let mut bytes = builder.finish();
            set_base_offset(&mut bytes, base);
            let batch = Batch::parse(Bytes::from(bytes)).unwrap();
            prop_assert_eq!(batch.header.base_timestamp, records[0].0);
            let read: Vec<Record> = batch.records().unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(read.len(), records.len());
            for (i, (rec, (ts, key, value))) in read.iter().zip(&records).enumerate() {
                prop_assert_eq!(rec.offset, base + i as i64);
                prop_assert_eq!(rec.timestamp, *ts);
                prop_assert_eq!(rec.key.as_deref(), key.as_deref());
                prop_assert_eq!(rec.value.as_deref(), value.as_deref());
            }
        }
    }
}
