//! Batched appends: many small injects become one RecordBatch and one write.
//!
//! An [`Appender`] gathers records into a batch being built in place and writes it when it holds
//! `batch_messages` records or `batch_bytes` bytes, or when its first record has waited `linger`
//! (about 1 ms): the log's linger thread flushes batches that stop growing, so a plugin that
//! injects one message and then waits on I/O still gets it written promptly.
//!
//! A record counts as accepted once it is buffered; it is acknowledged (its offset known, its
//! checkpoint value published to the checkpoint store) only once its batch reached the OS. So an
//! input plugin's checkpoint never runs ahead of what the log holds. If a write fails, the batch
//! is kept and retried by the next flush: nothing accepted is dropped.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use super::batch::BatchBuilder;
use super::error::LogError;
use super::partition::{Appended, Partition};
use super::settings::BatchPolicy;
use crate::checkpoint::{CheckpointStore, CheckpointValue};
use crate::message::Message;
use crate::stop::StopToken;

/// Where an input's checkpoint goes once its messages are written.
#[derive(Debug, Clone)]
pub struct CheckpointTarget {
    pub store: Arc<CheckpointStore>,
    pub input: String,
}

#[derive(Debug)]
struct Pending {
    builder: BatchBuilder,
    first_at: Option<Instant>,
    /// The checkpoint value of the newest record in `builder`.
    checkpoint: Option<CheckpointValue>,
    /// A finished batch whose write failed, with its checkpoint: written before anything newer.
    failed: Option<(Vec<u8>, Option<CheckpointValue>)>,
    /// Whether the linger thread has an entry for this appender (at most one at a time).
    scheduled: bool,
    /// Closed through its [`Fence`]: every later append and checkpoint is refused.
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    partition: Arc<Partition>,
    policy: BatchPolicy,
    max_message_size: usize,
    checkpoint: Option<CheckpointTarget>,
    pending: Mutex<Pending>,
    linger: Arc<Linger>,
}

/// A batching writer into one partition. One per producer (plugin); not shared between threads.
#[derive(Debug)]
pub struct Appender {
    inner: Arc<Inner>,
}

impl Appender {
    pub(crate) fn new(
        partition: Arc<Partition>,
        linger: Arc<Linger>,
        checkpoint: Option<CheckpointTarget>,
    ) -> Self {
        let config = partition.config();
        let (policy, max_message_size) = (config.batch, config.max_message_size);
        let pending = Pending {
            builder: BatchBuilder::with_capacity(policy.max_bytes.min(1 << 20) + 64),
            first_at: None,
            checkpoint: None,
            failed: None,
            scheduled: false,
            closed: false,
        };
        let inner = Inner {
            partition,
            policy,
            max_message_size,
            checkpoint,
            pending: Mutex::new(pending),
            linger,
        };
        Appender {
            inner: Arc::new(inner),
        }
    }

    pub fn partition(&self) -> &Arc<Partition> {
        &self.inner.partition
    }

    /// Whether this appender was closed through its [`Fence`].
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.pending).closed
    }

    /// A handle that closes this appender from another thread (see [`Fence`]).
    pub fn fence(&self) -> Fence {
        Fence {
            inner: self.inner.clone(),
        }
    }

    /// Accepts a Heka message for a queue topic: encoded straight into the batch, with the
    /// message's Timestamp (ns) as the record timestamp in Kafka's milliseconds.
    pub fn append_message(
        &self,
        message: &Message,
        checkpoint: Option<CheckpointValue>,
    ) -> Result<(), LogError> {
        let timestamp_ms = message.timestamp.div_euclid(1_000_000);
        self.append_encoded(timestamp_ms, message.encoded_len(), checkpoint, |out| {
            message.encode(out)
        })
    }

    /// Accepts one record value; `timestamp_ms` is its Kafka timestamp.
    pub fn append(&self, timestamp_ms: i64, value: &[u8]) -> Result<(), LogError> {
        self.append_encoded(timestamp_ms, value.len(), None, |out| {
            out.extend_from_slice(value)
        })
    }

    /// Accepts a record whose `len`-byte value `write` encodes in place, with the checkpoint value
    /// to publish once it is written.
    pub fn append_encoded(
        &self,
        timestamp_ms: i64,
        len: usize,
        checkpoint: Option<CheckpointValue>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), LogError> {
        let inner = &self.inner;
        if len > inner.max_message_size {
            return Err(LogError::MessageTooLarge {
                size: len,
                max: inner.max_message_size,
            });
        }
        let mut pending = lock(&inner.pending);
        inner.check_open(&pending)?;
        let would_be = pending.builder.encoded_len() + BatchBuilder::record_len_bound(None, len);
        if !pending.builder.is_empty()
            && (pending.builder.record_count() >= inner.policy.max_messages
                || would_be > inner.policy.max_bytes)
        {
            inner.flush_locked(&mut pending)?;
        }
        if pending.failed.is_some() {
            // An earlier batch could not be written: retry it first, and refuse new records
            // while the log keeps failing, so the producer feels the problem (backpressure).
            inner.flush_locked(&mut pending)?;
        }
        pending.builder.push_encoded(timestamp_ms, len, write);
        if checkpoint.is_some() {
            pending.checkpoint = checkpoint;
        }
        if pending.first_at.is_none() {
            let now = Instant::now();
            pending.first_at = Some(now);
            if !pending.scheduled {
                pending.scheduled = true;
                inner
                    .linger
                    .schedule(now + inner.policy.linger, Arc::downgrade(inner));
            }
        }
        Ok(())
    }

    /// Records a checkpoint with no message (Hindsight's `inject_message(nil, cp)`): published
    /// after the records accepted before it are written.
    pub fn checkpoint(&self, value: CheckpointValue) -> Result<(), LogError> {
        let mut pending = lock(&self.inner.pending);
        self.inner.check_open(&pending)?;
        if pending.builder.is_empty() && pending.failed.is_none() {
            if let Some(target) = &self.inner.checkpoint {
                target.store.set_input(&target.input, value);
            }
        } else {
            pending.checkpoint = Some(value);
        }
        Ok(())
    }

    /// Writes everything accepted so far; returns the offsets of the last batch written.
    pub fn flush(&self) -> Result<Option<Appended>, LogError> {
        let mut pending = lock(&self.inner.pending);
        self.inner.flush_locked(&mut pending)
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(partition = %self.inner.partition.name(), error = %e, "records accepted but not written at shutdown");
        }
    }
}

/// Closes an [`Appender`] from outside the thread that writes with it.
///
/// A plugin instance that does not stop when asked is left running, and its replacement starts
/// from the checkpoint the old one published. Closing the old instance's appender first makes
/// that safe: what it had accepted is written (and its checkpoint published) by `close`, and
/// from then on its appends and checkpoints are refused, so it can neither add duplicates after
/// the new instance's records nor move the checkpoint back. The check runs under the appender's
/// own lock, so no append can slip in between.
#[derive(Debug, Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

impl Fence {
    /// Writes what was accepted, then refuses everything after. If that write fails, the
    /// records are dropped, never written later: their checkpoint was not published either, so
    /// the next instance reads them again (at-least-once, no gap).
    pub fn close(&self) -> Result<(), LogError> {
        let mut pending = lock(&self.inner.pending);
        if pending.closed {
            return Ok(());
        }
        let flushed = self.inner.flush_locked(&mut pending).map(|_| ());
        if flushed.is_err() {
            pending.failed = None;
            pending.builder.finish();
            pending.checkpoint = None;
            pending.first_at = None;
        }
        pending.closed = true;
        flushed
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    #[inline]
    fn check_open(&self, pending: &Pending) -> Result<(), LogError> {
        if pending.closed {
            return Err(self.closed());
        }
        Ok(())
    }

    #[cold]
    fn closed(&self) -> LogError {
        LogError::Closed {
            topic: self.partition.topic().to_owned(),
            partition: self.partition.id(),
        }
    }

    fn flush_locked(&self, pending: &mut Pending) -> Result<Option<Appended>, LogError> {
        let mut last = None;
        if let Some((batch, checkpoint)) = pending.failed.take() {
            match self.partition.append(&batch) {
                Ok(appended) => {
                    self.publish(checkpoint);
                    last = Some(appended);
                }
                Err(e) => {
                    pending.failed = Some((batch, checkpoint));
                    return Err(e);
                }
            }
        }
        if pending.builder.is_empty() {
            return Ok(last);
        }
        let batch = pending.builder.finish();
        pending.first_at = None;
        let checkpoint = pending.checkpoint.take();
        match self.partition.append(&batch) {
            Ok(appended) => {
                self.publish(checkpoint);
                Ok(Some(appended))
            }
            Err(e) => {
                pending.failed = Some((batch, checkpoint));
                Err(e)
            }
        }
    }

    fn publish(&self, checkpoint: Option<CheckpointValue>) {
        if let (Some(value), Some(target)) = (checkpoint, &self.checkpoint) {
            target.store.set_input(&target.input, value);
        }
    }

    /// Called by the linger thread: flush if the batch has waited long enough.
    fn flush_if_due(&self, now: Instant) -> Option<Instant> {
        let mut pending = lock(&self.pending);
        if let Some(first) = pending.first_at
            && first + self.policy.linger > now
        {
            return Some(first + self.policy.linger);
        }
        if pending.failed.is_none() && pending.builder.is_empty() {
            pending.scheduled = false;
            return None;
        }
        match self.flush_locked(&mut pending) {
            Ok(_) => {
                pending.scheduled = false;
                None
            }
            Err(e) => {
                tracing::error!(partition = %self.partition.name(), error = %e, "background batch write failed; will retry");
                Some(now + std::time::Duration::from_millis(100))
            }
        }
    }
}

/// The log's linger thread: flushes batches whose first record has waited `linger`.
#[derive(Debug, Default)]
pub(crate) struct Linger {
    queue: Mutex<LingerQueue>,
    wake: Condvar,
    stop: StopToken,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct LingerQueue {
    due: Vec<(Instant, Weak<Inner>)>,
}

impl Linger {
    pub(crate) fn start() -> Arc<Linger> {
        let linger = Arc::new(Linger::default());
        // The thread waits on its queue's condition variable: a stop notifies it (under the
        // queue's lock, so the wake-up cannot fall between its check and its wait).
        let waker = Arc::downgrade(&linger);
        linger.stop.on_stop(move || {
            if let Some(linger) = waker.upgrade() {
                let _queue = lock(&linger.queue);
                linger.wake.notify_all();
            }
        });
        let worker = linger.clone();
        let handle = std::thread::Builder::new()
            .name("blink-linger".into())
            .spawn(move || worker.run())
            .expect("spawn linger thread");
        *lock(&linger.thread) = Some(handle);
        linger
    }

    fn schedule(&self, at: Instant, appender: Weak<Inner>) {
        let mut queue = lock(&self.queue);
        let earliest = queue.due.iter().map(|(t, _)| *t).min();
        queue.due.push((at, appender));
        if earliest.is_none_or(|e| at < e) {
            self.wake.notify_one();
        }
    }

    /// Stops the thread and waits for it; batches still pending are flushed by their
    /// appenders (explicitly or when dropped).
    pub(crate) fn stop(&self) {
        self.stop.stop();
        if let Some(handle) = lock(&self.thread).take() {
            let _ = handle.join();
        }
    }

    fn run(&self) {
        let mut queue = lock(&self.queue);
        loop {
            if self.stop.is_stopped() {
                return;
            }
            let now = Instant::now();
            let Some(earliest) = queue.due.iter().map(|(t, _)| *t).min() else {
                queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            if earliest > now {
                queue = self
                    .wake
                    .wait_timeout(queue, earliest - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            let (ready, waiting): (Vec<_>, Vec<_>) =
                queue.due.drain(..).partition(|(t, _)| *t <= now);
            queue.due = waiting;
            drop(queue);
            let mut again = Vec::new();
            for (_, appender) in ready {
                if let Some(inner) = appender.upgrade()
                    && let Some(at) = inner.flush_if_due(now)
                {
                    again.push((at, appender));
                }
            }
            queue = lock(&self.queue);
            queue.due.extend(again);
        }
    }
}
