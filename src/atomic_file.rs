//! Replacing a small file whole: what checkpoints, topic settings, committed offsets and segment
//! indexes are written with, so a crash leaves either the old file or the new one.

use std::fs::File;
use std::path::{Path, PathBuf};

/// An operation on a path that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl FileError {
    fn at(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_owned();
        move |source| FileError { op, path, source }
    }
}

/// Replaces `path` with `bytes`: a temp file beside it, fsync, rename, fsync of the directory.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let tmp = path.with_extension(match path.extension() {
        Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
        None => "tmp".into(),
    });
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(FileError::at("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(FileError::at("rename into place", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::at("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_is_replaced_whole_and_no_temp_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        super::write(&path, b"one").unwrap();
        super::write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let err = super::write(&dir.path().join("missing/x"), b"").unwrap_err();
        assert!(err.to_string().starts_with("write "), "{err}");
    }
}
