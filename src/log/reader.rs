//! Sequential reading of a partition from any offset, batch by batch or record by record.
//!
//! A reader copies a chunk of a segment from the page cache into one buffer with a single
//! `pread`, then hands out batches and records as `Bytes` slices of it: no further copies, no
//! per-record allocation. Every batch's CRC is checked on the way out; a damaged batch is an
//! error naming the file and position, and the reader stays where it is rather than skipping it.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::batch::{self, Batch, BatchHeader, HEADER_LEN, Record, RecordIter};
use super::error::LogError;
use super::page_cache;
use super::partition::Partition;

/// Bytes read from a segment at a time. A chunk is zeroed, filled by `pread`, CRC-checked, then
/// decoded record by record: small enough to still be in the core's cache when the decoder gets
/// there (with 256 KiB, perf put a fifth of an analysis thread's time in the first decode of each
/// message and another tenth in the kernel's copy), large enough that the syscall is amortised.
const CHUNK: usize = 64 << 10;

/// Where in a segment the reader continues.
struct Cursor {
    base: i64,
    position: u64,
}

pub struct PartitionReader {
    partition: Arc<Partition>,
    /// The next offset to deliver.
    next: i64,
    cursor: Option<Cursor>,
    ready: VecDeque<Batch>,
    records: Option<RecordIter>,
    /// The batch `records` iterates, and the offset after it.
    batch: Option<Batch>,
    batch_end: i64,
}

impl PartitionReader {
    /// A reader that delivers records from `offset` on.
    pub fn new(partition: Arc<Partition>, offset: i64) -> Self {
        PartitionReader {
            partition,
            next: offset,
            cursor: None,
            ready: VecDeque::new(),
            records: None,
            batch: None,
            batch_end: offset,
        }
    }

    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// The offset of the next record this reader delivers.
    pub fn position(&self) -> i64 {
        self.next
    }

    /// Moves the reader; the next record delivered is the first at or after `offset`.
    pub fn seek(&mut self, offset: i64) {
        self.next = offset;
        self.cursor = None;
        self.ready.clear();
        self.records = None;
        self.batch = None;
    }

    /// The next batch holding records at or after the position, whole (it may start before the
    /// position, as Kafka Fetch returns it); `None` at the end of the log.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, LogError> {
        self.records = None;
        self.batch = None;
        loop {
            if let Some(batch) = self.ready.pop_front() {
                if batch.header.last_offset() < self.next {
                    continue;
                }
                self.next = batch.header.next_offset();
                return Ok(Some(batch));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The next record at or after the position; `None` at the end of the log.
    pub fn next_record(&mut self) -> Result<Option<Record>, LogError> {
        loop {
            if let Some(records) = &mut self.records {
                match records.next() {
                    Some(Ok(record)) if record.offset < self.next => continue,
                    Some(Ok(record)) => {
                        self.next = record.offset + 1;
                        return Ok(Some(record));
                    }
                    Some(Err(e)) => {
                        let batch = self.batch.take().expect("records come from a batch");
                        self.stay();
                        return Err(self.unreadable(batch, e));
                    }
                    None => {
                        // Offsets inside a batch may have gaps (compaction): go to its end.
                        self.records = None;
                        self.batch = None;
                        self.next = self.next.max(self.batch_end);
                        continue;
                    }
                }
            }
            let Some(batch) = self.ready.pop_front() else {
                if !self.fill()? {
                    return Ok(None);
                }
                continue;
            };
            if batch.header.last_offset() < self.next {
                continue;
            }
            self.batch_end = batch.header.next_offset();
            if batch.header.is_control() {
                // Transaction markers carry no user records.
                self.next = self.batch_end;
                continue;
            }
            match batch.records() {
                Ok(records) => {
                    self.records = Some(records);
                    self.batch = Some(batch);
                }
                Err(e) => {
                    self.stay();
                    return Err(self.unreadable(batch, e));
                }
            }
        }
    }

    /// A batch whose CRC holds but whose records do not decode (a producer compressed garbage,
    /// or framed records wrongly): the reader stays before it; `seek` to `next_offset` goes on.
    fn unreadable(&self, batch: Batch, e: batch::BatchError) -> LogError {
        LogError::UnreadableBatch {
            topic: self.partition.topic().to_owned(),
            partition: self.partition.id(),
            base_offset: batch.header.base_offset,
            next_offset: batch.header.next_offset(),
            reason: e.to_string(),
            batch: batch.bytes,
        }
    }

    /// After an error: forget buffered data so the next call reads the same place again and
    /// reports the same error, instead of skipping what could not be read.
    fn stay(&mut self) {
        self.cursor = None;
        self.ready.clear();
        self.records = None;
        self.batch = None;
    }

    /// Blocks until a record at or after the position exists or `timeout` passes; true if one
    /// does. Read-only partitions (another process writes) are re-read every 50 ms.
    pub fn wait(&self, timeout: Duration) -> Result<bool, LogError> {
        if !self.ready.is_empty() || self.records.as_ref().is_some_and(|r| r.remaining() > 0) {
            return Ok(true);
        }
        if !self.partition.is_read_only() {
            return Ok(self.partition.wait_for(self.next, timeout));
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.partition.refresh()?;
            if self.partition.next_offset() > self.next {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Reads the next chunk of batches into `ready`; false at the end of the log.
    fn fill(&mut self) -> Result<bool, LogError> {
        let (base, file, position, committed, cold, before) = {
            let shared = self.partition.shared();
            if self.next >= shared.next_offset {
                return Ok(false);
            }
            let start = shared.segments[0].base;
            if self.next < start {
                return Err(LogError::OffsetOutOfRange {
                    topic: self.partition.topic().to_owned(),
                    partition: self.partition.id(),
                    offset: self.next,
                    start,
                    end: shared.next_offset,
                });
            }
            let i = shared.segments.partition_point(|s| s.base <= self.next) - 1;
            let segment = &shared.segments[i];
            let position = match &self.cursor {
                Some(c) if c.base == segment.base => c.position,
                _ => segment.index.lookup((self.next - segment.base) as u32),
            };
            let window = self.partition.page_cache().window();
            let later = shared.segments[i + 1..].iter().map(|s| s.len);
            let cold = page_cache::is_cold(window, segment.len - position, later);
            // A reader of old data that just moved into this segment drops what it kept of the
            // one before.
            let before = (cold && i > 0 && position < page_cache::CHUNK)
                .then(|| {
                    let s = &shared.segments[i - 1];
                    Some((self.partition.file_of(s).ok()?, s.len))
                })
                .flatten();
            (
                segment.base,
                self.partition.file_of(segment)?,
                position,
                segment.len,
                cold,
                before,
            )
        };
        let path = || self.partition.segment_path(base);
        if position >= committed {
            return Err(LogError::Inconsistent {
                path: path(),
                reason: format!(
                    "offset {} should be in this segment but it ends at byte {committed}",
                    self.next
                ),
            });
        }
        let mut len = CHUNK.min((committed - position) as usize);
        let mut buf = read_exact(&file, position, len).map_err(LogError::io("read", path()))?;
        let first =
            BatchHeader::parse(&buf).map_err(|e| self.corrupt(base, position, e.to_string()))?;
        if first.total_len() > len {
            // One batch larger than a chunk: read exactly it.
            if position + first.total_len() as u64 > committed {
                return Err(self.corrupt(
                    base,
                    position,
                    "batch runs past the end of the segment".into(),
                ));
            }
            len = first.total_len();
            buf = read_exact(&file, position, len).map_err(LogError::io("read", path()))?;
        }
        // Batches before a damaged one are delivered; the cursor stops at the damage so every
        // later call reports it again.
        let mut consumed = 0u64;
        let mut damage = None;
        while buf.len() >= HEADER_LEN {
            let at = position + consumed;
            let header = match BatchHeader::parse(&buf) {
                Ok(header) => header,
                Err(e) => {
                    damage = Some(self.corrupt(base, at, e.to_string()));
                    break;
                }
            };
            if header.total_len() > buf.len() {
                break;
            }
            if let Err(e) = batch::verify(&buf[..header.total_len()]) {
                damage = Some(self.corrupt(base, at, e.to_string()));
                break;
            }
            let bytes = buf.split_to(header.total_len()).freeze();
            consumed += bytes.len() as u64;
            self.ready.push_back(Batch::new(header, bytes));
        }
        if cold {
            page_cache::drop_read(&file, position, position + consumed);
        }
        if let Some((file, len)) = before {
            page_cache::drop_read_tail(&file, len);
        }
        self.cursor = Some(Cursor {
            base,
            position: position + consumed,
        });
        match damage {
            Some(e) if self.ready.is_empty() => Err(e),
            _ => Ok(true),
        }
    }

    fn corrupt(&self, base: i64, position: u64, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.partition.segment_path(base),
            position,
            offset: self.next,
            reason,
        }
    }
}

/// Reads `len` bytes at `position` into a new buffer, without zeroing it first: `pread` into the
/// buffer's spare capacity (zeroing cost as much as a tenth of a reader's time).
fn read_exact(file: &File, position: u64, len: usize) -> std::io::Result<BytesMut> {
    use std::os::fd::AsRawFd;
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        let want = len - buf.len();
        let at = libc::off_t::try_from(position + buf.len() as u64)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let spare = buf.spare_capacity_mut();
        // SAFETY: pread writes at most `want` bytes, and the spare capacity holds at least `len -
        // buf.len()` = `want`; the pointer is not kept.
        let n = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), want, at) };
        match n {
            n if n > 0 => {
                // SAFETY: pread initialised the `n` bytes after the current length.
                unsafe { buf.set_len(buf.len() + n as usize) };
            }
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
}

/// Reads batches from `offset` up to about `max_bytes` (at least one whole batch), as Kafka Fetch
/// serves them: the first batch is whole even if it starts before `offset`.
pub fn read_batches(
    partition: &Arc<Partition>,
    offset: i64,
    max_bytes: usize,
) -> Result<Vec<Bytes>, LogError> {
    let mut reader = PartitionReader::new(partition.clone(), offset);
    let mut out = Vec::new();
    let mut total = 0;
    while total < max_bytes || out.is_empty() {
        match reader.next_batch()? {
            Some(batch) => {
                total += batch.bytes.len();
                out.push(batch.bytes);
            }
            None => break,
        }
    }
    Ok(out)
}
