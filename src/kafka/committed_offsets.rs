//! Consumer groups' committed offsets, kept in `output_path/consumer_offsets.json` so they
//! survive a restart. The file is replaced whole, durably, before a commit is answered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// A committed offset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: Option<String>,
}

/// group → topic → partition → committed offset.
type OffsetTable = BTreeMap<String, BTreeMap<String, BTreeMap<i32, Committed>>>;

pub struct CommittedOffsets {
    table: Mutex<OffsetTable>,
    path: PathBuf,
}

impl CommittedOffsets {
    /// Loads the offsets committed in `path` (missing: none yet). A file that is not a valid
    /// table is an error naming it: starting without it would lose every group's position.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let table = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => OffsetTable::new(),
            Err(e) => return Err(e),
        };
        Ok(CommittedOffsets {
            table: Mutex::new(table),
            path,
        })
    }

    fn table(&self) -> MutexGuard<'_, OffsetTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a group's committed offsets and makes them durable.
    pub fn commit(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> std::io::Result<()> {
        let mut table = self.table();
        let mut changed = table.clone();
        let group = changed.entry(group_id.to_owned()).or_default();
        for (topic, partition, committed) in offsets {
            group.entry(topic).or_default().insert(partition, committed);
        }
        self.store(&changed)?;
        *table = changed;
        Ok(())
    }

    /// Forgets a group's offsets, durably; whether it had any.
    pub fn remove_group(&self, group_id: &str) -> std::io::Result<bool> {
        let mut table = self.table();
        if !table.contains_key(group_id) {
            return Ok(false);
        }
        let mut changed = table.clone();
        changed.remove(group_id);
        self.store(&changed)?;
        *table = changed;
        Ok(true)
    }

    /// Writes the table in place of the file, durably; the table in memory changes only after,
    /// so an answer never claims what the file lacks.
    fn store(&self, table: &OffsetTable) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(table).map_err(std::io::Error::other)?;
        crate::atomic_file::write(&self.path, &text).map_err(std::io::Error::other)
    }

    /// The committed offset of a partition, if any.
    pub fn get(&self, group_id: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.table()
            .get(group_id)?
            .get(topic)?
            .get(&partition)
            .cloned()
    }

    /// Every committed offset of a group: (topic, partition, committed).
    pub fn of_group(&self, group_id: &str) -> Vec<(String, i32, Committed)> {
        self.table()
            .get(group_id)
            .map(|topics| {
                topics
                    .iter()
                    .flat_map(|(t, parts)| parts.iter().map(|(p, c)| (t.clone(), *p, c.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The groups that have committed offsets.
    pub fn groups(&self) -> Vec<String> {
        self.table().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_a_reopen_and_a_removed_group_stays_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consumer_offsets.json");
        let committed = |offset| Committed {
            offset,
            metadata: Some("m".into()),
        };
        let offsets = CommittedOffsets::open(path.clone()).unwrap();
        offsets
            .commit(
                "g",
                vec![("t".into(), 0, committed(5)), ("t".into(), 1, committed(7))],
            )
            .unwrap();
        offsets
            .commit("h", vec![("t".into(), 0, committed(1))])
            .unwrap();
        assert!(offsets.remove_group("h").unwrap());
        assert!(!offsets.remove_group("h").unwrap());

        let reopened = CommittedOffsets::open(path.clone()).unwrap();
        assert_eq!(reopened.get("g", "t", 1), Some(committed(7)));
        assert_eq!(reopened.of_group("g").len(), 2);
        assert_eq!(reopened.groups(), vec!["g".to_string()]);

        std::fs::write(&path, b"{ not json").unwrap();
        let error = CommittedOffsets::open(path.clone()).err().unwrap();
        assert!(
            error.to_string().contains("consumer_offsets.json"),
            "{error}"
        );
    }
}
