//! The log's own settings, and the services it runs with.
//!
//! [`LogConfig`] is plain data (what `cfg/blink.toml` says about the log, assembled by
//! [`crate::config::Config::log`]); [`LogServices`] are the live objects the log works with —
//! how bytes reach the disk, who is woken after an append, how much stays in the page cache —
//! given to [`super::Log::open_with`] so tests can substitute them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::notifier::Notifier;
use super::page_cache::PageCache;
use super::segment_files::SegmentFiles;
use super::storage::{OsStorage, Storage};

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Once a second (`fsync_interval_ms`): survives a crash of Blink, may lose the last second
    /// on power loss.
    #[default]
    Interval,
    /// Before every append is acknowledged: survives power loss, costs one fsync per batch.
    Always,
}

/// When a batch of injected messages is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

/// Settings of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub segment_age: Duration,
    pub fsync: FsyncPolicy,
    pub retention_age: Option<Duration>,
    pub retention_bytes: Option<u64>,
    /// Bytes of each partition's newest data kept in the OS page cache; `None` leaves the page
    /// cache to the kernel.
    pub page_cache_window: Option<u64>,
    pub max_message_size: usize,
    pub batch: BatchPolicy,
    /// Partitions of all topics together, at most: each holds open files, and clients create
    /// topics.
    pub max_partitions: usize,
}

impl LogConfig {
    /// The defaults of `cfg/blink.toml`, with the log in `dir`: for tools and tests.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(24 * 3600),
            fsync: FsyncPolicy::Interval,
            retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            page_cache_window: Some(64 << 20),
            max_message_size: 64 << 10,
            batch: BatchPolicy {
                max_messages: 4096,
                max_bytes: 1 << 20,
                linger: Duration::from_millis(1),
            },
            max_partitions: 10_000,
        }
    }
}

/// The live objects a log works with.
#[derive(Debug, Clone)]
pub struct LogServices {
    /// How segment bytes are written and synced; tests substitute a failing one.
    pub storage: Arc<dyn Storage>,
    /// Woken after every append to any partition of the log.
    pub notifier: Arc<Notifier>,
    /// How much of each partition stays in the OS page cache.
    pub page_cache: Arc<PageCache>,
    /// Closed segments' open files, shared by every partition.
    pub segment_files: Arc<SegmentFiles>,
}

impl LogServices {
    /// The real ones for `config`: the OS's files, a fresh notifier, its page-cache window.
    pub fn for_config(config: &LogConfig) -> Self {
        LogServices {
            storage: Arc::new(OsStorage),
            notifier: Arc::new(Notifier::default()),
            page_cache: Arc::new(PageCache::new(config.page_cache_window)),
            segment_files: Arc::new(SegmentFiles::default()),
        }
    }
}

/// What every partition of one log shares.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub config: LogConfig,
    pub services: LogServices,
}
