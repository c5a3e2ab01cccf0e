//! The checkpoint store: every position Blink must remember across a restart, in one file.
//!
//! It holds each reader's position per topic partition (the next offset it will process), each
//! input plugin's checkpoint value (a number or a string, as Hindsight's `inject_message(msg, cp)`
//! passes it), and is written to `output_path/checkpoints.json` atomically: temp file, fsync,
//! rename, fsync of the directory. A torn checkpoint file is therefore impossible; the file is
//! either the previous state or the new one.
//!
//! Writers update the in-memory state (cheap, one short lock); [`CheckpointStore::flush`] writes it
//! when something changed, about once a second and at shutdown. The durability tick syncs the
//! log before it flushes checkpoints, so a checkpoint never names data that could be lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, FileError};

pub const FILE_NAME: &str = "checkpoints.json";
const VERSION: u32 = 1;

/// An input plugin's checkpoint, as Hindsight allows: a number or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CheckpointValue {
    Number(f64),
    String(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoints {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoints {path} are not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write checkpoints: {0}")]
    Write(#[from] FileError),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    version: u32,
    /// reader → topic → partition → next offset to process.
    #[serde(default)]
    readers: BTreeMap<String, BTreeMap<String, BTreeMap<u32, i64>>>,
    /// input plugin → checkpoint value.
    #[serde(default)]
    inputs: BTreeMap<String, CheckpointValue>,
}

#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    state: Mutex<(State, bool)>,
}

impl CheckpointStore {
    /// Loads the store from `dir`, empty if it has never been written.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let path = dir.join(FILE_NAME);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State =
                    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Parse {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if state.version != VERSION {
                    return Err(CheckpointError::Parse {
                        path,
                        message: format!("version {} is not {VERSION}", state.version),
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                version: VERSION,
                ..State::default()
            },
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        Ok(CheckpointStore {
            path,
            state: Mutex::new((state, false)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<R>(&self, f: impl FnOnce(&mut State, &mut bool) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, dirty) = &mut *guard;
        f(state, dirty)
    }

    /// Where `reader` resumes in a topic partition.
    pub fn position(&self, reader: &str, topic: &str, partition: u32) -> Option<i64> {
        self.with(|s, _| s.readers.get(reader)?.get(topic)?.get(&partition).copied())
    }

    /// Records that `reader` has processed everything before `offset`.
    pub fn set_position(&self, reader: &str, topic: &str, partition: u32, offset: i64) {
        self.with(|s, dirty| {
            let slot = s
                .readers
                .entry(reader.to_owned())
                .or_default()
                .entry(topic.to_owned())
                .or_default();
            if slot.insert(partition, offset) != Some(offset) {
                *dirty = true;
            }
        })
    }

    /// Forgets a reader (a plugin removed for good), so it no longer holds back retention.
    pub fn remove_reader(&self, reader: &str) {
        self.with(|s, dirty| *dirty |= s.readers.remove(reader).is_some())
    }

    /// The names of all readers with a position.
    pub fn readers(&self) -> Vec<String> {
        self.with(|s, _| s.readers.keys().cloned().collect())
    }

    pub fn input(&self, name: &str) -> Option<CheckpointValue> {
        self.with(|s, _| s.inputs.get(name).cloned())
    }

    pub fn set_input(&self, name: &str, value: CheckpointValue) {
        self.with(|s, dirty| {
            if s.inputs.get(name) != Some(&value) {
                s.inputs.insert(name.to_owned(), value);
                *dirty = true;
            }
        })
    }

    /// The smallest position any reader holds in a topic partition: retention keeps it.
    pub fn oldest_position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.with(|s, _| {
            s.readers
                .values()
                .filter_map(|t| t.get(topic)?.get(&partition).copied())
                .min()
        })
    }

    /// Pulls back positions past the end of their partition. That can only happen after the log
    /// lost unsynced data (power loss with `fsync = "interval"`); the reader then resumes at the
    /// new end instead of skipping whatever is appended next.
    /// `end_of(topic, partition)` is the partition's next offset, `None` if it does not exist.
    pub fn reconcile(&self, end_of: impl Fn(&str, u32) -> Option<i64>) {
        self.with(|s, dirty| {
            for (reader, topics) in &mut s.readers {
                for (topic, partitions) in topics {
                    for (id, offset) in partitions {
                        let Some(end) = end_of(topic, *id) else {
                            continue;
                        };
                        if *offset > end {
                            tracing::warn!(
                                reader,
                                topic,
                                partition = id,
                                checkpoint = *offset,
                                end,
                                "checkpoint past the end of the log; resuming at the end"
                            );
                            *offset = end;
                            *dirty = true;
                        }
                    }
                }
            }
        })
    }

    /// Writes the store if it changed since the last write; true if it wrote.
    pub fn flush(&self) -> Result<bool, CheckpointError> {
        let snapshot = self.with(|s, dirty| std::mem::take(dirty).then(|| s.clone()));
        let Some(state) = snapshot else {
            return Ok(false);
        };
        let bytes = serde_json::to_vec_pretty(&state).expect("checkpoint state serializes");
        if let Err(e) = atomic_file::write(&self.path, &bytes) {
            self.with(|_, dirty| *dirty = true);
            return Err(e.into());
        }
        Ok(true)
    }
}

/// Positions in Blink's topics, as an input reading them through the `kafka` module keeps its
/// checkpoint: `topic:partition:offset,…` (the next offset to read of each partition).
pub type TopicPositions = std::collections::HashMap<(String, u32), i64>;

/// Parses `topic:partition:offset,…`; an unreadable entry is an error naming it (a silent
/// restart from scratch would replay or skip data).
pub fn parse_topic_positions(text: &str) -> Result<TopicPositions, String> {
    let mut out = TopicPositions::new();
    for entry in text.split(',').filter(|e| !e.is_empty()) {
        let mut parts = entry.rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "checkpoint entry {entry:?} is not topic:partition:offset"
            ));
        };
        let partition = partition
            .parse()
            .map_err(|_| format!("checkpoint entry {entry:?}: bad partition"))?;
        let offset = offset
            .parse()
            .map_err(|_| format!("checkpoint entry {entry:?}: bad offset"))?;
        out.insert((topic.to_owned(), partition), offset);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_positions_parse_and_bad_ones_are_refused() {
        let parsed = parse_topic_positions("a.b-c:0:15,x:3:0").unwrap();
        assert_eq!(parsed[&("a.b-c".to_owned(), 0)], 15);
        assert_eq!(parsed[&("x".to_owned(), 3)], 0);
        assert!(parse_topic_positions("").unwrap().is_empty());
        for bad in ["x", "x:1", "x:y:1", "x:1:z"] {
            assert!(parse_topic_positions(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(!store.flush().unwrap(), "nothing to write");
        store.set_position("analysis.0", "blink.input", 0, 42);
        store.set_position("output.file", "blink.input", 0, 7);
        store.set_position("output.file", "blink.analysis", 0, 3);
        store.set_input("input.gen", CheckpointValue::Number(2000000.0));
        store.set_input(
            "input.tail",
            CheckpointValue::String("inode:12 pos:99".into()),
        );
        assert!(store.flush().unwrap());
        assert!(!store.flush().unwrap(), "unchanged state is not rewritten");

        let again = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(again.position("analysis.0", "blink.input", 0), Some(42));
        assert_eq!(again.position("output.file", "blink.analysis", 0), Some(3));
        assert_eq!(again.position("output.file", "blink.analysis", 1), None);
        assert_eq!(again.oldest_position("blink.input", 0), Some(7));
        assert_eq!(
            again.input("input.gen"),
            Some(CheckpointValue::Number(2000000.0))
        );
        assert_eq!(
            again.input("input.tail"),
            Some(CheckpointValue::String("inode:12 pos:99".into()))
        );
        again.remove_reader("output.file");
        assert_eq!(again.oldest_position("blink.input", 0), Some(42));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{\"version\":1,").unwrap();
        let err = CheckpointStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checkpoints.json"), "{err}");
    }
}
