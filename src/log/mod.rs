//! The log: topics of partitions of Kafka-format segments, shared by plugins and Kafka clients.
//!
//! Everything Blink streams is a topic here. `blink.input` and `blink.analysis` are Hindsight's
//! two queues (one partition each, record value = Heka protobuf message, record timestamp = the
//! message's Timestamp in milliseconds); any other topic is a plain Kafka topic. A partition lives
//! in `output_path/<topic>-<partition>/`, as in Kafka. `docs/log-format.md` describes the bytes and
//! argues why recovery is safe.
//!
//! - [`batch`]: the RecordBatch v2 codec (pure), decompressing records with `codec`.
//! - [`segment`]: segment files, the sparse index, and the validating scan.
//! - [`Partition`]: appends, recovery, retention, and waiting for data.
//! - [`PartitionReader`]: sequential zero-copy reads from any offset.
//! - [`Appender`]: batching of small appends by count, bytes and linger time.
//! - [`storage`]: the write/sync seam used by crash tests.
//! - [`TopicSettings`]: a topic's own retention, over the global one.

mod appender;
pub mod batch;
mod codec;
mod error;
mod notifier;
mod page_cache;
mod partition;
mod reader;
mod recovery;
pub mod segment;
mod segment_files;
mod settings;
pub mod storage;
mod topic_settings;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

pub use appender::{Appender, CheckpointTarget, Fence};
pub use error::LogError;
pub use notifier::Notifier;
pub use page_cache::PageCache;
pub use partition::{Appended, Partition};
pub use reader::{PartitionReader, read_batches};
use settings::Runtime;
pub use settings::{BatchPolicy, FsyncPolicy, LogConfig, LogServices};
pub use topic_settings::{Retention, SETTABLE as SETTABLE_TOPIC_KEYS, TopicSettings};

use appender::Linger;
use topic_settings::SettingsTable;

/// Where topics' own settings are kept, in the log's directory.
const SETTINGS_FILE: &str = "topic_settings.json";

/// Hindsight's input queue: what input plugins inject.
pub const INPUT_TOPIC: &str = "blink.input";
/// Hindsight's analysis queue: what analysis plugins inject.
pub const ANALYSIS_TOPIC: &str = "blink.analysis";

/// True for the two queues, whose records must be Heka messages.
pub fn is_queue(topic: &str) -> bool {
    topic == INPUT_TOPIC || topic == ANALYSIS_TOPIC
}

/// Checks a topic name the way Kafka does: 1–249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let invalid = |reason| {
        Err(LogError::InvalidTopic {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 249 {
        return invalid("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// How long a lock held by another process is waited for: a process killed a moment ago (kill -9
/// returns before the kernel has closed its files) lets go within this.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes `dir/.lock` for this process (an advisory lock the kernel drops with the process) and
/// writes this process's pid into it, for the error a second Blink shows.
fn lock_dir(dir: &Path) -> Result<File, LogError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(".lock");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(LogError::io("create", &path))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::Error(e)) => return Err(LogError::io("lock", &path)(e)),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LogError::Locked {
                    dir: dir.to_owned(),
                    lock_file: path,
                    holder: text.trim().parse().ok(),
                });
            }
        }
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(LogError::io("write", &path))?;
    Ok(file)
}

/// Each topic's partitions, by name.
type Topics = BTreeMap<String, Vec<Arc<Partition>>>;

/// All topics under one `output_path`.
#[derive(Debug)]
pub struct Log {
    runtime: Arc<Runtime>,
    read_only: bool,
    topics: RwLock<Topics>,
    /// Topics' own settings, as persisted in `topic_settings.json`.
    settings: Mutex<SettingsTable>,
    /// Input plugins reading topics through the `kafka` module: their checkpoints hold
    /// retention back (see [`Log::topic_consumers`]).
    topic_consumers: Mutex<BTreeSet<String>>,
    linger: Option<Arc<Linger>>,
    /// Held for the life of a writable log so two processes never write one directory.
    _lock: Option<File>,
}

impl Log {
    /// Opens the log for writing, recovering every partition, and creates the two queues.
    pub fn open(config: LogConfig) -> Result<Self, LogError> {
        let services = LogServices::for_config(&config);
        Self::open_with(config, services)
    }

    /// [`Log::open`] with services of the caller's (a failing storage, a shared notifier).
    pub fn open_with(config: LogConfig, services: LogServices) -> Result<Self, LogError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(LogError::io("create directory", &dir))?;
        let lock = lock_dir(&dir)?;
        let runtime = Runtime { config, services };
        let log = Self::load(runtime, false, Some(lock), Some(Linger::start()))?;
        for queue in [INPUT_TOPIC, ANALYSIS_TOPIC] {
            if log.partitions(queue).is_none() {
                log.create_topic(queue, 1)?;
            }
        }
        Ok(log)
    }

    /// Opens a log another process may be writing, to read it: nothing is repaired or created.
    pub fn open_read_only(config: LogConfig) -> Result<Self, LogError> {
        let services = LogServices::for_config(&config);
        Self::load(Runtime { config, services }, true, None, None)
    }

    fn load(
        runtime: Runtime,
        read_only: bool,
        lock: Option<File>,
        linger: Option<Arc<Linger>>,
    ) -> Result<Self, LogError> {
        let settings = load_settings(&runtime.config.dir.join(SETTINGS_FILE))?;
        let log = Log {
            runtime: Arc::new(runtime),
            read_only,
            topics: RwLock::new(BTreeMap::new()),
            settings: Mutex::new(settings),
            topic_consumers: Mutex::new(BTreeSet::new()),
            linger,
            _lock: lock,
        };
        log.discover()?;
        Ok(log)
    }

    /// Opens partition directories not open yet.
    fn discover(&self) -> Result<(), LogError> {
        let dir = &self.runtime.config.dir;
        let mut found: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(LogError::io("list", dir))? {
            let entry = entry.map_err(LogError::io("list", dir))?;
            if !entry
                .file_type()
                .map_err(LogError::io("stat", entry.path()))?
                .is_dir()
            {
                continue;
            }
            let name = entry.file_name();
            let Some((topic, id)) = name.to_str().and_then(|n| n.rsplit_once('-')) else {
                continue;
            };
            let Ok(id) = id.parse::<u32>() else { continue };
            if validate_topic_name(topic).is_ok() {
                found.entry(topic.to_owned()).or_default().push(id);
            }
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        for (topic, mut ids) in found {
            if topics.contains_key(&topic) {
                continue;
            }
            ids.sort_unstable();
            let count = ids.last().map_or(0, |&m| m + 1);
            if self.read_only && ids.len() as u32 != count {
                continue; // being created by the writer
            }
            let partitions = (0..count)
                .map(|id| self.open_partition(&topic, id))
                .collect::<Result<Vec<_>, _>>()?;
            topics.insert(topic, partitions);
        }
        Ok(())
    }

    fn open_partition(&self, topic: &str, id: u32) -> Result<Arc<Partition>, LogError> {
        let dir = self.runtime.config.dir.join(format!("{topic}-{id}"));
        let partition = if self.read_only {
            Partition::open_read_only(dir, topic, id, self.runtime.clone())?
        } else {
            Partition::open(dir, topic, id, self.runtime.clone())?
        };
        Ok(Arc::new(partition))
    }

    pub fn config(&self) -> &LogConfig {
        &self.runtime.config
    }

    /// Woken after every append to any partition.
    pub fn notifier(&self) -> Arc<Notifier> {
        self.runtime.services.notifier.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.runtime.config.dir
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), LogError> {
        validate_topic_name(name)?;
        if self.read_only {
            return Err(LogError::ReadOnly(
                self.runtime.config.dir.display().to_string(),
            ));
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(LogError::TopicExists(name.to_owned()));
        }
        self.room_for(&topics, partitions.max(1) as usize)?;
        let opened = (0..partitions.max(1))
            .map(|id| self.open_partition(name, id))
            .collect::<Result<Vec<_>, _>>()?;
        topics.insert(name.to_owned(), opened);
        Ok(())
    }

    /// Refuses `asked` more partitions past `max_partitions`.
    fn room_for(&self, topics: &Topics, asked: usize) -> Result<(), LogError> {
        let existing: usize = topics.values().map(Vec::len).sum();
        let max = self.runtime.config.max_partitions;
        if existing + asked > max {
            return Err(LogError::TooManyPartitions {
                max,
                existing,
                asked,
            });
        }
        Ok(())
    }

    /// Deletes a topic and its files. Blink's queues cannot be deleted. Readers holding one of
    /// its partitions keep reading the (unlinked) files they have open.
    pub fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        if is_queue(name) {
            return Err(LogError::InvalidTopic {
                name: name.to_owned(),
                reason: "Blink's queues cannot be deleted",
            });
        }
        if self.read_only {
            return Err(LogError::ReadOnly(
                self.runtime.config.dir.display().to_string(),
            ));
        }
        let removed = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_owned()))?;
        for partition in removed {
            let dir = partition.dir().to_owned();
            self.runtime.services.segment_files.forget_under(&dir);
            fs::remove_dir_all(&dir).map_err(LogError::io("remove", &dir))?;
        }
        let mut settings = self.settings();
        if settings.contains_key(name) {
            let mut without = settings.clone();
            without.remove(name);
            self.store_settings(&without)?;
            *settings = without;
        }
        Ok(())
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, SettingsTable> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_settings(&self, table: &SettingsTable) -> Result<(), LogError> {
        let json = serde_json::to_vec_pretty(table).expect("settings serialize");
        Ok(crate::atomic_file::write(
            &self.config().dir.join(SETTINGS_FILE),
            &json,
        )?)
    }

    /// A topic's own settings (empty when it has none, or does not exist).
    pub fn topic_settings(&self, topic: &str) -> TopicSettings {
        self.settings().get(topic).cloned().unwrap_or_default()
    }

    /// Replaces a topic's own settings; they are on disk when this returns.
    pub fn set_topic_settings(&self, topic: &str, new: TopicSettings) -> Result<(), LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly(
                self.runtime.config.dir.display().to_string(),
            ));
        }
        if self.partitions(topic).is_none() {
            return Err(LogError::UnknownTopic(topic.to_owned()));
        }
        let mut settings = self.settings();
        let mut changed = settings.clone();
        if new.is_empty() {
            changed.remove(topic);
        } else {
            changed.insert(topic.to_owned(), new);
        }
        if changed != *settings {
            self.store_settings(&changed)?;
            *settings = changed;
        }
        Ok(())
    }

    /// Records that input plugin `name` reads topics through the `kafka` module; its
    /// checkpoint (`topic:partition:offset,…`) then holds back retention like a reader's position.
    pub fn register_topic_consumer(&self, name: &str) {
        let mut consumers = self
            .topic_consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !consumers.contains(name) {
            consumers.insert(name.to_owned());
        }
    }

    /// A stopped plugin holds nothing back.
    pub fn unregister_topic_consumer(&self, name: &str) {
        self.topic_consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The input plugins reading topics through the `kafka` module.
    pub fn topic_consumers(&self) -> Vec<String> {
        self.topic_consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The retention a topic's partitions keep: its own settings over the global ones.
    pub fn retention(&self, topic: &str) -> Retention {
        self.topic_settings(topic).retention(self.config())
    }

    /// Grows a topic to `total` partitions (a topic never shrinks: keys would move).
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<(), LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly(
                self.runtime.config.dir.display().to_string(),
            ));
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let current = topics
            .get(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_owned()))?
            .len();
        if (total as usize) < current {
            return Err(LogError::InvalidTopic {
                name: name.to_owned(),
                reason: "a topic's partitions can be added, never removed",
            });
        }
        self.room_for(&topics, total as usize - current)?;
        let partitions = topics
            .get_mut(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_owned()))?;
        for id in partitions.len() as u32..total {
            let partition = self.open_partition(name, id)?;
            partitions.push(partition);
        }
        Ok(())
    }

    /// The partitions of a topic, `None` if it does not exist.
    pub fn partitions(&self, topic: &str) -> Option<Vec<Arc<Partition>>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned()
    }

    pub fn partition(&self, topic: &str, id: u32) -> Result<Arc<Partition>, LogError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let partitions = topics
            .get(topic)
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))?;
        partitions
            .get(id as usize)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic(format!("{topic}-{id}")))
    }

    /// Topic names with their partition counts.
    pub fn topics(&self) -> Vec<(String, usize)> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, p)| (n.clone(), p.len()))
            .collect()
    }

    /// A batching writer into a partition; with `checkpoint`, the input's checkpoint value is
    /// published as its records are written.
    pub fn appender(
        &self,
        topic: &str,
        id: u32,
        checkpoint: Option<CheckpointTarget>,
    ) -> Result<Appender, LogError> {
        let partition = self.partition(topic, id)?;
        let linger = self
            .linger
            .as_ref()
            .ok_or_else(|| LogError::ReadOnly(self.runtime.config.dir.display().to_string()))?;
        Ok(Appender::new(partition, linger.clone(), checkpoint))
    }

    /// A reader of a partition from `offset`.
    pub fn reader(&self, topic: &str, id: u32, offset: i64) -> Result<PartitionReader, LogError> {
        Ok(PartitionReader::new(self.partition(topic, id)?, offset))
    }

    /// Read-only logs: picks up topics the writer created since.
    pub fn refresh(&self) -> Result<(), LogError> {
        self.discover()
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// Forces every partition's appended data to stable storage.
    pub fn sync(&self) -> Result<(), LogError> {
        self.all_partitions().iter().try_for_each(|p| p.sync())
    }

    /// Applies retention to every partition; `keep_from` gives the oldest position a dependent
    /// reader still needs. Returns the number of segments deleted.
    pub fn apply_retention(
        &self,
        now: SystemTime,
        keep_from: impl Fn(&str, u32) -> Option<i64>,
    ) -> Result<usize, LogError> {
        let mut deleted = 0;
        for partition in self.all_partitions() {
            let retention = self.retention(partition.topic());
            deleted += partition
                .apply_retention(now, keep_from(partition.topic(), partition.id()), retention)?
                .len();
        }
        Ok(deleted)
    }

    /// Syncs everything and writes the active segments' indexes (clean shutdown).
    pub fn close(&self) -> Result<(), LogError> {
        if let Some(linger) = &self.linger {
            linger.stop();
        }
        self.all_partitions().iter().try_for_each(|p| p.close())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Some(linger) = &self.linger {
            linger.stop();
        }
    }
}

/// Reads `topic_settings.json`; a missing file means no topic has settings of its own.
fn load_settings(path: &Path) -> Result<SettingsTable, LogError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LogError::Inconsistent {
            path: path.to_owned(),
            reason: format!("not valid topic settings ({e}); fix or remove the file"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SettingsTable::new()),
        Err(e) => Err(LogError::io("read", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        for ok in ["a", "blink.input", "x_y-z.1", &"a".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"a".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
