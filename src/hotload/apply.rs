//! What each dropped file does: a `.cfg` starts or restarts its plugin, a `.lua` restarts the
//! plugins that use it, a `.off` stops one. Everything is checked before anything changes, so a
//! bad file leaves the running plugins as they were and says why in an `.err` file beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::files::{Dropped, Ext};
use crate::plugin::{PluginConfig, PluginKind};
use crate::runner::{HotloadCounters, LoadOutcome, Pipeline};
use crate::sandbox::Sandbox;

/// Applies dropped files to a running pipeline.
pub struct Applier<'a> {
    pub load_dir: &'a Path,
    pub pipeline: &'a Pipeline,
}

/// Why a dropped file was not applied; written to its `.err` file.
pub struct Rejected(pub String);

impl Applier<'_> {
    fn run_dir(&self, kind: PluginKind) -> PathBuf {
        self.pipeline.context().run_dir.join(kind.dir())
    }

    fn load_dir(&self, kind: PluginKind) -> PathBuf {
        self.load_dir.join(kind.dir())
    }

    fn counters(&self) -> &HotloadCounters {
        &self.pipeline.context().stats.hotload
    }

    /// Applies `file`; `Err` when it was rejected (the file stays, with its `.err`).
    pub fn apply(&self, file: &Dropped) -> Result<(), Rejected> {
        let result = match file.ext {
            Ext::Cfg => self.apply_cfg(file),
            Ext::Lua => self.apply_lua(file),
            Ext::Off => {
                self.apply_off(file);
                Ok(())
            }
        };
        let err = err_path(file);
        match &result {
            Ok(()) => {
                let _ = std::fs::remove_file(&err);
            }
            Err(Rejected(reason)) => {
                self.counters().rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %file.path.display(), error = %reason, "hot-load: rejected; running plugins are unchanged");
                crate::runner::write_err_file(&err, reason);
            }
        }
        result
    }

    /// `NAME.cfg`: validate (cfg, its Lua file, a trial load), move to `hs_run`, (re)start.
    fn apply_cfg(&self, file: &Dropped) -> Result<(), Rejected> {
        let config =
            PluginConfig::load(file.kind, &file.path).map_err(|e| Rejected(e.to_string()))?;
        let in_load = self.load_dir(file.kind).join(&config.filename);
        if in_load.exists() {
            // Dropped together: the code goes first (checked and moved on its own terms).
            let lua = super::files::classify(self.load_dir, &in_load).ok_or_else(|| {
                Rejected(format!(
                    "key `filename`: {} is not a plugin file name",
                    config.filename
                ))
            })?;
            self.apply(&lua).map_err(|Rejected(e)| {
                Rejected(format!(
                    "key `filename`: {} was rejected: {e}",
                    config.filename
                ))
            })?;
        }
        let run_dir = self.run_dir(file.kind);
        if !run_dir.join(&config.filename).exists() {
            return Err(Rejected(format!(
                "{}: key `filename`: {} is in neither {} nor {}",
                file.path.display(),
                config.filename,
                self.load_dir(file.kind).display(),
                run_dir.display()
            )));
        }
        self.trial_load(&config, &run_dir)?;

        let target = run_dir.join(file.file_name());
        move_file(&file.path, &target)
            .map_err(|e| Rejected(format!("cannot move it to {}: {e}", target.display())))?;
        for stale in ["off", "err"] {
            let _ = std::fs::remove_file(run_dir.join(format!("{}.{stale}", file.stem)));
        }
        let config = PluginConfig::load(file.kind, &target).map_err(|e| Rejected(e.to_string()))?;
        self.load(Arc::new(config));
        Ok(())
    }

    /// `NAME.lua`: check it compiles, trial-load it with every cfg in `hs_run` that uses it, move
    /// it to `hs_run`, and (re)start those plugins.
    fn apply_lua(&self, file: &Dropped) -> Result<(), Rejected> {
        let source = std::fs::read(&file.path).map_err(|e| Rejected(e.to_string()))?;
        let lua = mlua::Lua::new();
        lua.load(&source[..])
            .set_name(format!("@{}", file.file_name()))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function()
            .map_err(|e| Rejected(crate::plugin::lua_error_text(&e)))?;
        let run_dir = self.run_dir(file.kind);
        let name = file.file_name();
        let users: Vec<PluginConfig> = run_configs(&run_dir, file.kind)
            .into_iter()
            .filter(|c| c.filename == name)
            .collect();
        let load_dir = self.load_dir(file.kind);
        for config in &users {
            self.trial_load(config, &load_dir)
                .map_err(|Rejected(e)| Rejected(format!("with {}: {e}", config.name)))?;
        }
        let target = run_dir.join(&name);
        move_file(&file.path, &target)
            .map_err(|e| Rejected(format!("cannot move it to {}: {e}", target.display())))?;
        tracing::info!(file = %target.display(), plugins = users.len(), "hot-load: code updated");
        for config in users {
            self.load(Arc::new(config));
        }
        Ok(())
    }

    /// `NAME.off`: removed; `hs_run/<kind>/NAME.cfg` becomes `NAME.off`; the plugin stops.
    fn apply_off(&self, file: &Dropped) {
        let _ = std::fs::remove_file(&file.path);
        let run_dir = self.run_dir(file.kind);
        let cfg = run_dir.join(format!("{}.cfg", file.stem));
        if cfg.exists()
            && let Err(e) = std::fs::rename(&cfg, run_dir.join(format!("{}.off", file.stem)))
        {
            tracing::error!(file = %cfg.display(), error = %e, "hot-load: cannot rename the cfg to .off");
        }
        let name = file.plugin_name();
        if self.pipeline.unload(&name) {
            self.counters().stopped.fetch_add(1, Ordering::Relaxed);
            tracing::info!(plugin = %name, "hot-load: stopped");
        } else {
            tracing::info!(plugin = %name, "hot-load: .off for a plugin that is not running");
        }
    }

    /// Creates the plugin's sandbox with its code taken from `code_dir`, on this thread, and
    /// throws it away: a plugin whose code fails to load is never swapped in.
    fn trial_load(&self, config: &PluginConfig, code_dir: &Path) -> Result<(), Rejected> {
        let mut settings = self.pipeline.context().settings(config.kind);
        settings.plugin_dir = code_dir.to_owned();
        let running = Arc::new(AtomicBool::new(true));
        Sandbox::new(Arc::new(config.clone()), &settings, None, running)
            .map(drop)
            .map_err(|t| Rejected(t.0))
    }

    fn load(&self, config: Arc<PluginConfig>) {
        let name = config.name.clone();
        match self.pipeline.load(config) {
            Ok(LoadOutcome::Started) => {
                self.counters().started.fetch_add(1, Ordering::Relaxed);
                tracing::info!(plugin = %name, "hot-load: started");
            }
            Ok(LoadOutcome::Restarted) => {
                self.counters().restarted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(plugin = %name, "hot-load: restarted");
            }
            Err(e) => {
                self.counters().failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(plugin = %name, error = %e, "hot-load: could not start");
            }
        }
    }
}

/// Where a dropped file's error goes: `NAME.err` for a cfg (as for a running plugin),
/// `NAME.lua.err` for code (a cfg and its code often share a name).
pub fn err_path(file: &Dropped) -> PathBuf {
    let name = match file.ext {
        Ext::Lua => format!("{}.lua.err", file.stem),
        _ => format!("{}.err", file.stem),
    };
    file.path.with_file_name(name)
}

/// The valid cfgs in `dir`, quietly skipping the rest (they are reported when loaded).
fn run_configs(dir: &Path, kind: PluginKind) -> Vec<PluginConfig> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .filter_map(|p| PluginConfig::load(kind, &p).ok())
        .collect()
}

/// Moves `from` to `to`, replacing it: a rename, or a copy when they are on different file
/// systems.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: copy beside the target, rename into place, then remove the original.
            let tmp = to.with_extension("loading");
            std::fs::copy(from, &tmp)?;
            std::fs::rename(&tmp, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}
