//! What a file in `hs_load/` is, and whether it has stopped changing.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::plugin::PluginKind;

/// The three kinds of file a user drops, in the order one batch of them is applied: cfgs first
/// (each takes the code it names along, checked together), then code on its own, stops last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ext {
    Cfg,
    Lua,
    Off,
}

/// A file in `hs_load/<kind>/` Blink acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dropped {
    pub kind: PluginKind,
    /// The file name without its extension: the plugin name's second half for `.cfg`/`.off`.
    pub stem: String,
    pub ext: Ext,
    pub path: PathBuf,
}

impl Dropped {
    /// `<kind>.<stem>`: the plugin a `.cfg` or `.off` is about.
    pub fn plugin_name(&self) -> String {
        format!("{}.{}", self.kind.dir(), self.stem)
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        let ext = match self.ext {
            Ext::Lua => "lua",
            Ext::Cfg => "cfg",
            Ext::Off => "off",
        };
        format!("{}.{ext}", self.stem)
    }
}

/// `path` as a dropped file, if it is one: directly in `load_dir/<kind>/`, named
/// `NAME.{cfg,lua,off}` with NAME of letters, digits, `_` and `-`. Editor and temporary files
/// (`.x.swp`, `x~`, `x.cfg.tmp`, `#x#`) and Blink's own `.err` files are not.
pub fn classify(load_dir: &Path, path: &Path) -> Option<Dropped> {
    let dir = path.parent()?;
    if dir.parent()? != load_dir {
        return None;
    }
    let kind = PluginKind::ALL
        .into_iter()
        .find(|k| dir.file_name().and_then(|n| n.to_str()) == Some(k.dir()))?;
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = name.rsplit_once('.')?;
    let ext = match ext {
        "lua" => Ext::Lua,
        "cfg" => Ext::Cfg,
        "off" => Ext::Off,
        _ => return None,
    };
    let valid = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then(|| Dropped {
        kind,
        stem: stem.to_owned(),
        ext,
        path: path.to_owned(),
    })
}

/// Size and modification time: a file still being written changes one or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
}

/// The file's fingerprint; `None` if it is gone (or not a regular file).
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Fingerprint {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_dropped_files_and_ignores_the_rest() {
        let load = Path::new("/x/hs_load");
        let d = classify(load, Path::new("/x/hs_load/analysis/count.cfg")).unwrap();
        assert_eq!(
            (d.kind, d.stem.as_str(), d.ext),
            (PluginKind::Analysis, "count", Ext::Cfg)
        );
        assert_eq!(d.plugin_name(), "analysis.count");
        assert_eq!(d.file_name(), "count.cfg");
        let d = classify(load, Path::new("/x/hs_load/input/gen-2.lua")).unwrap();
        assert_eq!((d.kind, d.ext), (PluginKind::Input, Ext::Lua));
        let d = classify(load, Path::new("/x/hs_load/output/alerts.off")).unwrap();
        assert_eq!((d.kind, d.ext), (PluginKind::Output, Ext::Off));
        for ignored in [
            "/x/hs_load/analysis/.count.cfg.swp",
            "/x/hs_load/analysis/count.cfg~",
            "/x/hs_load/analysis/count.cfg.tmp",
            "/x/hs_load/analysis/#count.cfg#",
            "/x/hs_load/analysis/count.err",
            "/x/hs_load/analysis/.cfg",
            "/x/hs_load/analysis/a b.cfg",
            "/x/hs_load/other/count.cfg",
            "/x/hs_load/count.cfg",
            "/x/hs_load/analysis/sub/count.cfg",
            "/y/hs_load/analysis/count.cfg",
        ] {
            assert_eq!(classify(load, Path::new(ignored)), None, "{ignored}");
        }
    }
}
