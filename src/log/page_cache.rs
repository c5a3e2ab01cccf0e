//! Keeps what each partition holds in the operating system's page cache to its newest data.
//!
//! Appends go through the page cache, and the kernel would keep every appended byte cached
//! until it needs the memory for something else: gigabytes for a busy partition, counted
//! against a container's memory limit and reclaimed in bulk when memory runs short. A stream
//! processor's readers read the newest data; older data is read again only by a reader catching
//! up, and then once. So each completed [`CHUNK`] of a segment is written back at once and
//! dropped from the cache when the partition has grown `page_cache_window` bytes past it, and a
//! reader of data further back than that drops what it has read ([`drop_read`]).
//!
//! Freed pages are reused by the next appends and reads, and copying into memory the kernel just
//! freed is several times faster than into memory it has never touched: on this project's
//! virtual machine, whose memory the host backs on first touch, 1 KB Kafka produce went from
//! about 230 to 700–800 MB/s (docs/benchmarks.md). Writing back early also leaves little dirty
//! data for the once-a-second fsync.
//!
//! Writeback can block on a busy disk, so the writer only reports completed chunks; one
//! background thread per log ([`PageCache`]) starts their writeback, waits for it, and drops
//! them. A disk slower than the producers delays the dropping, never an append. Everything here
//! is advice to the kernel: nothing stored or acknowledged depends on it, and its errors are
//! ignored.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use os::{drop_from_cache, start_writeback, write_back};

/// Writeback starts, and pages are dropped, in chunks this large: big enough that the system
/// calls per chunk cost nothing next to copying it, small enough that the memory in flight
/// stays a few chunks.
pub(crate) const CHUNK: u64 = 8 << 20;

/// Bytes kept cached behind a reader of old data: twice the largest readahead Linux does on
/// common disks (the block device's `read_ahead_kb`, up to 8 MiB), which is how far back the
/// kernel looks for signs of a sequential reader.
const READ_HISTORY: u64 = 16 << 20;

/// The largest folio (run of pages cached as one) Linux's readahead allocates on x86-64 and
/// arm64 with 4 KiB pages; the kernel drops only folios wholly inside a range.
const FOLIO: u64 = 2 << 20;

/// The log's page-cache policy and the thread that carries it out, shared by its partitions.
#[derive(Debug)]
pub struct PageCache {
    /// Bytes of a partition's newest data kept cached; `None` leaves the page cache to the kernel.
    window: Option<u64>,
    next_partition: AtomicU64,
    /// To the background thread, started by the first completed chunk; it ends when this drops.
    keeper: Mutex<Option<mpsc::Sender<Event>>>,
}

enum Event {
    /// `[start, end)` of `file` is complete: write it back, and drop it once the partition has
    /// grown a window past it.
    Written {
        partition: u64,
        file: Arc<File>,
        start: u64,
        end: u64,
    },
    /// The partition is closed: forget its chunks (a closed log's pages are the kernel's again).
    Closed { partition: u64 },
}

impl PageCache {
    /// `window`: bytes of each partition's newest data to keep cached; `None` leaves the page
    /// cache to the kernel.
    pub fn new(window: Option<u64>) -> Self {
        PageCache {
            window,
            next_partition: AtomicU64::new(0),
            keeper: Mutex::new(None),
        }
    }

    pub fn window(&self) -> Option<u64> {
        self.window
    }

    /// The writer's side for one partition whose active segment already holds `len` bytes.
    pub(crate) fn chunks(self: &Arc<Self>, len: u64) -> Chunks {
        Chunks {
            cache: self.clone(),
            partition: self.next_partition.fetch_add(1, Ordering::Relaxed),
            segment: None,
            chunk_start: len - len % CHUNK,
            reported: false,
        }
    }

    fn send(&self, event: Event) {
        let Some(window) = self.window else {
            return;
        };
        let mut keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner());
        let sender = keeper.get_or_insert_with(|| start_keeper(window));
        // Fails only if the thread could not be started: the chunk then stays in the kernel's
        // care, as with no window.
        let _ = sender.send(event);
    }
}

/// One partition's writer side: reports each segment chunk as it is completed.
///
/// The keeper waits for writeback through a descriptor of its own: waiting on a descriptor
/// consumes a writeback error reported on it, and the writer's fsync must still see every
/// error on its descriptor, or a failed write could pass for a durable one.
#[derive(Debug)]
pub(crate) struct Chunks {
    cache: Arc<PageCache>,
    partition: u64,
    /// The keeper's descriptor of the active segment, opened when its first chunk completes.
    segment: Option<Arc<File>>,
    /// Where in the active segment the next chunk starts.
    chunk_start: u64,
    /// Whether the keeper has heard of this partition (and so needs to hear of its closing).
    reported: bool,
}

impl Chunks {
    /// After an append to the active segment (at `path()`), which now ends at `end`.
    pub fn appended(&mut self, path: impl Fn() -> PathBuf, end: u64) {
        while end - self.chunk_start >= CHUNK {
            self.report(&path, self.chunk_start + CHUNK);
            self.chunk_start += CHUNK;
        }
    }

    /// The active segment (at `path()`) was closed at `end` bytes: its last, partial chunk is
    /// complete too, and the next segment starts at chunk 0.
    pub fn rolled(&mut self, path: impl Fn() -> PathBuf, end: u64) {
        if end > self.chunk_start {
            self.report(&path, end);
        }
        self.segment = None;
        self.chunk_start = 0;
    }

    /// Reports `[chunk_start, end)` of the active segment.
    fn report(&mut self, path: &impl Fn() -> PathBuf, end: u64) {
        if self.cache.window.is_none() {
            return;
        }
        let file = match &self.segment {
            Some(file) => file.clone(),
            None => {
                let path = path();
                match File::open(&path) {
                    Ok(file) => self.segment.insert(Arc::new(file)).clone(),
                    Err(e) => {
                        // Only the cache policy suffers: the kernel keeps this segment's pages.
                        tracing::debug!(path = %path.display(), error = %e, "cannot open a segment for the page-cache thread");
                        return;
                    }
                }
            }
        };
        self.reported = true;
        self.cache.send(Event::Written {
            partition: self.partition,
            file,
            start: self.chunk_start,
            end,
        });
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if self.reported {
            self.cache.send(Event::Closed {
                partition: self.partition,
            });
        }
    }
}

fn start_keeper(window: u64) -> mpsc::Sender<Event> {
    let (sender, events) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("blink-page-cache".into())
        .spawn(move || keep(window, events));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the page-cache thread; the kernel manages the log's cache alone");
    }
    sender
}

/// A chunk written back (or being written back) and still cached.
struct Cached {
    file: Arc<File>,
    start: u64,
    end: u64,
}

/// The background thread: per partition, the chunks still cached, oldest first.
fn keep(window: u64, events: mpsc::Receiver<Event>) {
    let mut partitions: HashMap<u64, (VecDeque<Cached>, u64)> = HashMap::new();
    for event in events {
        match event {
            Event::Written {
                partition,
                file,
                start,
                end,
            } => {
                start_writeback(&file, start, end);
                let (chunks, bytes) = partitions.entry(partition).or_default();
                chunks.push_back(Cached { file, start, end });
                *bytes += end - start;
                while let Some(oldest) = chunks.front() {
                    let len = oldest.end - oldest.start;
                    if *bytes - len < window {
                        break;
                    }
                    // Dirty pages and pages under writeback cannot be dropped: wait for them.
                    write_back(&oldest.file, oldest.start, oldest.end);
                    drop_from_cache(&oldest.file, oldest.start, oldest.end);
                    *bytes -= len;
                    chunks.pop_front();
                }
            }
            Event::Closed { partition } => {
                partitions.remove(&partition);
            }
        }
    }
}

/// Whether a read `rest` bytes before the end of its segment, followed by segments of `later`
/// lengths, is further back than `window` from the partition's end: old data, which the reader
/// should not leave in the cache. Stops counting as soon as it knows.
pub(crate) fn is_cold(
    window: Option<u64>,
    rest: u64,
    mut later: impl Iterator<Item = u64>,
) -> bool {
    let Some(window) = window else {
        return false;
    };
    let mut behind = rest;
    while behind <= window {
        match later.next() {
            Some(len) => behind += len,
            None => return false,
        }
    }
    true
}

/// After a reader consumed `[start, end)` of `file`, old data (see [`is_cold`]): drops the
/// pages up to [`READ_HISTORY`] before that range, so catching up on old data does not fill the
/// cache with it. The history stays because the kernel's readahead looks for it: a cache miss
/// with no cached pages just before it is taken for a random read and gets no readahead, which
/// made reads from disk three times slower.
pub(crate) fn drop_read(file: &File, start: u64, end: u64) {
    let from = start.saturating_sub(READ_HISTORY) & !(FOLIO - 1);
    let to = end.saturating_sub(READ_HISTORY) & !(FOLIO - 1);
    if to > from {
        drop_from_cache(file, from, to);
    }
}

/// When a reader of old data has moved into a new segment: drops the history [`drop_read`] kept
/// at the end of the segment before (`file`, `len` bytes long).
pub(crate) fn drop_read_tail(file: &File, len: u64) {
    drop_from_cache(file, len.saturating_sub(READ_HISTORY) & !(FOLIO - 1), len);
}

/// The system calls, which only Linux has in this form; elsewhere the kernel keeps its own
/// policy (all of this is advice).
#[cfg(target_os = "linux")]
mod os {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Starts writeback of `[start, end)` without waiting for it.
    pub fn start_writeback(file: &File, start: u64, end: u64) {
        sync_file_range(file, start, end, libc::SYNC_FILE_RANGE_WRITE);
    }

    /// Writes `[start, end)` back and waits until it is on disk.
    pub fn write_back(file: &File, start: u64, end: u64) {
        sync_file_range(
            file,
            start,
            end,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
    }

    fn sync_file_range(file: &File, start: u64, end: u64, flags: libc::c_uint) {
        // SAFETY: a plain system call on an open descriptor; no memory is passed.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                start as libc::off64_t,
                (end - start) as libc::off64_t,
                flags,
            );
        }
    }

    /// Drops the clean pages of `[start, end)` from the page cache.
    pub fn drop_from_cache(file: &File, start: u64, end: u64) {
        // SAFETY: a plain system call on an open descriptor; no memory is passed.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                start as libc::off_t,
                (end - start) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::fs::File;

    pub fn start_writeback(_file: &File, _start: u64, _end: u64) {}
    pub fn write_back(_file: &File, _start: u64, _end: u64) {}
    pub fn drop_from_cache(_file: &File, _start: u64, _end: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_cold_only_when_further_back_than_the_window() {
        let mib = 1 << 20;
        assert!(!is_cold(None, 100 * mib, [100 * mib].into_iter()));
        assert!(!is_cold(Some(64 * mib), 10 * mib, [].into_iter()));
        assert!(!is_cold(Some(64 * mib), 10 * mib, [54 * mib].into_iter()));
        assert!(is_cold(
            Some(64 * mib),
            10 * mib,
            [54 * mib + 1].into_iter()
        ));
        assert!(is_cold(Some(64 * mib), 65 * mib, [].into_iter()));
        // Counting stops once the answer is known: later segments are not all visited.
        let mut visited = 0;
        let later = std::iter::repeat_n(64 * mib, 1000).inspect(|_| visited += 1);
        assert!(is_cold(Some(64 * mib), mib, later));
        assert_eq!(visited, 1);
    }
}
