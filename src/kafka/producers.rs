//! Idempotent producers: the ids handed out, and the last batches each wrote to each partition,
//! so a retried batch is recognised (and answered with its first write's offset) instead of
//! written twice, and a batch out of sequence is refused — as Kafka does.
//!
//! The state survives restarts as Kafka's does: every batch in the log carries its producer's
//! id, epoch and sequence, so a partition's state is rebuilt from a snapshot and the batches
//! after it. A snapshot (`producers.snapshot` in the partition's directory) is written when the
//! partition rolls a segment and when the server stops; the first idempotent write to a
//! partition after a start loads it and replays the batches written since, at most the newest
//! [`MAX_REPLAY_SEGMENTS`] segments (a producer retries only batches it sent moments ago).
//! A partition remembers at most [`MAX_PRODUCERS`] producers (the one that wrote least
//! recently is forgotten first), so made-up producer ids cannot grow memory without bound.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::log::{Partition, PartitionReader};

/// Batches remembered per producer and partition, to recognise a retried one (as Kafka does).
const REMEMBERED_BATCHES: usize = 5;

/// Producers remembered per partition.
pub const MAX_PRODUCERS: usize = 10_000;

/// The most segments replayed to rebuild a partition's producers after a start.
pub const MAX_REPLAY_SEGMENTS: usize = 4;

/// A snapshot larger than this is not ours (at most [`MAX_PRODUCERS`] producers fit well
/// within it) and is ignored.
const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

const SNAPSHOT_FILE: &str = "producers.snapshot";

/// Idempotent producers: ids handed out, and each partition's producers.
pub struct Producers {
    next_id: AtomicI64,
    /// One entry per partition written by an idempotent producer since the start; each has its
    /// own lock, so rebuilding one partition holds up no other.
    partitions: Mutex<HashMap<(String, i32), SharedPartition>>,
}

type SharedPartition = Arc<Mutex<PartitionProducers>>;

/// One partition's producers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartitionProducers {
    /// Offsets below this are covered by the snapshot on disk (its own `base` once loaded).
    base: i64,
    producers: HashMap<i64, Sequence>,
    /// Rebuilt from the snapshot and the log since this start.
    #[serde(skip)]
    recovered: bool,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Sequence {
    epoch: i16,
    /// (first sequence, last sequence, base offset written), oldest first.
    recent: VecDeque<(i32, i32, i64)>,
}

impl Sequence {
    fn last_offset(&self) -> i64 {
        self.recent.back().map_or(-1, |&(_, _, base)| base)
    }
}

/// What a batch says about its producer.
#[derive(Debug, Clone, Copy)]
pub struct ProducedBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

/// Why a batch was not written.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<E> {
    /// The producer was fenced by a newer epoch.
    StaleEpoch { epoch: i16, current: i16 },
    /// The batch does not follow the producer's last one.
    OutOfOrder { first: i32, expected: i32 },
    /// The write itself failed.
    Write(E),
}

impl Default for Producers {
    fn default() -> Self {
        Self::new()
    }
}

impl Producers {
    pub fn new() -> Self {
        // Ids from the clock, so ids handed out before a restart are not handed out again.
        let start = crate::time::now_nanos() / 1_000_000 * 1000;
        Producers {
            next_id: AtomicI64::new(start),
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// A new producer id (InitProducerId).
    pub fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn entry(&self, partition: &Partition) -> SharedPartition {
        let key = (partition.topic().to_owned(), partition.id() as i32);
        lock(&self.partitions).entry(key).or_default().clone()
    }

    /// Writes `batch` to `partition` with `write` (which returns the base offset written)
    /// unless it is a retry of one of the producer's last batches — then the earlier base
    /// offset is returned and nothing is written — or out of sequence.
    pub fn write_once<E>(
        &self,
        partition: &Arc<Partition>,
        batch: &ProducedBatch,
        write: impl FnOnce() -> Result<i64, E>,
    ) -> Result<i64, Refused<E>> {
        let entry = self.entry(partition);
        let mut state = lock(&entry);
        if !state.recovered {
            state.recover(partition);
        }
        let (first, last) = (batch.first_sequence, batch.last_sequence);
        let known = state.producers.contains_key(&batch.producer_id);
        if !known && state.producers.len() >= MAX_PRODUCERS {
            state.forget_least_recent();
        }
        let sequence = state.producers.entry(batch.producer_id).or_default();
        if batch.epoch < sequence.epoch {
            return Err(Refused::StaleEpoch {
                epoch: batch.epoch,
                current: sequence.epoch,
            });
        }
        if batch.epoch > sequence.epoch {
            *sequence = Sequence {
                epoch: batch.epoch,
                recent: VecDeque::new(),
            };
        }
        if let Some(&(_, _, base)) = sequence
            .recent
            .iter()
            .find(|&&(f, l, _)| f == first && l == last)
        {
            return Ok(base); // a retry of a batch already written
        }
        if let Some(&(_, previous, _)) = sequence.recent.back() {
            let expected = if previous == i32::MAX {
                0
            } else {
                previous + 1
            };
            if first != expected {
                return Err(Refused::OutOfOrder { first, expected });
            }
        }
        let base = write().map_err(Refused::Write)?;
        sequence.remember(first, last, base);
        // A segment rolled since the last snapshot: take one, so a restart replays at most
        // the segments written after it.
        let active = partition.active_base();
        if active > state.base {
            state.save(partition, active);
        }
        Ok(base)
    }

    /// Writes every partition's snapshot as of now (at a clean stop): the next start replays
    /// nothing.
    pub fn save_all(&self, partition: impl Fn(&str, i32) -> Option<Arc<Partition>>) {
        let entries: Vec<_> = lock(&self.partitions)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((topic, index), entry) in entries {
            let mut state = lock(&entry);
            if let Some(partition) = partition(&topic, index)
                && state.recovered
            {
                let end = partition.next_offset();
                state.save(&partition, end);
            }
        }
    }
}

impl Sequence {
    fn remember(&mut self, first: i32, last: i32, base: i64) {
        self.recent.push_back((first, last, base));
        if self.recent.len() > REMEMBERED_BATCHES {
            self.recent.pop_front();
        }
    }
}

impl PartitionProducers {
    fn forget_least_recent(&mut self) {
        if let Some((&id, _)) = self
            .producers
            .iter()
            .min_by_key(|(_, sequence)| sequence.last_offset())
        {
            self.producers.remove(&id);
        }
    }

    /// Loads the snapshot, then replays the batches written after it.
    fn recover(&mut self, partition: &Arc<Partition>) {
        self.recovered = true;
        let end = partition.next_offset();
        let path = snapshot_path(partition.dir());
        let mut from = partition.log_start();
        match read_snapshot(&path) {
            Ok(Some(snapshot)) => {
                from = snapshot.base.clamp(from, end);
                self.producers = snapshot.producers;
                // What a crash took from the log's tail is not there to be retried against.
                for sequence in self.producers.values_mut() {
                    sequence.recent.retain(|&(_, _, base)| base < end);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "kafka: ignoring an unreadable producer snapshot; rebuilding from the log")
            }
        }
        self.base = from;
        let replay_from = from.max(partition.newest_segments_base(MAX_REPLAY_SEGMENTS));
        let mut reader = PartitionReader::new(partition.clone(), replay_from);
        loop {
            match reader.next_batch() {
                Ok(Some(batch)) => {
                    let h = batch.header;
                    if h.producer_id >= 0 {
                        let last = h.base_sequence.wrapping_add(h.last_offset_delta);
                        self.replay(
                            h.producer_id,
                            h.producer_epoch,
                            h.base_sequence,
                            last,
                            h.base_offset,
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(partition = %partition.name(), error = %e, "kafka: rebuilding idempotent producers stopped at an unreadable batch");
                    break;
                }
            }
        }
        if self.producers.len() > MAX_PRODUCERS {
            let excess = self.producers.len() - MAX_PRODUCERS;
            (0..excess).for_each(|_| self.forget_least_recent());
        }
    }

    /// Applies one batch read back from the log.
    fn replay(&mut self, producer_id: i64, epoch: i16, first: i32, last: i32, base: i64) {
        let sequence = self.producers.entry(producer_id).or_default();
        if epoch < sequence.epoch {
            return;
        }
        if epoch > sequence.epoch {
            *sequence = Sequence {
                epoch,
                recent: VecDeque::new(),
            };
        }
        if !sequence.recent.iter().any(|&(_, _, b)| b == base) {
            sequence.remember(first, last, base);
        }
    }

    /// Writes the producers of batches below `base` as the partition's snapshot.
    fn save(&mut self, partition: &Partition, base: i64) {
        let snapshot = PartitionProducers {
            base,
            producers: self
                .producers
                .iter()
                .filter_map(|(&id, sequence)| {
                    let mut kept = sequence.clone();
                    kept.recent.retain(|&(_, _, b)| b < base);
                    (!kept.recent.is_empty()).then_some((id, kept))
                })
                .collect(),
            recovered: true,
        };
        let path = snapshot_path(partition.dir());
        let written = serde_json::to_vec(&snapshot)
            .map_err(|e| e.to_string())
            .and_then(|bytes| crate::atomic_file::write(&path, &bytes).map_err(|e| e.to_string()));
        match written {
            Ok(()) => self.base = base,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "kafka: cannot write a producer snapshot; a restart rebuilds from the log instead")
            }
        }
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

fn read_snapshot(path: &Path) -> Result<Option<PartitionProducers>, String> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if size > MAX_SNAPSHOT_BYTES {
        return Err(format!("{size} bytes is more than a snapshot can hold"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut snapshot: PartitionProducers =
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if snapshot.producers.len() > MAX_PRODUCERS {
        return Err(format!(
            "{} producers is more than a partition keeps",
            snapshot.producers.len()
        ));
    }
    for sequence in snapshot.producers.values_mut() {
        while sequence.recent.len() > REMEMBERED_BATCHES {
            sequence.recent.pop_front();
        }
    }
    Ok(Some(snapshot))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{BatchBuilder, compute_crc};
    use crate::log::{Log, LogConfig};

    fn batch(epoch: i16, first: i32, last: i32) -> ProducedBatch {
        ProducedBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: last,
        }
    }

    /// A batch of producer 9.
    fn early(epoch: i16) -> ProducedBatch {
        ProducedBatch {
            producer_id: 9,
            epoch,
            first_sequence: 0,
            last_sequence: 0,
        }
    }

    /// A log whose segments roll every few batches.
    fn log(dir: &Path) -> Log {
        let mut config = LogConfig::in_dir(dir);
        config.segment_bytes = 1024;
        let log = Log::open(config).unwrap();
        if log.partition("t", 0).is_err() {
            log.create_topic("t", 2).unwrap();
        }
        log
    }

    /// Writes `b` as a real batch carrying its producer's id, epoch and sequence.
    fn write(partition: &Arc<Partition>, b: &ProducedBatch) -> impl FnOnce() -> Result<i64, ()> {
        let mut builder = BatchBuilder::new();
        for _ in b.first_sequence..=b.last_sequence {
            builder.push(0, None, &[b'x'; 100]);
        }
        let mut bytes = builder.finish();
        bytes[43..51].copy_from_slice(&b.producer_id.to_be_bytes());
        bytes[51..53].copy_from_slice(&b.epoch.to_be_bytes());
        bytes[53..57].copy_from_slice(&b.first_sequence.to_be_bytes());
        let crc = compute_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let partition = partition.clone();
        move || Ok(partition.append(&bytes).unwrap().base_offset)
    }

    fn once(
        producers: &Producers,
        p: &Arc<Partition>,
        b: ProducedBatch,
    ) -> Result<i64, Refused<()>> {
        producers.write_once(p, &b, write(p, &b))
    }

    #[test]
    fn a_retried_batch_is_written_once_and_a_gap_or_old_epoch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        let (p0, p1) = (
            log.partition("t", 0).unwrap(),
            log.partition("t", 1).unwrap(),
        );
        let producers = Producers::new();
        assert_eq!(once(&producers, &p0, batch(0, 0, 2)), Ok(0));
        assert_eq!(once(&producers, &p0, batch(0, 3, 4)), Ok(3));
        // The retry gets the first write's offset; nothing is written.
        assert_eq!(once(&producers, &p0, batch(0, 0, 2)), Ok(0));
        assert_eq!(p0.next_offset(), 5);
        assert_eq!(
            once(&producers, &p0, batch(0, 9, 9)),
            Err(Refused::OutOfOrder {
                first: 9,
                expected: 5
            })
        );
        // Another partition is its own sequence.
        assert_eq!(once(&producers, &p1, batch(0, 0, 0)), Ok(0));
        // A new epoch starts afresh and fences the old one.
        assert_eq!(once(&producers, &p0, batch(1, 0, 0)), Ok(5));
        assert_eq!(
            once(&producers, &p0, batch(0, 5, 5)),
            Err(Refused::StaleEpoch {
                epoch: 0,
                current: 1
            })
        );
        assert_ne!(producers.next_id(), producers.next_id());
    }

    #[test]
    fn retries_across_a_restart_are_recognised_with_or_without_a_clean_stop() {
        for clean in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let written: Vec<i64> = {
                let log = log(dir.path());
                let p = log.partition("t", 0).unwrap();
                let producers = Producers::new();
                // Another producer's batch, long before the last segments.
                assert_eq!(once(&producers, &p, early(0)), Ok(0));
                // Enough batches to roll several segments (a snapshot at each roll).
                let offsets = (0..40)
                    .map(|i| once(&producers, &p, batch(0, i * 2, i * 2 + 1)).unwrap())
                    .collect();
                assert!(p.segment_count() > 4, "{} segments", p.segment_count());
                if clean {
                    producers.save_all(|_, _| Some(p.clone()));
                }
                offsets
            };
            // A new Blink: the last batches, retried, get their first offsets back.
            let log = log(dir.path());
            let p = log.partition("t", 0).unwrap();
            let end = p.next_offset();
            let producers = Producers::new();
            for i in 35..40 {
                assert_eq!(
                    once(&producers, &p, batch(0, i * 2, i * 2 + 1)),
                    Ok(written[i as usize]),
                    "clean stop: {clean}, batch {i}"
                );
            }
            // Found in the snapshot: the replay reads only the newest segments.
            assert_eq!(once(&producers, &p, early(0)), Ok(0), "clean stop: {clean}");
            assert_eq!(p.next_offset(), end, "nothing was written twice");
            // The sequence goes on where it was; a gap is still refused.
            assert_eq!(
                once(&producers, &p, batch(0, 81, 81)),
                Err(Refused::OutOfOrder {
                    first: 81,
                    expected: 80
                })
            );
            assert_eq!(once(&producers, &p, batch(0, 80, 80)), Ok(end));
        }
    }

    #[test]
    fn a_snapshot_naming_offsets_a_crash_took_is_not_trusted_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        let p = log.partition("t", 0).unwrap();
        let producers = Producers::new();
        once(&producers, &p, batch(0, 0, 0)).unwrap();
        producers.save_all(|_, _| Some(p.clone()));
        // Claim a batch at offset 500, which the log does not hold.
        let path = snapshot_path(p.dir());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("[0,0,0]", "[0,0,500]")).unwrap();
        let producers = Producers::new();
        // The batch is written, not answered with an offset that does not exist.
        assert_eq!(once(&producers, &p, batch(0, 0, 0)), Ok(1));
        // A snapshot that is not ours is ignored, with a rebuild from the log.
        std::fs::write(&path, b"{not json").unwrap();
        let producers = Producers::new();
        assert_eq!(
            once(&producers, &p, batch(0, 0, 0)),
            Ok(0),
            "found in the log"
        );
        assert_eq!(p.next_offset(), 2, "and not written again");
    }

    #[test]
    fn made_up_producer_ids_cannot_grow_a_partitions_memory() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        let p = log.partition("t", 0).unwrap();
        let producers = Producers::new();
        for id in 0..(MAX_PRODUCERS as i64 + 50) {
            let b = ProducedBatch {
                producer_id: id,
                epoch: 0,
                first_sequence: 0,
                last_sequence: 0,
            };
            producers.write_once(&p, &b, || Ok::<i64, ()>(id)).unwrap();
        }
        let entry = producers.entry(&p);
        let state = lock(&entry);
        assert_eq!(state.producers.len(), MAX_PRODUCERS);
        assert!(
            !state.producers.contains_key(&0),
            "the least recent is forgotten first"
        );
    }
}
