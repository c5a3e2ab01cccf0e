//! Errors of the log, each naming the topic, file or offset at fault.

use std::path::PathBuf;

use super::batch::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: corrupt batch at byte {position} (expected offset {offset}): {reason}; data after it is intact, so it was not cut off — move the segment aside or restore it to continue"
    )]
    Corrupt {
        path: PathBuf,
        position: u64,
        offset: i64,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Inconsistent { path: PathBuf, reason: String },
    #[error(
        "offset {offset} is out of range for {topic}-{partition}: the log holds {start}..{end}"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: i64,
        start: i64,
        end: i64,
    },
    #[error(
        "{topic}-{partition} refuses writes after an earlier failure ({cause}); restart Blink to recover the log"
    )]
    Poisoned {
        topic: String,
        partition: u32,
        cause: String,
    },
    #[error(
        "{topic}-{partition}: this writer was closed (its plugin instance was stopped; a new one may be running)"
    )]
    Closed { topic: String, partition: u32 },
    #[error("message of {size} bytes is larger than max_message_size ({max} bytes)")]
    MessageTooLarge { size: usize, max: usize },
    #[error("batch of {size} bytes is larger than a segment (output_size {max} bytes)")]
    BatchTooLarge { size: usize, max: u64 },
    #[error(
        "the log holds at most {max} partitions (max_partitions); {existing} exist and {asked} more were asked for"
    )]
    TooManyPartitions {
        max: usize,
        existing: usize,
        asked: usize,
    },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: &'static str },
    #[error(
        "{topic}-{partition}: the records of the batch at offsets {base_offset}..{next_offset} cannot be read: {reason}"
    )]
    UnreadableBatch {
        topic: String,
        partition: u32,
        base_offset: i64,
        /// Where the next batch starts: seek there to go on.
        next_offset: i64,
        reason: String,
        /// The batch as stored, for whoever keeps what could not be read.
        batch: bytes::Bytes,
    },
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("{0} is opened read-only")]
    ReadOnly(String),
    #[error("{} is locked by another Blink process{}: only one `blink run` may write {}", lock_file.display(), holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(), dir.display())]
    Locked {
        dir: PathBuf,
        lock_file: PathBuf,
        /// The pid the holder wrote into the lock file, if it could be read.
        holder: Option<u32>,
    },
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
}

impl LogError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { op, path, source }
    }
}

impl From<crate::atomic_file::FileError> for LogError {
    fn from(e: crate::atomic_file::FileError) -> Self {
        LogError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
