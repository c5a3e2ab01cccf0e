//! One partition: a directory of segments with one writer and any number of readers.
//!
//! Appends go through the writer lock, reach the OS with one `pwrite` per batch and are published
//! to readers only once fully written, so a reader never sees a partial batch. Readers see the
//! segment list, committed lengths and indexes through a second, briefly held lock and wait on a
//! condition variable for growth: no polling, no lost wake-ups (the end offset is checked and
//! waited on under the same lock the writer publishes under).
//!
//! Opening a partition is its recovery (see [`super::recovery`]): a torn tail is cut, damage
//! followed by intact data keeps the partition closed.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tracing::info;

use super::batch::{self, BatchHeader};
use super::error::LogError;
use super::page_cache::Chunks;
use super::recovery::{self, open_segment_file};
use super::segment::{self, INDEX_INTERVAL, Index, IndexEntry, SegmentState};
use super::settings::{FsyncPolicy, LogConfig, Runtime};
use super::topic_settings::Retention;
use crate::atomic_file;

/// Offsets assigned to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// Oldest first; the last one is the active segment. Never empty.
    pub segments: Vec<SegmentState>,
    /// The high watermark: the offset the next appended record will get.
    pub next_offset: i64,
    /// Bumped by [`Partition::wake_readers`]: waiting readers return early when it changes.
    pub wakeups: u64,
}

#[derive(Debug)]
struct Writer {
    file: Arc<File>,
    base: i64,
    len: u64,
    /// When the active segment received its first batch, for `segment_ms` rolls.
    first_append: Option<Instant>,
    since_index: u64,
    next_offset: i64,
    unsynced: bool,
    /// Set by a failed sync or an unrepairable failed write; appends are refused from then on.
    poisoned: Option<String>,
    /// Which written chunks leave the page cache, and when.
    cache: Chunks,
}

#[derive(Debug)]
pub struct Partition {
    topic: String,
    id: u32,
    dir: PathBuf,
    runtime: Arc<Runtime>,
    read_only: bool,
    writer: Mutex<Writer>,
    shared: Mutex<Shared>,
    grown: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves consistent state behind (every update is a
    // single assignment after the I/O it describes), so a poisoned mutex is still usable.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    /// Opens (recovering) or creates a partition on its own, outside any [`super::Log`]: for
    /// tools and tests that look at one partition's behaviour.
    pub fn open_alone(
        dir: PathBuf,
        topic: &str,
        id: u32,
        config: LogConfig,
        services: super::settings::LogServices,
    ) -> Result<Self, LogError> {
        Self::open(dir, topic, id, Arc::new(Runtime { config, services }))
    }

    /// Opens (recovering) or creates the partition stored in `dir`.
    pub(crate) fn open(
        dir: PathBuf,
        topic: &str,
        id: u32,
        runtime: Arc<Runtime>,
    ) -> Result<Self, LogError> {
        Self::open_mode(dir, topic, id, runtime, false)
    }

    /// Opens a partition another process may be writing: nothing is repaired or written, and
    /// [`Partition::refresh`] picks up what the writer adds.
    pub(crate) fn open_read_only(
        dir: PathBuf,
        topic: &str,
        id: u32,
        runtime: Arc<Runtime>,
    ) -> Result<Self, LogError> {
        Self::open_mode(dir, topic, id, runtime, true)
    }

    fn open_mode(
        dir: PathBuf,
        topic: &str,
        id: u32,
        runtime: Arc<Runtime>,
        read_only: bool,
    ) -> Result<Self, LogError> {
        if !read_only {
            fs::create_dir_all(&dir).map_err(LogError::io("create directory", &dir))?;
        }
        let recovery::Recovered {
            mut segments,
            next_offset,
        } = recovery::recover(&dir, read_only)?;
        if segments.is_empty() {
            segments.push(create_segment(&dir, 0)?.0);
        }
        let active = segments.last().expect("at least one segment");
        let file = match &active.file {
            Some(file) => file.clone(),
            None => Arc::new(recovery::open_segment_file(
                &segment::log_path(&dir, active.base),
                read_only,
            )?),
        };
        let writer = Writer {
            file,
            base: active.base,
            len: active.len,
            first_append: (active.len > 0).then(Instant::now),
            since_index: active
                .index
                .last()
                .map_or(active.len, |e| active.len - e.position as u64),
            next_offset,
            unsynced: false,
            poisoned: None,
            cache: runtime.services.page_cache.chunks(active.len),
        };
        Ok(Partition {
            topic: topic.to_owned(),
            id,
            dir,
            runtime,
            read_only,
            writer: Mutex::new(writer),
            shared: Mutex::new(Shared {
                segments,
                next_offset,
                wakeups: 0,
            }),
            grown: Condvar::new(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.runtime.config
    }

    /// How much of this partition stays in the OS page cache.
    pub(crate) fn page_cache(&self) -> &super::page_cache::PageCache {
        &self.runtime.services.page_cache
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The offset the next record will get (Kafka's high watermark).
    pub fn next_offset(&self) -> i64 {
        lock(&self.shared).next_offset
    }

    /// The oldest offset still stored (Kafka's log start offset).
    pub fn log_start(&self) -> i64 {
        lock(&self.shared).segments[0].base
    }

    /// Bytes stored, all segments included.
    pub fn size_bytes(&self) -> u64 {
        lock(&self.shared).segments.iter().map(|s| s.len).sum()
    }

    pub fn segment_count(&self) -> usize {
        lock(&self.shared).segments.len()
    }

    /// How many segments start after `offset`: how far, in segments, a reader at `offset` lags.
    pub fn segments_after(&self, offset: i64) -> usize {
        let shared = lock(&self.shared);
        shared.segments.len() - shared.segments.partition_point(|s| s.base <= offset)
    }

    /// Base offset of the oldest of the newest `count` segments (of the oldest segment if there
    /// are fewer).
    pub fn newest_segments_base(&self, count: usize) -> i64 {
        let shared = lock(&self.shared);
        let oldest = shared.segments.len().saturating_sub(count.max(1));
        shared.segments[oldest].base
    }

    /// Base offset of the active (newest) segment.
    pub fn active_base(&self) -> i64 {
        lock(&self.shared)
            .segments
            .last()
            .expect("at least one segment")
            .base
    }

    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Waits until the log holds an offset ≥ `offset`, `timeout` passes, or
    /// [`Partition::wake_readers`] is called; true if the offset is there.
    pub fn wait_for(&self, offset: i64, timeout: Duration) -> bool {
        let shared = lock(&self.shared);
        let wakeups = shared.wakeups;
        let (shared, _) = self
            .grown
            .wait_timeout_while(shared, timeout, |s| {
                s.next_offset <= offset && s.wakeups == wakeups
            })
            .unwrap_or_else(|e| e.into_inner());
        shared.next_offset > offset
    }

    /// Wakes every reader waiting for data, so it can look at something else (a plugin to load,
    /// say) without waiting for its timeout.
    pub fn wake_readers(&self) {
        lock(&self.shared).wakeups += 1;
        self.grown.notify_all();
    }

    /// Whether appending `len` bytes now would only copy them into the page cache: no fsync
    /// (`fsync = "interval"`), no segment roll (which syncs the closed segment), and no append
    /// in progress to wait for. The answer may be stale as soon as it is given; callers use it
    /// to choose a thread, never for correctness.
    pub fn append_is_light(&self, len: usize) -> bool {
        if self.read_only || self.runtime.config.fsync == FsyncPolicy::Always {
            return false;
        }
        let Ok(w) = self.writer.try_lock() else {
            return false;
        };
        w.poisoned.is_none() && !self.would_roll(&w, len)
    }

    /// Whether appending `len` bytes must first roll the active segment: it would grow past
    /// `segment_bytes`, or it has been taking appends for `segment_age`. An empty segment takes
    /// any batch.
    fn would_roll(&self, w: &Writer, len: usize) -> bool {
        let age_exceeded = w
            .first_append
            .is_some_and(|t| t.elapsed() >= self.runtime.config.segment_age);
        w.len > 0 && (w.len + len as u64 > self.runtime.config.segment_bytes || age_exceeded)
    }

    /// Appends one complete, CRC-valid batch (as built by [`batch::BatchBuilder`] or checked by
    /// [`batch::verify`]); only its base offset is rewritten. The batch is not copied: the base
    /// offset (its first 8 bytes, outside the CRC) is written first, then the rest, so a
    /// producer's batch goes from the request to the file as it arrived.
    pub fn append(&self, batch: &[u8]) -> Result<Appended, LogError> {
        let header = BatchHeader::parse(batch)?;
        if batch.len() != header.total_len() {
            return Err(batch::BatchError::Truncated {
                have: batch.len(),
                need: header.total_len(),
            }
            .into());
        }
        if batch.len() as u64 > self.runtime.config.segment_bytes {
            return Err(LogError::BatchTooLarge {
                size: batch.len(),
                max: self.runtime.config.segment_bytes,
            });
        }
        if self.read_only {
            return Err(LogError::ReadOnly(self.name()));
        }
        let mut w = lock(&self.writer);
        if let Some(cause) = &w.poisoned {
            return Err(self.poisoned(cause));
        }
        if self.would_roll(&w, batch.len()) {
            self.roll(&mut w)?;
        }
        let base_offset = w.next_offset;
        let position = w.len;
        let storage = &self.runtime.services.storage;
        // The base offset first: a crash between the two writes leaves a batch too short for
        // its length, which recovery cuts, never a whole batch with a stale base offset.
        let written = storage
            .write_at(&w.file, &base_offset.to_be_bytes(), position)
            .and_then(|()| storage.write_at(&w.file, &batch[8..], position + 8));
        if let Err(e) = written {
            // Cut whatever part of the batch reached the file; if even that fails the file's
            // tail is unknown and only a reopen (recovery) may write here again.
            if let Err(cut) = w.file.set_len(position) {
                w.poisoned = Some(format!(
                    "write failed ({e}) and the partial batch could not be cut ({cut})"
                ));
            }
            return Err(LogError::Io {
                op: "append to",
                path: self.active_path(&w),
                source: e,
            });
        }
        if self.runtime.config.fsync == FsyncPolicy::Always {
            if let Err(e) = storage.sync(&w.file) {
                w.poisoned = Some(format!("fsync failed: {e}"));
                return Err(LogError::Io {
                    op: "fsync",
                    path: self.active_path(&w),
                    source: e,
                });
            }
        } else {
            w.unsynced = true;
        }
        let total = batch.len() as u64;
        w.len += total;
        w.next_offset = header.last_offset_delta as i64 + base_offset + 1;
        w.first_append.get_or_insert_with(Instant::now);
        let entry = (w.since_index >= INDEX_INTERVAL && position > 0).then(|| {
            w.since_index = 0;
            IndexEntry {
                relative_offset: (base_offset - w.base) as u32,
                position: position as u32,
            }
        });
        w.since_index += total;
        let (base, len) = (w.base, w.len);
        w.cache.appended(|| self.segment_path(base), len);
        {
            let mut shared = lock(&self.shared);
            let active = shared.segments.last_mut().expect("at least one segment");
            active.len = w.len;
            if let Some(entry) = entry {
                active.index.push(entry);
            }
            shared.next_offset = w.next_offset;
        }
        self.grown.notify_all();
        self.runtime.services.notifier.notify();
        Ok(Appended {
            base_offset,
            last_offset: w.next_offset - 1,
        })
    }

    /// Closes the active segment (index written, everything synced) and starts a new one.
    fn roll(&self, w: &mut Writer) -> Result<(), LogError> {
        let index = lock(&self.shared)
            .segments
            .last()
            .expect("active")
            .index
            .to_bytes();
        atomic_file::write(&segment::index_path(&self.dir, w.base), &index)?;
        if let Err(e) = self.runtime.services.storage.sync(&w.file) {
            w.poisoned = Some(format!("fsync failed: {e}"));
            return Err(LogError::Io {
                op: "fsync",
                path: self.active_path(w),
                source: e,
            });
        }
        let (state, file) = create_segment(&self.dir, w.next_offset)?;
        let (base, len) = (w.base, w.len);
        w.cache.rolled(|| self.segment_path(base), len);
        w.file = file;
        w.base = state.base;
        w.len = 0;
        w.first_append = None;
        w.since_index = 0;
        w.unsynced = false;
        let mut shared = lock(&self.shared);
        let closed = shared.segments.last_mut().expect("active");
        closed.modified = SystemTime::now();
        closed.file = None; // read from now on through the log's cache of open files
        shared.segments.push(state);
        Ok(())
    }

    /// Forces appended data to stable storage (the `fsync = "interval"` tick).
    pub fn sync(&self) -> Result<(), LogError> {
        let (file, path) = {
            let mut w = lock(&self.writer);
            if let Some(cause) = &w.poisoned {
                return Err(self.poisoned(cause));
            }
            if !w.unsynced {
                return Ok(());
            }
            w.unsynced = false;
            (w.file.clone(), self.active_path(&w))
        };
        self.runtime.services.storage.sync(&file).map_err(|e| {
            lock(&self.writer).poisoned = Some(format!("fsync failed: {e}"));
            LogError::Io {
                op: "fsync",
                path,
                source: e,
            }
        })
    }

    /// Writes the active segment's index so the next start need not rebuild it (clean shutdown).
    pub fn close(&self) -> Result<(), LogError> {
        if self.read_only {
            return Ok(());
        }
        self.sync()?;
        let w = lock(&self.writer);
        let index = lock(&self.shared)
            .segments
            .last()
            .expect("active")
            .index
            .to_bytes();
        Ok(atomic_file::write(
            &segment::index_path(&self.dir, w.base),
            &index,
        )?)
    }

    /// Deletes whole segments past the `retention` limits (the topic's), oldest first, but
    /// never one holding an offset ≥ `keep_from` (the oldest checkpoint of a reader that depends
    /// on this partition) and never the active segment. Returns the base offsets of the deleted
    /// segments.
    pub fn apply_retention(
        &self,
        now: SystemTime,
        keep_from: Option<i64>,
        retention: Retention,
    ) -> Result<Vec<i64>, LogError> {
        if self.read_only {
            return Ok(Vec::new());
        }
        let (age, max_bytes) = (retention.age, retention.bytes);
        // The writer lock keeps a roll from changing the segment list underneath.
        let _w = lock(&self.writer);
        let removed: Vec<SegmentState> = {
            let mut shared = lock(&self.shared);
            let mut total: u64 = shared.segments.iter().map(|s| s.len).sum();
            let mut count = 0;
            while count + 1 < shared.segments.len() {
                let segment = &shared.segments[count];
                let end = shared.segments[count + 1].base;
                if keep_from.is_some_and(|k| end > k) {
                    break;
                }
                let too_old = age
                    .is_some_and(|age| now.duration_since(segment.modified).is_ok_and(|d| d > age));
                let too_big = max_bytes.is_some_and(|max| total - segment.len >= max);
                if !too_old && !too_big {
                    break;
                }
                total -= segment.len;
                count += 1;
            }
            shared.segments.drain(..count).collect()
        };
        let mut deleted = Vec::with_capacity(removed.len());
        for segment in removed {
            // The log file goes first: the oldest remaining .log file name is the persisted log
            // start offset, and an orphaned index is removed on the next open.
            let path = segment::log_path(&self.dir, segment.base);
            self.runtime.services.segment_files.forget(&path);
            fs::remove_file(&path).map_err(LogError::io("delete segment", &path))?;
            let _ = fs::remove_file(segment::index_path(&self.dir, segment.base));
            info!(partition = %self.name(), base = segment.base, bytes = segment.len, "retention deleted segment");
            deleted.push(segment.base);
        }
        Ok(deleted)
    }

    /// Read-only mode: picks up batches and segments another process has written since.
    pub fn refresh(&self) -> Result<(), LogError> {
        if !self.read_only {
            return Ok(());
        }
        let mut shared = lock(&self.shared);
        while shared.segments.len() > 1
            && !segment::log_path(&self.dir, shared.segments[0].base).exists()
        {
            shared.segments.remove(0);
        }
        loop {
            let next_offset = shared.next_offset;
            let last = shared.segments.last_mut().expect("at least one segment");
            let path = segment::log_path(&self.dir, last.base);
            let file = match &last.file {
                Some(file) => file.clone(),
                None => Arc::new(open_segment_file(&path, true)?),
            };
            let len = file.metadata().map_err(LogError::io("stat", &path))?.len();
            if len > last.len {
                let scan = segment::scan(
                    &file,
                    last.base,
                    last.len,
                    next_offset,
                    len,
                    true,
                    last.index.clone(),
                )
                .map_err(LogError::io("read", &path))?;
                // A batch the writer is still writing stops the scan; it is picked up next time.
                last.len = scan.valid_len;
                last.index = scan.index;
                shared.next_offset = scan.next_offset;
            }
            let last = shared.segments.last().expect("at least one segment");
            let next_path = segment::log_path(&self.dir, shared.next_offset);
            if last.len == 0 || last.base == shared.next_offset || !next_path.exists() {
                break;
            }
            let file = open_segment_file(&next_path, true)?;
            let base = shared.next_offset;
            if let Some(closed) = shared.segments.last_mut() {
                closed.file = None;
            }
            shared.segments.push(SegmentState {
                base,
                file: Some(Arc::new(file)),
                len: 0,
                index: Index::default(),
                modified: SystemTime::now(),
            });
        }
        drop(shared);
        self.grown.notify_all();
        Ok(())
    }

    /// `topic-partition`, as the directory is named.
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.id)
    }

    /// The file of `segment`: the active segment's own, a closed one's from the log's cache of
    /// open segment files.
    pub(crate) fn file_of(&self, segment: &SegmentState) -> Result<Arc<File>, LogError> {
        match &segment.file {
            Some(file) => Ok(file.clone()),
            None => {
                let path = self.segment_path(segment.base);
                self.runtime
                    .services
                    .segment_files
                    .get(&path)
                    .map_err(LogError::io("open", &path))
            }
        }
    }

    pub(crate) fn segment_path(&self, base: i64) -> PathBuf {
        segment::log_path(&self.dir, base)
    }

    fn active_path(&self, w: &Writer) -> PathBuf {
        segment::log_path(&self.dir, w.base)
    }

    fn poisoned(&self, cause: &str) -> LogError {
        LogError::Poisoned {
            topic: self.topic.clone(),
            partition: self.id,
            cause: cause.to_owned(),
        }
    }
}

/// A new, empty segment, and its file for the writer.
fn create_segment(dir: &Path, base: i64) -> Result<(SegmentState, Arc<File>), LogError> {
    let path = segment::log_path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(LogError::io("create segment", &path))?;
    atomic_file::sync_dir(dir)?;
    let file = Arc::new(file);
    let state = SegmentState {
        base,
        file: Some(file.clone()),
        len: 0,
        index: Index::default(),
        modified: SystemTime::now(),
    };
    Ok((state, file))
}
