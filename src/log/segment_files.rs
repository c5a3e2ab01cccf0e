//! The log's open files for closed segments: a small cache, so the file descriptors Blink
//! holds depend on its configuration, not on how much log it keeps.
//!
//! Each partition keeps its active segment open (it is written). A closed segment is opened
//! when a reader needs it and kept in this cache, shared by every partition of the log; past
//! [`OPEN_CLOSED_SEGMENTS`] files, the one used least recently is closed (a reader still
//! holding it keeps it open until it moves on). Retention and topic deletion forget the files
//! they delete, so a deleted segment's disk space is freed at once.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Closed segment files kept open at most, across all partitions of a log.
pub const OPEN_CLOSED_SEGMENTS: usize = 128;

#[derive(Debug)]
pub struct SegmentFiles {
    capacity: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    /// Path → file and the tick of its last use.
    files: HashMap<PathBuf, (Arc<File>, u64)>,
    tick: u64,
}

impl Default for SegmentFiles {
    fn default() -> Self {
        Self::new(OPEN_CLOSED_SEGMENTS)
    }
}

impl SegmentFiles {
    pub fn new(capacity: usize) -> Self {
        SegmentFiles {
            capacity: capacity.max(1),
            open: Mutex::new(Open::default()),
        }
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The closed segment at `path`, for reading: from the cache, or opened (and cached).
    pub fn get(&self, path: &Path) -> std::io::Result<Arc<File>> {
        let mut open = self.open();
        open.tick += 1;
        let tick = open.tick;
        if let Some((file, used)) = open.files.get_mut(path) {
            *used = tick;
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(path)?);
        if open.files.len() >= self.capacity
            && let Some(oldest) = open
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone())
        {
            open.files.remove(&oldest);
        }
        open.files.insert(path.to_owned(), (file.clone(), tick));
        Ok(file)
    }

    /// Closes the file at `path` if it is open here (its segment is being deleted).
    pub fn forget(&self, path: &Path) {
        self.open().files.remove(path);
    }

    /// Closes every file under `dir` (its topic is being deleted).
    pub fn forget_under(&self, dir: &Path) {
        self.open().files.retain(|path, _| !path.starts_with(dir));
    }

    /// Files open here now.
    pub fn len(&self) -> usize {
        self.open().files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_capacity_files_stay_open_and_the_least_recent_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..5)
            .map(|i| {
                let path = dir.path().join(format!("{i}.log"));
                std::fs::write(&path, [i as u8]).unwrap();
                path
            })
            .collect();
        let files = SegmentFiles::new(3);
        for path in &paths[..3] {
            files.get(path).unwrap();
        }
        files.get(&paths[0]).unwrap(); // 1 is now the least recently used
        files.get(&paths[3]).unwrap();
        assert_eq!(files.len(), 3);
        let open = files.open();
        assert!(!open.files.contains_key(&paths[1]));
        assert!(open.files.contains_key(&paths[0]));
        drop(open);
        files.forget(&paths[0]);
        assert_eq!(files.len(), 2);
        files.forget_under(dir.path());
        assert!(files.is_empty());
        assert!(files.get(&dir.path().join("missing.log")).is_err());
    }
}
