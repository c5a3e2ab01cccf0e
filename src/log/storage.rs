//! How segment bytes reach the operating system: the one seam of the write path.
//!
//! Production uses [`OsStorage`] (`pwrite` + `fdatasync`). Crash tests substitute an
//! implementation that cuts a write short or fails a sync at a chosen moment, which is how they
//! prove that a failed write leaves nothing half-written behind and that a failed sync stops the
//! partition (a sync is never retried: after a failed fsync the page cache state is unknown).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub trait Storage: Send + Sync {
    /// Writes all of `buf` at `position`, or fails having written a prefix of it.
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()>;
    /// Forces written data to stable storage.
    fn sync(&self, file: &File) -> io::Result<()>;
}

impl std::fmt::Debug for dyn Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

impl Storage for OsStorage {
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        file.write_all_at(buf, position)
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}
