//! Idempotent producers: the ids handed out, and the last batches each wrote to each partition,
//! so a retried batch is recognised (and answered with its first write's offset) instead of
//! written twice, and a batch out of sequence is refused — as Kafka does.
//!
//! The state is in memory: it does not survive a restart of Blink.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Batches remembered per producer and partition, to recognise a retried one (as Kafka does).
const REMEMBERED_BATCHES: usize = 5;

/// Idempotent producers: ids handed out, and the last batches each wrote to each partition.
pub struct Producers {
    next_id: AtomicI64,
    /// (producer id, topic, partition) → its recent batches. One lock: a producer's batches to a
    /// partition are checked and appended in one step.
    sequences: Mutex<HashMap<(i64, String, i32), Sequence>>,
}

#[derive(Debug, Default)]
struct Sequence {
    epoch: i16,
    /// (first sequence, last sequence, base offset written), oldest first.
    recent: VecDeque<(i32, i32, i64)>,
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
            sequences: Mutex::new(HashMap::new()),
        }
    }

    /// A new producer id (InitProducerId).
    pub fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes `batch` of partition `index` of `topic` with `write` (which returns the base
    /// offset written) unless it is a retry of one of the producer's last batches — then the
    /// earlier base offset is returned and nothing is written — or out of sequence.
    pub fn write_once<E>(
        &self,
        topic: &str,
        index: i32,
        batch: &ProducedBatch,
        write: impl FnOnce() -> Result<i64, E>,
    ) -> Result<i64, Refused<E>> {
        let (first, last) = (batch.first_sequence, batch.last_sequence);
        let mut sequences = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
        let state = sequences
            .entry((batch.producer_id, topic.to_owned(), index))
            .or_default();
        if batch.epoch < state.epoch {
            return Err(Refused::StaleEpoch {
                epoch: batch.epoch,
                current: state.epoch,
            });
        }
        if batch.epoch > state.epoch {
            *state = Sequence {
                epoch: batch.epoch,
                recent: VecDeque::new(),
            };
        }
        if let Some(&(_, _, base)) = state
            .recent
            .iter()
            .find(|&&(f, l, _)| f == first && l == last)
        {
            return Ok(base); // a retry of a batch already written
        }
        if let Some(&(_, previous, _)) = state.recent.back() {
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
        state.recent.push_back((first, last, base));
        if state.recent.len() > REMEMBERED_BATCHES {
            state.recent.pop_front();
        }
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, last: i32) -> ProducedBatch {
        ProducedBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: last,
        }
    }

    #[test]
    fn a_retried_batch_is_written_once_and_a_gap_or_old_epoch_is_refused() {
        let producers = Producers::new();
        let offset = std::cell::Cell::new(0);
        let write = |n: i64| {
            offset.set(offset.get() + n);
            Ok::<i64, ()>(offset.get() - n)
        };
        assert_eq!(
            producers.write_once("t", 0, &batch(0, 0, 2), || write(3)),
            Ok(0)
        );
        assert_eq!(
            producers.write_once("t", 0, &batch(0, 3, 4), || write(2)),
            Ok(3)
        );
        // The retry gets the first write's offset; nothing is written.
        assert_eq!(
            producers.write_once("t", 0, &batch(0, 0, 2), || write(3)),
            Ok(0)
        );
        assert_eq!(offset.get(), 5);
        assert_eq!(
            producers.write_once("t", 0, &batch(0, 9, 9), || write(1)),
            Err(Refused::OutOfOrder {
                first: 9,
                expected: 5
            })
        );
        // Another partition is its own sequence.
        assert_eq!(
            producers.write_once("t", 1, &batch(0, 0, 0), || write(1)),
            Ok(5)
        );
        // A new epoch starts afresh and fences the old one.
        assert_eq!(
            producers.write_once("t", 0, &batch(1, 0, 0), || write(1)),
            Ok(6)
        );
        assert_eq!(
            producers.write_once("t", 0, &batch(0, 5, 5), || write(1)),
            Err(Refused::StaleEpoch {
                epoch: 0,
                current: 1
            })
        );
        assert_ne!(producers.next_id(), producers.next_id());
    }
}
