//! Recovery: opening a partition's directory after a clean stop or a crash.
//!
//! Closed segments are checked cheaply (index sanity, the last batches, offset continuity),
//! the tail segment is scanned in full with CRCs, and a torn tail is cut and logged. Damage
//! followed by intact data is not a torn tail: it is reported with its location and the
//! partition does not open, because cutting there would drop good data. docs/log-format.md
//! argues why this loses nothing that was acknowledged; the argument is about this file.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{info, warn};

use super::error::LogError;
use super::segment::{self, Index, SegmentState};

/// A partition's segments as found on disk (oldest first; none for a new partition), and the
/// offset the next append gets.
pub(super) struct Recovered {
    pub segments: Vec<SegmentState>,
    pub next_offset: i64,
}

/// Lists, checks and (writable) repairs the segments in `dir`. A read-only open repairs
/// nothing, and a directory with no segment is an error for it (the writer is creating it).
pub(super) fn recover(dir: &Path, read_only: bool) -> Result<Recovered, LogError> {
    let bases = list_segments(dir, read_only)?;
    let mut segments = Vec::with_capacity(bases.len().max(1));
    let mut next_offset = bases.first().copied().unwrap_or(0);
    if bases.is_empty() && read_only {
        return Err(LogError::Inconsistent {
            path: dir.to_owned(),
            reason: "partition has no segments".into(),
        });
    }
    for (i, &base) in bases.iter().enumerate() {
        let is_tail = i + 1 == bases.len();
        let path = segment::log_path(dir, base);
        if base != next_offset {
            return Err(LogError::Inconsistent {
                path,
                reason: format!(
                    "segment starts at offset {base}, but the segment before ends at {next_offset}"
                ),
            });
        }
        let file = open_segment_file(&path, read_only)?;
        let (state, next) = if is_tail {
            recover_tail(dir, base, file, read_only)?
        } else {
            check_closed(dir, base, file, read_only)?
        };
        segments.push(state);
        next_offset = next;
    }
    Ok(Recovered {
        segments,
        next_offset,
    })
}

pub(super) fn open_segment_file(path: &Path, read_only: bool) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .map_err(LogError::io("open", path))
}

/// Base offsets of the segments in `dir`, sorted; removes orphaned indexes and temp files.
fn list_segments(dir: &Path, read_only: bool) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match segment::parse_name(name) {
            Some((base, "log")) => bases.push(base),
            Some((base, "index")) => indexes.push(base),
            _ if name.ends_with(".tmp") && !read_only => {
                let _ = fs::remove_file(entry.path());
            }
            _ => {}
        }
    }
    bases.sort_unstable();
    if !read_only {
        for base in indexes
            .into_iter()
            .filter(|b| bases.binary_search(b).is_err())
        {
            let _ = fs::remove_file(segment::index_path(dir, base));
        }
    }
    Ok(bases)
}

fn modified(file: &File, path: &Path) -> Result<(u64, SystemTime), LogError> {
    let meta = file.metadata().map_err(LogError::io("stat", path))?;
    Ok((
        meta.len(),
        meta.modified().unwrap_or_else(|_| SystemTime::now()),
    ))
}

/// Checks a closed segment without reading all of it: a sane index (rebuilt if missing or not
/// plausible) and whole batches from the last index entry to the end of the file.
fn check_closed(
    dir: &Path,
    base: i64,
    file: File,
    read_only: bool,
) -> Result<(SegmentState, i64), LogError> {
    let path = segment::log_path(dir, base);
    let (len, modified) = modified(&file, &path)?;
    let index_path = segment::index_path(dir, base);
    let stored = fs::read(&index_path)
        .ok()
        .and_then(|b| Index::from_bytes(&b, len));
    let rebuild = stored.is_none();
    // A sane index lets the check start at its last entry; otherwise scan the whole segment.
    let (from, from_offset) = match stored.as_ref().and_then(Index::last) {
        Some(last) => (last.position as u64, base + last.relative_offset as i64),
        None => (0, base),
    };
    let scan = segment::scan(
        &file,
        base,
        from,
        from_offset,
        len,
        false,
        stored.unwrap_or_default(),
    )
    .map_err(LogError::io("read", &path))?;
    if let Some(stop) = scan.stop {
        return Err(LogError::Corrupt {
            path,
            position: stop.position,
            offset: scan.next_offset,
            reason: stop.reason,
        });
    }
    if rebuild && !read_only {
        crate::atomic_file::write(&index_path, &scan.index.to_bytes())?;
        info!(path = %index_path.display(), "rebuilt missing or damaged index");
    }
    let index = scan.index;
    // Closed: its file is closed now and opened again when read, so a long log does not hold
    // a descriptor per segment.
    drop(file);
    let state = SegmentState {
        base,
        file: None,
        len,
        index,
        modified,
    };
    Ok((state, scan.next_offset))
}

/// Scans the tail segment in full, CRCs included, and cuts a torn tail.
fn recover_tail(
    dir: &Path,
    base: i64,
    file: File,
    read_only: bool,
) -> Result<(SegmentState, i64), LogError> {
    let path = segment::log_path(dir, base);
    let (len, modified) = modified(&file, &path)?;
    let scan = segment::scan(&file, base, 0, base, len, true, Index::default())
        .map_err(LogError::io("read", &path))?;
    if let Some(stop) = &scan.stop {
        if let Some(intact) = segment::find_intact_batch(&file, stop.position, len)
            .map_err(LogError::io("read", &path))?
        {
            return Err(LogError::Corrupt {
                path,
                position: stop.position,
                offset: scan.next_offset,
                reason: format!("{} (an intact batch follows at byte {intact})", stop.reason),
            });
        }
        if read_only {
            // The writer may be in the middle of this batch: stop before it.
        } else {
            warn!(
                path = %path.display(),
                position = stop.position,
                cut_bytes = len - stop.position,
                next_offset = scan.next_offset,
                reason = %stop.reason,
                "cut torn tail of segment; appends continue at next_offset"
            );
            file.set_len(stop.position)
                .map_err(LogError::io("truncate", &path))?;
            file.sync_all().map_err(LogError::io("fsync", &path))?;
        }
    }
    let state = SegmentState {
        base,
        file: Some(Arc::new(file)),
        len: scan.valid_len,
        index: scan.index,
        modified,
    };
    Ok((state, scan.next_offset))
}
