//! Segment files and their sparse offset index, and the scan that validates a segment.
//!
//! A segment `<base offset, 20 digits>.log` holds whole RecordBatches back to back, the first one
//! starting at the base offset and each next one starting where the previous ended. Beside it,
//! `<base>.index` holds Kafka's index layout: 8-byte entries (offset relative to the base, file
//! position), both big-endian `u32`, one entry per `INDEX_INTERVAL` bytes of log. The index of the
//! active segment lives in memory and is written when the segment is rolled; on open it is trusted
//! only for closed segments and only after a sanity check, and rebuilt from a scan otherwise.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::batch::{self, BatchError, BatchHeader, HEADER_LEN};

/// A segment as readers see it.
#[derive(Debug)]
pub(crate) struct SegmentState {
    pub base: i64,
    /// Open for the active segment (and, read-only, the newest); a closed segment is opened
    /// when read, through the log's [`super::segment_files::SegmentFiles`].
    pub file: Option<Arc<File>>,
    /// Bytes of whole, published batches.
    pub len: u64,
    pub index: Index,
    /// When data was last appended: the segment's age for time-based retention.
    pub modified: SystemTime,
}

/// Log bytes between index entries (Kafka's `index.interval.bytes` default).
pub const INDEX_INTERVAL: u64 = 4096;
const INDEX_ENTRY_LEN: usize = 8;

pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// Parses a segment file name back into its base offset.
pub fn parse_name(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// One index entry: where the batch containing `offset` (relative to the base) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// A segment's sparse offset index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    entries: Vec<IndexEntry>,
}

impl Index {
    pub fn push(&mut self, entry: IndexEntry) {
        self.entries.push(entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// File position from which to scan for `relative_offset`: the last entry at or before it.
    pub fn lookup(&self, relative_offset: u32) -> u64 {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position as u64
        }
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * INDEX_ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Parses an index file; `None` if it is not a plausible index for a segment of `log_len`
    /// bytes (entries out of order or pointing past the end), so the caller rebuilds it.
    pub fn from_bytes(bytes: &[u8], log_len: u64) -> Option<Index> {
        if !bytes.len().is_multiple_of(INDEX_ENTRY_LEN) {
            return None;
        }
        let mut entries = Vec::with_capacity(bytes.len() / INDEX_ENTRY_LEN);
        for chunk in bytes.chunks_exact(INDEX_ENTRY_LEN) {
            let entry = IndexEntry {
                relative_offset: u32::from_be_bytes(chunk[..4].try_into().ok()?),
                position: u32::from_be_bytes(chunk[4..].try_into().ok()?),
            };
            if let Some(prev) = entries.last() {
                let prev: &IndexEntry = prev;
                if entry.relative_offset <= prev.relative_offset || entry.position <= prev.position
                {
                    return None;
                }
            }
            if entry.position as u64 + HEADER_LEN as u64 > log_len {
                return None;
            }
            entries.push(entry);
        }
        Some(Index { entries })
    }
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStop {
    /// File position of the first byte not accepted.
    pub position: u64,
    pub reason: String,
}

/// What a scan of a segment found.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Length of the run of valid batches from the scan's start position.
    pub valid_len: u64,
    /// Offset after the last valid batch.
    pub next_offset: i64,
    pub index: Index,
    /// Largest batch max timestamp seen (ms), if any batch was read.
    pub max_timestamp: Option<i64>,
    pub stop: Option<ScanStop>,
}

/// Reads `len` bytes at `position`, allowing for short files.
fn read_at(file: &File, position: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let n = file.read_at(&mut buf[filled..], position + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Scans batches from `start` (a batch boundary whose first offset is `start_offset`) up to
/// `end`, checking framing, offset continuity and, when `verify_crc`, every CRC. Index entries
/// are added to `index` for positions past its last entry.
pub fn scan(
    file: &File,
    base: i64,
    start: u64,
    start_offset: i64,
    end: u64,
    verify_crc: bool,
    mut index: Index,
) -> io::Result<Scan> {
    const CHUNK: usize = 4 << 20;
    let mut pos = start;
    let mut expected = start_offset;
    let mut since_index = index.last().map_or(pos, |e| pos - e.position as u64);
    let mut max_timestamp = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_at = pos; // file position of buf[0]
    let stop = loop {
        if pos >= end {
            break None;
        }
        // Make sure the header, and for CRC checks the whole batch, is in the buffer.
        let have = |buf: &Vec<u8>, buf_at: u64, pos: u64, need: u64| {
            buf_at + buf.len() as u64 >= pos + need
        };
        if !have(&buf, buf_at, pos, HEADER_LEN as u64) {
            buf = read_at(file, pos, CHUNK.min((end - pos) as usize))?;
            buf_at = pos;
        }
        let header = match BatchHeader::parse(&buf[(pos - buf_at) as usize..]) {
            Ok(h) => h,
            Err(BatchError::Truncated { .. }) => {
                break Some(ScanStop {
                    position: pos,
                    reason: format!("incomplete batch header ({} bytes)", end - pos),
                });
            }
            Err(e) => {
                break Some(ScanStop {
                    position: pos,
                    reason: e.to_string(),
                });
            }
        };
        let total = header.total_len() as u64;
        if pos + total > end {
            break Some(ScanStop {
                position: pos,
                reason: format!(
                    "batch of {total} bytes is cut off after {} bytes",
                    end - pos
                ),
            });
        }
        if header.base_offset != expected {
            break Some(ScanStop {
                position: pos,
                reason: format!(
                    "batch has base offset {}, expected {expected}",
                    header.base_offset
                ),
            });
        }
        if header.last_offset_delta < 0 {
            break Some(ScanStop {
                position: pos,
                reason: "negative last offset delta".into(),
            });
        }
        if verify_crc {
            if !have(&buf, buf_at, pos, total) {
                buf = read_at(
                    file,
                    pos,
                    (total as usize).max(CHUNK.min((end - pos) as usize)),
                )?;
                buf_at = pos;
            }
            let at = (pos - buf_at) as usize;
            if let Err(e) = batch::verify(&buf[at..at + total as usize]) {
                break Some(ScanStop {
                    position: pos,
                    reason: e.to_string(),
                });
            }
        }
        if since_index >= INDEX_INTERVAL && pos > 0 {
            index.push(IndexEntry {
                relative_offset: (header.base_offset - base) as u32,
                position: pos as u32,
            });
            since_index = 0;
        }
        max_timestamp = max_timestamp.max(Some(header.max_timestamp));
        since_index += total;
        pos += total;
        expected = header.next_offset();
    };
    Ok(Scan {
        valid_len: pos,
        next_offset: expected,
        index,
        max_timestamp,
        stop,
    })
}

/// Looks for any intact batch after `after` in `file`: evidence that damage at `after` is in the
/// middle of the data, not a torn tail. Returns the position of the first one found.
pub fn find_intact_batch(file: &File, after: u64, end: u64) -> io::Result<Option<u64>> {
    if end <= after + 1 {
        return Ok(None);
    }
    let buf = read_at(file, after + 1, (end - after - 1) as usize)?;
    for i in 0..buf.len().saturating_sub(HEADER_LEN) {
        // Cheap filters first: magic byte, then a length that fits.
        if buf[i + 16] != 2 {
            continue;
        }
        let Ok(header) = BatchHeader::parse(&buf[i..]) else {
            continue;
        };
        if i + header.total_len() <= buf.len()
            && batch::verify(&buf[i..i + header.total_len()]).is_ok()
        {
            return Ok(Some(after + 1 + i as u64));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/x");
        assert_eq!(log_path(dir, 42), Path::new("/x/00000000000000000042.log"));
        assert_eq!(parse_name("00000000000000000042.log"), Some((42, "log")));
        assert_eq!(
            parse_name("00000000000000000042.index"),
            Some((42, "index"))
        );
        assert_eq!(parse_name("42.log"), None);
        assert_eq!(parse_name("0000000000000000004x.log"), None);
    }

    #[test]
    fn index_lookup_finds_the_last_entry_at_or_before() {
        let mut index = Index::default();
        index.push(IndexEntry {
            relative_offset: 10,
            position: 4096,
        });
        index.push(IndexEntry {
            relative_offset: 20,
            position: 8192,
        });
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4096);
        assert_eq!(index.lookup(19), 4096);
        assert_eq!(index.lookup(25), 8192);
        let bytes = index.to_bytes();
        assert_eq!(Index::from_bytes(&bytes, 10_000), Some(index.clone()));
        assert_eq!(Index::from_bytes(&bytes, 8000), None, "entry past the end");
        assert_eq!(
            Index::from_bytes(&bytes[..12], 10_000),
            None,
            "partial entry"
        );
        let mut backwards = bytes[8..].to_vec();
        backwards.extend_from_slice(&bytes[..8]);
        assert_eq!(Index::from_bytes(&backwards, 10_000), None);
    }
}
