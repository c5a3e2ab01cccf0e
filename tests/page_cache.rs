//! What a partition leaves in the OS page cache (`page_cache_window`): appended data further
//! back than the window is written back and dropped, a reader of old data drops what it read,
//! and with no window the kernel keeps everything. Residency is asked of the kernel (`mincore`)
//! on the segment files, which live under `target/` because a tmpfs `/tmp` has no page cache to
//! drop from.

#![cfg(target_os = "linux")]

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blink::log::LogConfig;
use blink::log::batch::BatchBuilder;
use blink::log::{LogServices, Partition, PartitionReader};

const MIB: u64 = 1 << 20;
const RECORD: usize = 1000;

fn partition(dir: &Path, window: Option<u64>, segment_bytes: u64) -> Arc<Partition> {
    let mut config = LogConfig::in_dir(dir);
    config.segment_bytes = segment_bytes;
    config.page_cache_window = window;
    let services = LogServices::for_config(&config);
    Arc::new(Partition::open_alone(dir.join("t-0"), "t", 0, config, services).unwrap())
}

fn value(n: i64) -> Vec<u8> {
    let mut v = format!("record {n} ").into_bytes();
    v.resize(RECORD, b'a' + (n % 26) as u8);
    v
}

/// Appends batches of about 1 MiB until the partition holds `bytes`; returns the records.
fn fill(partition: &Partition, bytes: u64) -> i64 {
    let mut n = 0;
    while partition.size_bytes() < bytes {
        let mut builder = BatchBuilder::new();
        for _ in 0..1024 {
            builder.push(1_700_000_000_000 + n, None, &value(n));
            n += 1;
        }
        partition.append(&builder.finish()).unwrap();
    }
    n
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<_> = fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Pages of `[from, to)` of the file that are in the page cache, and pages in the range.
fn resident(path: &Path, from: u64, to: u64) -> (usize, usize) {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let to = to.min(len);
    let page = 4096;
    let from = from & !(page - 1);
    let pages = (to - from).div_ceil(page) as usize;
    if pages == 0 {
        return (0, 0);
    }
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of the whole file, only passed to mincore (which reads
    // no page) and unmapped before returning.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}", path.display());
        let start = addr.cast::<u8>().add(from as usize).cast();
        let rc = libc::mincore(start, (to - from) as usize, vec.as_mut_ptr().cast());
        assert_eq!(rc, 0, "mincore {}", path.display());
        libc::munmap(addr, len as usize);
    }
    (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
}

/// Waits (at most 10 s: the background thread writes each chunk back first) until no page of
/// `[from, to)` of `path` is cached; returns how many still are.
fn wait_dropped(path: &Path, from: u64, to: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (cached, _) = resident(path, from, to);
        if cached == 0 || Instant::now() > deadline {
            return cached;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn test_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn appended_data_a_window_behind_leaves_the_cache_and_the_newest_stays() {
    let dir = test_dir();
    let partition = partition(dir.path(), Some(8 * MIB), 64 * MIB);
    fill(&partition, 48 * MIB);
    let segment = &segments(dir.path())[0];
    assert_eq!(
        wait_dropped(segment, 0, 32 * MIB),
        0,
        "pages of the oldest 32 MiB still cached"
    );
    let (cached, pages) = resident(segment, 44 * MIB, 64 * MIB);
    assert_eq!(cached, pages, "the newest data should stay cached");
}

#[test]
fn with_no_window_the_kernel_keeps_everything() {
    let dir = test_dir();
    let partition = partition(dir.path(), None, 64 * MIB);
    fill(&partition, 24 * MIB);
    std::thread::sleep(Duration::from_millis(200));
    let (cached, pages) = resident(&segments(dir.path())[0], 0, 64 * MIB);
    assert_eq!(cached, pages);
}

#[test]
fn a_reader_of_old_data_reads_it_whole_and_drops_it_behind_itself() {
    let dir = test_dir();
    let partition = partition(dir.path(), Some(8 * MIB), 32 * MIB);
    let records = fill(&partition, 128 * MIB);
    let files = segments(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    for file in &files[..2] {
        assert_eq!(wait_dropped(file, 0, 32 * MIB), 0, "{}", file.display());
    }

    // Reading brings the old data back into the cache; the reader drops it again as it goes.
    let mut reader = PartitionReader::new(partition.clone(), 0);
    let mut n = 0;
    while let Some(record) = reader.next_record().unwrap() {
        assert_eq!(record.offset, n);
        assert_eq!(record.value.unwrap().as_ref(), value(n), "record {n}");
        n += 1;
    }
    assert_eq!(n, records);
    for file in &files[..2] {
        let (cached, _) = resident(file, 0, 32 * MIB);
        assert_eq!(cached, 0, "{} cached after reading it", file.display());
    }
}
