//! The durability tick: once per `fsync_interval_ms`, and once more at shutdown, sync the log,
//! then write the checkpoints, then apply retention.
//!
//! The order is the point. Checkpoints are written only after the data they refer to is synced,
//! so after a power loss no checkpoint names data that is gone; and retention runs against the
//! checkpoints just made durable, so it never deletes what a restarted reader would still need —
//! a plugin reading the queues, or an input reading topics through the `kafka` module (whose
//! checkpoint holds its positions).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::checkpoint::{
    CheckpointError, CheckpointStore, CheckpointValue, TopicPositions, parse_topic_positions,
};
use crate::log::{Log, LogError};
use crate::stop::StopToken;

#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// One round: sync, checkpoint, retention.
pub fn tick(log: &Log, checkpoints: &CheckpointStore) -> Result<(), DurabilityError> {
    log.sync()?;
    checkpoints.flush()?;
    // Inputs reading topics through the `kafka` module keep their positions in their checkpoint.
    let consumers: Vec<TopicPositions> = log
        .topic_consumers()
        .iter()
        .filter_map(|name| match checkpoints.input(name)? {
            CheckpointValue::String(text) => parse_topic_positions(&text).ok(),
            CheckpointValue::Number(_) => None,
        })
        .collect();
    log.apply_retention(SystemTime::now(), |topic, partition| {
        let key = (topic.to_owned(), partition);
        let held = consumers.iter().filter_map(|p| p.get(&key).copied());
        checkpoints
            .oldest_position(topic, partition)
            .into_iter()
            .chain(held)
            .min()
    })?;
    Ok(())
}

/// The thread running [`tick`] periodically.
pub struct Durability {
    stop: StopToken,
    handle: Option<JoinHandle<()>>,
    log: Arc<Log>,
    checkpoints: Arc<CheckpointStore>,
}

impl Durability {
    pub fn start(log: Arc<Log>, checkpoints: Arc<CheckpointStore>, interval: Duration) -> Self {
        let stop = StopToken::new();
        let (thread_stop, thread_log, thread_cp) = (stop.clone(), log.clone(), checkpoints.clone());
        let handle = std::thread::Builder::new()
            .name("blink-durability".into())
            .spawn(move || {
                // Nothing is held while a tick's fsyncs run: a stop is seen as soon as it ends.
                while !thread_stop.wait_timeout(interval) {
                    if let Err(e) = tick(&thread_log, &thread_cp) {
                        tracing::error!(error = %e, "durability tick failed");
                    }
                }
            })
            .expect("spawn durability thread");
        Durability {
            stop,
            handle: Some(handle),
            log,
            checkpoints,
        }
    }

    /// Stops the thread and runs a last tick so shutdown leaves everything on disk.
    pub fn stop(mut self) -> Result<(), DurabilityError> {
        self.halt();
        tick(&self.log, &self.checkpoints)
    }

    fn halt(&mut self) {
        self.stop.stop();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        self.halt();
    }
}
