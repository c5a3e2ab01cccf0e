//! Decompression of a batch's records, for the codecs Kafka producers use.
//!
//! Batches are stored as producers send them; Blink decompresses only where it must read the
//! records itself: checking what is produced into its queues, and plugins reading a user topic
//! (the `kafka` module's consumer). Each codec is Kafka's framing of it:
//! - gzip: a gzip stream;
//! - snappy: the Java client's xerial framing (`\x82SNAPPY\0`, then length-prefixed blocks) or, as
//!   librdkafka writes it, one raw snappy block;
//! - lz4: an LZ4 frame;
//! - zstd: a zstd frame.

use std::io::Read;

/// Compression codec, attributes bits 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    Unknown(u8),
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Gzip => f.write_str("gzip"),
            Compression::Snappy => f.write_str("snappy"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd => f.write_str("zstd"),
            Compression::Unknown(c) => write!(f, "unknown codec {c}"),
        }
    }
}

impl Compression {
    /// The codec a batch's attributes name (bits 0–2).
    pub fn from_attributes(attributes: i16) -> Self {
        match attributes & 0x7 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            c => Compression::Unknown(c as u8),
        }
    }
}

/// Why a batch's records could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record batch is compressed with {0}, which Kafka does not define")]
    Unknown(Compression),
    #[error("record batch does not decompress ({codec}): {reason}")]
    Failed { codec: Compression, reason: String },
}

/// Most bytes one batch's records may decompress to: a small batch inflating to gigabytes (a
/// compression bomb) is refused instead of exhausting memory.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

/// xerial snappy framing: magic, then version and compatible-version (4 bytes each).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// The records section of a batch compressed with `codec`, decompressed.
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    decompress_at_most(codec, data, MAX_DECOMPRESSED)
}

fn decompress_at_most(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), codec, limit),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), codec, limit),
        Compression::Zstd => {
            let mut source = data;
            let decoder = ruzstd::decoding::StreamingDecoder::new(&mut source).map_err(|e| {
                CodecError::Failed {
                    codec,
                    reason: e.to_string(),
                }
            })?;
            read_bounded(decoder, codec, limit)
        }
        Compression::Snappy => {
            snappy(data, limit).map_err(|reason| CodecError::Failed { codec, reason })
        }
        Compression::Unknown(_) => Err(CodecError::Unknown(codec)),
    }
}

fn read_bounded(
    reader: impl Read,
    codec: Compression,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Failed {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(CodecError::Failed {
            codec,
            reason: too_large(limit),
        });
    }
    Ok(out)
}

fn too_large(limit: usize) -> String {
    format!("it decompresses to more than {limit} bytes")
}

fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        if out.len() + len > limit {
            return Err(too_large(limit));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or("xerial snappy header is cut short")?;
    while !rest.is_empty() {
        let (len, after) = rest
            .split_first_chunk::<4>()
            .ok_or("xerial snappy block length is cut short")?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = after.get(..len).ok_or("xerial snappy block is cut short")?;
        raw(block, &mut out)?;
        rest = &after[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..10_000u32)
            .flat_map(|i| format!("record {i} ").into_bytes())
            .collect()
    }

    #[test]
    fn every_codec_decompresses_what_its_encoder_wrote() {
        let data = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gzip = gz.finish().unwrap();
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for chunk in data.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&data).unwrap();
        let lz4 = lz.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (codec, bytes) in [
            (Compression::Gzip, gzip),
            (Compression::Snappy, raw_snappy),
            (Compression::Snappy, xerial),
            (Compression::Lz4, lz4),
            (Compression::Zstd, zstd),
        ] {
            assert_eq!(decompress(codec, &bytes).unwrap(), data, "{codec}");
        }
    }

    #[test]
    fn damaged_data_is_an_error_naming_the_codec() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let err = decompress(codec, b"\x82SNAPPY\x00 definitely not compressed")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&codec.to_string()), "{err}");
        }
        let err = decompress(Compression::Unknown(6), b"x").unwrap_err();
        assert!(err.to_string().contains("unknown codec 6"), "{err}");
    }

    #[test]
    fn a_compression_bomb_is_refused() {
        let zeros = vec![0u8; 4 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gzip = gz.finish().unwrap();
        let snappy = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        for (codec, bomb) in [(Compression::Gzip, gzip), (Compression::Snappy, snappy)] {
            assert!(bomb.len() < 1 << 20);
            let err = decompress_at_most(codec, &bomb, 1 << 20)
                .unwrap_err()
                .to_string();
            assert!(err.contains("more than 1048576 bytes"), "{err}");
            assert_eq!(decompress_at_most(codec, &bomb, 4 << 20).unwrap(), zeros);
        }
    }
}
