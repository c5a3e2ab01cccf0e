//! The log end to end through its public API: appends, reads at any offset, index seeks,
//! recovery of torn and corrupt segments, retention, batching, and failing storage.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use blink::checkpoint::{CheckpointStore, CheckpointValue};
use blink::log::batch::{self, BatchBuilder};
use blink::log::storage::{OsStorage, Storage};
use blink::log::{
    CheckpointTarget, INPUT_TOPIC, Log, LogError, LogServices, Partition, PartitionReader,
    Retention, TopicSettings,
};
use blink::log::{FsyncPolicy, LogConfig};
use blink::message::{Message, MessageView};
use proptest::prelude::*;

fn config(dir: &Path, segment_bytes: u64) -> LogConfig {
    let mut config = LogConfig::in_dir(dir);
    config.segment_bytes = segment_bytes;
    config
}

fn value(n: i64) -> Vec<u8> {
    // Varying sizes so batches and segments end at irregular places.
    format!("record-{n}-{}", "x".repeat((n % 37) as usize)).into_bytes()
}

/// Appends `sizes.len()` batches of the given record counts; returns the total records.
fn append_batches(partition: &Partition, first: i64, sizes: &[usize]) -> i64 {
    let mut n = first;
    for &size in sizes {
        let mut builder = BatchBuilder::new();
        for _ in 0..size {
            builder.push(1_700_000_000_000 + n, None, &value(n));
            n += 1;
        }
        let batch = builder.finish();
        let appended = partition.append(&batch).unwrap();
        assert_eq!(appended.last_offset, n - 1);
    }
    n
}

fn read_all(partition: &Arc<Partition>, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut reader = PartitionReader::new(partition.clone(), from);
    let mut out = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        out.push((record.offset, record.value.unwrap().to_vec()));
    }
    out
}

fn tail_path(dir: &Path) -> PathBuf {
    let mut logs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn creates_the_two_queues() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
    let topics = log.topics();
    assert_eq!(
        topics,
        [
            ("blink.analysis".to_string(), 1),
            ("blink.input".to_string(), 1)
        ]
    );
    assert!(
        dir.path()
            .join("blink.input-0/00000000000000000000.log")
            .exists()
    );
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
    let err = Log::open(LogConfig::in_dir(dir.path())).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    // Said once, naming the lock file and the holder.
    let text = err.to_string();
    assert!(
        text.contains(&format!("(pid {})", std::process::id())),
        "{text}"
    );
    assert!(text.contains(".lock"), "{text}");
    assert_eq!(text.matches("lock").count(), 2, "{text}");
}

#[test]
fn reads_from_every_offset_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(config(dir.path(), 2048)).unwrap();
    log.create_topic("events", 2).unwrap();
    let partition = log.partition("events", 1).unwrap();
    let total = append_batches(
        &partition,
        0,
        &[1, 5, 17, 3, 20, 1, 1, 30, 9, 30, 2, 25, 7, 7, 7],
    );
    assert!(partition.segment_count() > 3, "small segments roll");
    for from in 0..=total {
        let records = read_all(&partition, from);
        assert_eq!(records.len() as i64, total - from, "from {from}");
        for (offset, v) in &records {
            assert_eq!(v, &value(*offset));
        }
    }
    let err = PartitionReader::new(partition.clone(), -1)
        .next_record()
        .unwrap_err();
    assert!(matches!(err, LogError::OffsetOutOfRange { .. }), "{err}");
}

#[test]
fn index_seeks_without_reading_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(config(dir.path(), 1 << 20)).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    let total = append_batches(&partition, 0, &[10; 500]);
    log.close().unwrap();
    drop(log);
    // The closed-segment index is on disk: Kafka's 8-byte entries.
    let index = fs::read(partition.dir().join("00000000000000000000.index")).unwrap();
    assert!(
        index.len() >= 8 * 10,
        "index has entries: {} bytes",
        index.len()
    );

    // Corrupt the first batch: a seek far past it must not touch it, a read from 0 must fail.
    let log = Log::open(config(dir.path(), 1 << 20)).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    let file = OpenOptions::new()
        .write(true)
        .open(tail_path(partition.dir()))
        .unwrap();
    file.write_all_at(b"\xff", 70).unwrap();
    let far = read_all(&partition, total - 5);
    assert_eq!(far.first().unwrap().0, total - 5);
    let err = PartitionReader::new(partition.clone(), 0)
        .next_record()
        .unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { position: 0, .. }),
        "{err}"
    );
}

#[test]
fn producer_batches_are_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
    log.create_topic("raw", 1).unwrap();
    let partition = log.partition("raw", 0).unwrap();
    append_batches(&partition, 0, &[3]);
    // A batch marked gzip-compressed with producer ids set: opaque bytes the log must keep.
    let mut builder = BatchBuilder::new();
    builder.push(5, Some(b"k"), b"pretend-compressed");
    let mut sent = builder.finish();
    sent[21..23].copy_from_slice(&1i16.to_be_bytes());
    sent[43..51].copy_from_slice(&77i64.to_be_bytes());
    sent[51..53].copy_from_slice(&3i16.to_be_bytes());
    sent[53..57].copy_from_slice(&9i32.to_be_bytes());
    let crc = batch::compute_crc(&sent);
    sent[17..21].copy_from_slice(&crc.to_be_bytes());
    batch::set_base_offset(&mut sent, 12345); // whatever the client put there is replaced
    let original = sent.clone();
    let appended = partition.append(&sent).unwrap();
    assert_eq!(appended.base_offset, 3);
    let stored = blink::log::read_batches(&partition, 3, 1 << 20).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        &stored[0][8..],
        &original[8..],
        "all but the base offset unchanged"
    );
    assert_eq!(&stored[0][..8], &3i64.to_be_bytes());
    let mut reader = PartitionReader::new(partition, 3);
    let err = reader.next_record().unwrap_err().to_string();
    assert!(err.contains("gzip"), "{err}");
}

#[test]
fn fetch_returns_the_whole_batch_holding_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    append_batches(&partition, 0, &[10, 10]);
    let batches = blink::log::read_batches(&partition, 15, 1).unwrap();
    assert_eq!(batches.len(), 1, "at least one batch even past max_bytes");
    assert_eq!(
        &batches[0][..8],
        &10i64.to_be_bytes(),
        "the batch containing 15 starts at 10"
    );
    assert!(
        blink::log::read_batches(&partition, 20, 1 << 20)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn torn_tail_is_cut_at_every_possible_length() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    let sizes = [4, 1, 7, 2];
    let (full, last_batch_start) = {
        let log = Log::open(cfg.clone()).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        append_batches(&partition, 0, &sizes[..3]);
        let start = partition.size_bytes();
        append_batches(&partition, 12, &sizes[3..]);
        log.close().unwrap();
        (fs::read(tail_path(partition.dir())).unwrap(), start)
    };
    let tail = dir.path().join("blink.input-0/00000000000000000000.log");
    for cut in last_batch_start..full.len() as u64 {
        fs::write(&tail, &full[..cut as usize]).unwrap();
        let log = Log::open(cfg.clone()).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        let expected = if cut == full.len() as u64 { 14 } else { 12 };
        assert_eq!(partition.next_offset(), expected, "cut at {cut}");
        assert_eq!(
            fs::metadata(&tail).unwrap().len(),
            last_batch_start,
            "cut at {cut}"
        );
        assert_eq!(read_all(&partition, 0).len(), 12);
        // Appends continue at the right offset.
        let mut b = BatchBuilder::new();
        b.push(0, None, b"after");
        assert_eq!(partition.append(&b.finish()).unwrap().base_offset, 12);
    }
}

#[test]
fn trailing_zeros_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    {
        let log = Log::open(cfg.clone()).unwrap();
        append_batches(&log.partition(INPUT_TOPIC, 0).unwrap(), 0, &[3, 3]);
    }
    let tail = dir.path().join("blink.input-0/00000000000000000000.log");
    let good = fs::metadata(&tail).unwrap().len();
    let file = OpenOptions::new().append(true).open(&tail).unwrap();
    file.set_len(good + 5000).unwrap(); // a crash after the size grew but before data landed
    let log = Log::open(cfg).unwrap();
    assert_eq!(log.partition(INPUT_TOPIC, 0).unwrap().next_offset(), 6);
    assert_eq!(fs::metadata(&tail).unwrap().len(), good);
}

#[test]
fn corruption_followed_by_good_data_is_reported_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    {
        let log = Log::open(cfg.clone()).unwrap();
        append_batches(&log.partition(INPUT_TOPIC, 0).unwrap(), 0, &[3, 3, 3]);
    }
    let tail = dir.path().join("blink.input-0/00000000000000000000.log");
    let before = fs::read(&tail).unwrap();
    let file = OpenOptions::new().write(true).open(&tail).unwrap();
    file.write_all_at(b"\x00\x00", 80).unwrap(); // inside the first batch's records
    let err = Log::open(cfg).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, LogError::Corrupt { position: 0, .. }),
        "{text}"
    );
    assert!(
        text.contains("00000000000000000000.log") && text.contains("intact batch follows"),
        "{text}"
    );
    assert_eq!(
        fs::read(&tail).unwrap().len(),
        before.len(),
        "nothing was cut"
    );
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 8192);
    let total = {
        let log = Log::open(cfg.clone()).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        let total = append_batches(&partition, 0, &[3; 200]);
        assert!(partition.segment_count() > 3);
        total
    };
    let pdir = dir.path().join("blink.input-0");
    let mut indexes: Vec<_> = fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    indexes.sort();
    fs::remove_file(&indexes[0]).unwrap();
    fs::write(&indexes[1], b"\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
    fs::write(&indexes[2], b"\x00\x01").unwrap();
    let log = Log::open(cfg).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    assert_eq!(partition.next_offset(), total);
    assert!(indexes[0].exists(), "rebuilt index written back");
    for from in [0, 50, 100, 333, total - 1] {
        assert_eq!(read_all(&partition, from).first().unwrap().0, from);
    }
}

#[test]
fn a_truncated_closed_segment_is_an_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4096);
    {
        let log = Log::open(cfg.clone()).unwrap();
        append_batches(&log.partition(INPUT_TOPIC, 0).unwrap(), 0, &[5; 60]);
    }
    let first = dir.path().join("blink.input-0/00000000000000000000.log");
    let len = fs::metadata(&first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let err = Log::open(cfg).unwrap_err().to_string();
    assert!(err.contains("00000000000000000000.log"), "{err}");
}

#[test]
fn retention_by_size_and_time_respects_reader_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 4096);
    cfg.retention_bytes = Some(3 * 4096);
    let log = Log::open(cfg.clone()).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    let total = append_batches(&partition, 0, &[5; 300]);
    let segments = partition.segment_count();
    assert!(segments > 6);

    // A reader still at offset 400 holds everything from the segment containing 400.
    let deleted = partition
        .apply_retention(
            SystemTime::now(),
            Some(400),
            Retention::global(partition.config()),
        )
        .unwrap();
    assert!(!deleted.is_empty());
    assert!(partition.log_start() <= 400, "never past a checkpoint");
    assert_eq!(read_all(&partition, 400).len() as i64, total - 400);

    // Without the reader, size retention trims to about three segments.
    partition
        .apply_retention(
            SystemTime::now(),
            None,
            Retention::global(partition.config()),
        )
        .unwrap();
    assert!(
        partition.size_bytes() <= 4 * 4096,
        "{}",
        partition.size_bytes()
    );
    let start = partition.log_start();
    assert!(start > 400);
    let err = PartitionReader::new(partition.clone(), 0)
        .next_record()
        .unwrap_err();
    assert!(
        matches!(err, LogError::OffsetOutOfRange { start: s, .. } if s == start),
        "{err}"
    );
    drop((partition, log));

    // The log start offset survives a restart; time retention drops all but the active segment.
    let mut cfg = config(dir.path(), 4096);
    cfg.retention_age = Some(Duration::from_secs(60));
    let log = Log::open(cfg).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    assert_eq!(partition.log_start(), start);
    partition
        .apply_retention(
            SystemTime::now(),
            None,
            Retention::global(partition.config()),
        )
        .unwrap();
    assert_eq!(
        partition.log_start(),
        start,
        "nothing is older than a minute"
    );
    partition
        .apply_retention(
            SystemTime::now() + Duration::from_secs(3600),
            None,
            Retention::global(partition.config()),
        )
        .unwrap();
    assert_eq!(partition.segment_count(), 1);
    assert_eq!(partition.next_offset(), total);
}

#[test]
fn a_topic_keeps_its_own_retention_across_a_restart_and_forgets_it_when_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(config(dir.path(), 4096)).unwrap();
    log.create_topic("short", 1).unwrap();
    log.create_topic("long", 1).unwrap();
    let mut settings = TopicSettings::default();
    settings.set("retention.bytes", Some("8192")).unwrap();
    log.set_topic_settings("short", settings.clone()).unwrap();
    assert!(matches!(
        log.set_topic_settings("missing", settings.clone()),
        Err(LogError::UnknownTopic(_))
    ));
    for topic in ["short", "long"] {
        append_batches(&log.partition(topic, 0).unwrap(), 0, &[5; 300]);
    }
    let deleted = log.apply_retention(SystemTime::now(), |_, _| None).unwrap();
    assert!(deleted > 0);
    let short = log.partition("short", 0).unwrap();
    assert!(short.size_bytes() <= 3 * 4096, "{}", short.size_bytes());
    let long = log.partition("long", 0).unwrap();
    assert_eq!(long.log_start(), 0, "the global retention keeps everything");
    drop((short, long, log));

    let log = Log::open(config(dir.path(), 4096)).unwrap();
    assert_eq!(log.topic_settings("short"), settings);
    assert_eq!(log.retention("short").bytes, Some(8192));
    log.delete_topic("short").unwrap();
    log.create_topic("short", 1).unwrap();
    assert!(log.topic_settings("short").is_empty());
    drop(log);

    // A damaged settings file stops the open with its path, rather than retention going wrong.
    fs::write(dir.path().join("topic_settings.json"), "{not json").unwrap();
    let err = Log::open(config(dir.path(), 4096)).unwrap_err().to_string();
    assert!(err.contains("topic_settings.json"), "{err}");
}

#[test]
fn appender_batches_lingers_and_publishes_checkpoints_after_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig::in_dir(dir.path());
    cfg.batch.max_messages = 10;
    cfg.batch.linger = Duration::from_millis(5);
    let log = Log::open(cfg).unwrap();
    let store = Arc::new(CheckpointStore::open(dir.path()).unwrap());
    let target = CheckpointTarget {
        store: store.clone(),
        input: "input.test".into(),
    };
    let appender = log.appender(INPUT_TOPIC, 0, Some(target)).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();

    for n in 0..25 {
        let v = value(n);
        appender
            .append_encoded(n, v.len(), Some(CheckpointValue::Number(n as f64)), |out| {
                out.extend_from_slice(&v)
            })
            .unwrap();
    }
    // Two full batches of 10 are written; 5 wait for the linger thread.
    assert!(partition.next_offset() >= 20);
    assert!(
        partition.wait_for(24, Duration::from_secs(10)),
        "linger flushes the rest"
    );
    assert_eq!(partition.next_offset(), 25);
    let batches = blink::log::read_batches(&partition, 0, 1 << 20).unwrap();
    assert_eq!(batches.len(), 3);
    // Give the checkpoint publication (right after the write) a moment, bounded.
    for _ in 0..100 {
        if store.input("input.test") == Some(CheckpointValue::Number(24.0)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        store.input("input.test"),
        Some(CheckpointValue::Number(24.0))
    );

    let too_big = vec![0; 65537];
    let err = appender.append(0, &too_big).unwrap_err().to_string();
    assert!(
        err.contains("65537") && err.contains("max_message_size"),
        "{err}"
    );
    assert_eq!(appender.flush().unwrap(), None, "nothing half-written");
    assert_eq!(partition.next_offset(), 25);
}

#[test]
fn queue_records_are_heka_messages_stamped_in_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
    let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
    let mut message = Message::new([9; 16], 1_700_000_000_123_456_789);
    message.payload = Some(b"hi".to_vec());
    appender.append_message(&message, None).unwrap();
    appender.flush().unwrap();
    let record = log
        .reader(INPUT_TOPIC, 0, 0)
        .unwrap()
        .next_record()
        .unwrap()
        .unwrap();
    assert_eq!(record.timestamp, 1_700_000_000_123);
    assert_eq!(record.key, None);
    let view = MessageView::parse(record.value.as_deref().unwrap()).unwrap();
    assert_eq!(Message::from(&view), message);
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig::in_dir(dir.path());
    cfg.segment_age = Duration::from_millis(30);
    let log = Log::open(cfg).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    append_batches(&partition, 0, &[2]);
    append_batches(&partition, 2, &[2]);
    assert_eq!(partition.segment_count(), 1, "young segment keeps growing");
    std::thread::sleep(Duration::from_millis(40));
    append_batches(&partition, 4, &[2]);
    assert_eq!(
        partition.segment_count(),
        2,
        "old segment rolled before the append"
    );
    assert_eq!(partition.active_base(), 4);
    assert!(partition.dir().join("00000000000000000000.index").exists());
}

#[test]
fn a_waiting_reader_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(LogConfig::in_dir(dir.path())).unwrap());
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    let mut reader = PartitionReader::new(partition.clone(), 0);
    assert!(reader.next_record().unwrap().is_none());
    let writer = {
        let partition = partition.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            append_batches(&partition, 0, &[2]);
        })
    };
    assert!(reader.wait(Duration::from_secs(30)).unwrap());
    assert_eq!(reader.next_record().unwrap().unwrap().offset, 0);
    assert_eq!(reader.next_record().unwrap().unwrap().offset, 1);
    assert!(!reader.wait(Duration::from_millis(10)).unwrap());
    writer.join().unwrap();
}

#[test]
fn a_read_only_log_follows_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4096);
    let log = Log::open(cfg.clone()).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    append_batches(&partition, 0, &[5]);
    let follower = Log::open_read_only(cfg).unwrap();
    let mut reader = follower.reader(INPUT_TOPIC, 0, 0).unwrap();
    let mut seen = 0;
    while reader.next_record().unwrap().is_some() {
        seen += 1;
    }
    assert_eq!(seen, 5);
    append_batches(&partition, 5, &[5; 40]); // rolls several segments
    while seen < 205 {
        assert!(
            reader.wait(Duration::from_secs(10)).unwrap(),
            "follower sees new data"
        );
        while let Some(record) = reader.next_record().unwrap() {
            assert_eq!(record.offset, seen);
            seen += 1;
        }
    }
    let err = follower
        .partition(INPUT_TOPIC, 0)
        .unwrap()
        .append(&BatchBuilder::new().finish())
        .unwrap_err();
    assert!(matches!(err, LogError::ReadOnly(_)), "{err}");
}

/// Storage that fails on demand: cuts the Nth write short, or fails syncs.
struct Faulty {
    writes: AtomicUsize,
    cut_write: usize,
    fail_sync: bool,
}

impl Storage for Faulty {
    fn write_at(&self, file: &fs::File, buf: &[u8], position: u64) -> io::Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) == self.cut_write {
            file.write_all_at(&buf[..buf.len() / 2], position)?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left (test)",
            ));
        }
        OsStorage.write_at(file, buf, position)
    }

    fn sync(&self, file: &fs::File) -> io::Result<()> {
        if self.fail_sync {
            return Err(io::Error::other("sync failed (test)"));
        }
        OsStorage.sync(file)
    }
}

#[test]
fn a_short_write_leaves_nothing_half_written_and_keeps_the_batch() {
    // A batch is two writes (its base offset, then the rest): write 4 is the third batch's base
    // offset, write 5 its body. Either cut short must leave nothing behind.
    for cut_write in [4, 5] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = LogConfig::in_dir(dir.path());
        cfg.batch.max_messages = 3;
        let services = LogServices {
            storage: Arc::new(Faulty {
                writes: AtomicUsize::new(0),
                cut_write,
                fail_sync: false,
            }),
            ..LogServices::for_config(&cfg)
        };
        let log = Log::open_with(cfg, services).unwrap();
        let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        let mut failures = 0;
        for n in 0..12 {
            if appender.append(n, &value(n)).is_err() {
                failures += 1;
            }
        }
        // The third batch's write failed half-way; the next append retried it and went on.
        assert_eq!(failures, 1, "cut write {cut_write}");
        appender.flush().unwrap();
        drop(appender);
        let records = read_all(&partition, 0);
        let expected: Vec<_> = (0..12).filter(|&n| n != 9).map(value).collect();
        let got: Vec<_> = records.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(
            got, expected,
            "cut write {cut_write}: every accepted record once, in order; the refused one absent"
        );
        drop((partition, log));
        let log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
        assert_eq!(
            log.partition(INPUT_TOPIC, 0).unwrap().next_offset(),
            11,
            "cut write {cut_write}: no torn bytes left to cut"
        );
    }
}

#[test]
fn a_failed_sync_stops_the_partition_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig::in_dir(dir.path());
    cfg.fsync = FsyncPolicy::Always;
    let services = LogServices {
        storage: Arc::new(Faulty {
            writes: AtomicUsize::new(0),
            cut_write: usize::MAX,
            fail_sync: true,
        }),
        ..LogServices::for_config(&cfg)
    };
    let log = Log::open_with(cfg, services).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    let mut b = BatchBuilder::new();
    b.push(0, None, b"a");
    let err = partition.append(&b.finish()).unwrap_err();
    assert!(err.to_string().contains("fsync"), "{err}");
    b.push(0, None, b"b");
    let err = partition.append(&b.finish()).unwrap_err();
    assert!(matches!(err, LogError::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("restart Blink"), "{err}");
    drop((partition, log));
    let log = Log::open(LogConfig::in_dir(dir.path())).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    // The unsynced batch reached the OS, so it is still there after the reopen.
    assert_eq!(read_all(&partition, 0).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn append_read_round_trip(
        sizes in proptest::collection::vec(1usize..30, 1..40),
        segment in 2048u64..20_000,
        reads in proptest::collection::vec(any::<prop::sample::Index>(), 1..10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let total = {
            let log = Log::open(config(dir.path(), segment)).unwrap();
            append_batches(&log.partition(INPUT_TOPIC, 0).unwrap(), 0, &sizes)
        };
        let log = Log::open(config(dir.path(), segment)).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        prop_assert_eq!(partition.next_offset(), total);
        for index in reads {
            let from = index.index(total as usize) as i64;
            let records = read_all(&partition, from);
            prop_assert_eq!(records.len() as i64, total - from);
            prop_assert_eq!(records[0].0, from);
            prop_assert_eq!(&records[0].1, &value(from));
        }
    }
}

#[test]
fn an_input_reading_a_topic_through_the_kafka_module_holds_its_retention_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 4096);
    cfg.retention_bytes = Some(2 * 4096);
    let log = Log::open(cfg).unwrap();
    let store = CheckpointStore::open(dir.path()).unwrap();
    log.create_topic("events", 1).unwrap();
    let partition = log.partition("events", 0).unwrap();
    append_batches(&partition, 0, &[5; 300]);
    // The bridge's checkpoint says it has read up to offset 40.
    store.set_input("bridge", CheckpointValue::String("events:0:40".into()));
    log.register_topic_consumer("bridge");
    blink::durability::tick(&log, &store).unwrap();
    assert!(partition.log_start() <= 40, "{}", partition.log_start());
    assert_eq!(read_all(&partition, 40)[0].0, 40);
    // Once the plugin stops, it holds nothing back.
    log.unregister_topic_consumer("bridge");
    blink::durability::tick(&log, &store).unwrap();
    assert!(partition.log_start() > 40, "{}", partition.log_start());
}

#[test]
fn an_append_is_light_only_when_it_neither_rolls_nor_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(config(dir.path(), 4096)).unwrap();
    log.create_topic("t", 1).unwrap();
    let partition = log.partition("t", 0).unwrap();
    assert!(partition.append_is_light(100), "an empty segment takes it");
    append_batches(&partition, 0, &[20]);
    let used = partition.size_bytes() as usize;
    assert!(
        partition.append_is_light(4096 - used),
        "fills the segment exactly"
    );
    assert!(
        !partition.append_is_light(4096 - used + 1),
        "would roll the segment"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut always = config(dir.path(), 4096);
    always.fsync = FsyncPolicy::Always;
    let log = Log::open(always).unwrap();
    log.create_topic("t", 1).unwrap();
    assert!(
        !log.partition("t", 0).unwrap().append_is_light(100),
        "would fsync"
    );
}

/// A closed appender (its plugin instance stopped and, maybe, left behind) writes what it had
/// accepted and publishes that checkpoint, then refuses every append and checkpoint: a
/// replacement starting from the checkpoint sees nothing of it after.
#[test]
fn a_fenced_appender_writes_what_it_accepted_and_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig::in_dir(dir.path());
    cfg.batch.linger = Duration::from_secs(60); // nothing is written but by close
    let log = Log::open(cfg).unwrap();
    let store = Arc::new(CheckpointStore::open(dir.path()).unwrap());
    let target = CheckpointTarget {
        store: store.clone(),
        input: "input.old".into(),
    };
    let appender = log.appender(INPUT_TOPIC, 0, Some(target)).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    for n in 0..3 {
        let v = value(n);
        appender
            .append_encoded(n, v.len(), Some(CheckpointValue::Number(n as f64)), |out| {
                out.extend_from_slice(&v)
            })
            .unwrap();
    }
    assert_eq!(partition.next_offset(), 0, "still buffered");
    let fence = appender.fence();
    fence.close().unwrap();
    assert!(appender.is_closed());
    assert_eq!(
        read_all(&partition, 0).len(),
        3,
        "accepted records are written"
    );
    assert_eq!(
        store.input("input.old"),
        Some(CheckpointValue::Number(2.0)),
        "and their checkpoint published"
    );
    let refused = appender.append(9, b"late").unwrap_err();
    assert!(matches!(refused, LogError::Closed { .. }), "{refused}");
    assert!(refused.to_string().contains("closed"), "{refused}");
    let refused = appender
        .checkpoint(CheckpointValue::Number(0.0))
        .unwrap_err();
    assert!(matches!(refused, LogError::Closed { .. }));
    appender.flush().unwrap();
    assert_eq!(partition.next_offset(), 3, "nothing after the close");
    assert_eq!(store.input("input.old"), Some(CheckpointValue::Number(2.0)));
    fence.close().unwrap(); // twice is harmless
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn open_files_do_not_grow_with_the_segments_kept() {
    let dir = tempfile::tempdir().unwrap();
    let segments = 1000;
    // The page-cache window holds the files of the segments it covers (64 KiB: 16 of these).
    let config = || {
        let mut config = config(dir.path(), 4096);
        config.page_cache_window = Some(64 << 10);
        config
    };
    let written = {
        let log = Log::open(config()).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        let before = open_fds();
        let mut n = 0;
        while partition.segment_count() < segments {
            n = append_batches(&partition, n, &[20]);
        }
        // Reading everything from the start touches every segment.
        assert_eq!(read_all(&partition, 0).len() as i64, n);
        let grown = open_fds().saturating_sub(before);
        eprintln!("{segments} segments written and read: {grown} more open files");
        // Tests in this binary run side by side and open files of their own, hence the
        // margin; one file per segment would be 1000 more.
        assert!(
            grown < 300,
            "{grown} more open files for {segments} segments"
        );
        n
    };
    // Reopening (recovery checks every segment) holds no file per segment either.
    let before = open_fds();
    let log = Log::open(config()).unwrap();
    let partition = log.partition(INPUT_TOPIC, 0).unwrap();
    assert_eq!(read_all(&partition, 0).len() as i64, written);
    let grown = open_fds().saturating_sub(before);
    assert!(
        grown < 300,
        "{grown} more open files after reopening {segments} segments"
    );
}

#[test]
fn the_log_holds_at_most_max_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 1 << 20);
    config.max_partitions = 5;
    let log = Log::open(config).unwrap(); // the two queues take two
    log.create_topic("a", 2).unwrap();
    let refused = log.create_topic("b", 2).unwrap_err();
    assert!(
        matches!(
            refused,
            LogError::TooManyPartitions {
                max: 5,
                existing: 4,
                asked: 2
            }
        ),
        "{refused}"
    );
    assert!(log.partitions("b").is_none(), "nothing of it was created");
    assert!(matches!(
        log.add_partitions("a", 4),
        Err(LogError::TooManyPartitions { .. })
    ));
    log.add_partitions("a", 3).unwrap();
    log.delete_topic("a").unwrap();
    log.create_topic("b", 3).unwrap();
}
