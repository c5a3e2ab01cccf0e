//! What each dropped file does: a `.cfg` starts or restarts its plugin, a `.lua` restarts the
//! plugins that use it, a `.off` stops one. Everything is checked before anything changes, so a
//! bad file leaves the running plugins as they were and says why in an `.err` file beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::files::{Dropped, Ext};
use crate::plugin::{PluginConfig, PluginKind};
use crate::runner::{HotloadCounters, LoadOutcome, Pipeline};
use crate::sandbox::{Sandbox, Terminated};
use crate::stop::StopToken;

/// Applies dropped files to a running pipeline.
pub struct Applier<'a> {
    pub load_dir: &'a Path,
    pub pipeline: &'a Pipeline,
}

/// What became of a file that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// A `.lua` that a cfg in `hs_load` names: it moves with that cfg, once the cfg is accepted.
    WaitingForCfg,
}

/// Why a dropped file was not applied: one line starting with the file's path, written to its
/// `.err` file and logged once.
pub struct Rejected {
    pub message: String,
    /// A cfg refused only because the code it names is nowhere yet: worth another look when
    /// that code is dropped.
    pub code_missing: bool,
}

impl Rejected {
    fn new(message: String) -> Self {
        Rejected {
            message,
            code_missing: false,
        }
    }

    fn at(path: &Path, reason: impl std::fmt::Display) -> Self {
        Rejected::new(format!("{}: {reason}", path.display()))
    }
}

/// Why dropped code (or a cfg with it) cannot go to `hs_run`: the reason part of a
/// [`Rejected`] message.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("{0}")]
    Read(std::io::Error),
    /// It does not compile (Lua's message, with the file and line).
    #[error("{0}")]
    Compile(String),
    /// A plugin using it fails to load with it.
    #[error("{code} with {plugin}: {reason}")]
    Users {
        code: String,
        plugin: String,
        reason: Terminated,
    },
    /// The plugin itself fails to load (Hindsight's `lsb_init()` message).
    #[error(transparent)]
    Load(#[from] Terminated),
    #[error("cannot move {from} to {to}: {source}")]
    Move {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

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
    pub fn apply(&self, file: &Dropped) -> Result<Applied, Rejected> {
        let result = match file.ext {
            Ext::Cfg => self.apply_cfg(file).map(|()| Applied::Done),
            Ext::Lua => self.apply_lua(file),
            Ext::Off => {
                self.apply_off(file);
                Ok(Applied::Done)
            }
        };
        match &result {
            Ok(Applied::Done) => {
                let _ = std::fs::remove_file(err_path(file));
            }
            Ok(Applied::WaitingForCfg) => {
                tracing::debug!(file = %file.path.display(), "hot-load: code waits for its cfg");
            }
            Err(Rejected { message, .. }) => {
                self.counters().rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %message, "hot-load: rejected; running plugins are unchanged");
                crate::runner::write_err_file(&err_path(file), message);
            }
        }
        result
    }

    /// `NAME.cfg`: validate it, trial-load it with its code (from `hs_load` if it was dropped
    /// too, else from `hs_run`), and trial-load every other plugin of new code with it; only
    /// then move the code and the cfg to `hs_run` and (re)start the plugins.
    fn apply_cfg(&self, file: &Dropped) -> Result<(), Rejected> {
        let at = |reason: String| Rejected::at(&file.path, reason);
        let refused = |e: CodeError| Rejected::at(&file.path, e);
        let context = self.pipeline.context();
        let config = context
            .load_config(file.kind, &file.path)
            .map_err(|e| Rejected::new(e.to_string()))?;
        let (load_dir, run_dir) = (self.load_dir(file.kind), self.run_dir(file.kind));
        let dropped_code = load_dir.join(&config.filename);
        let new_code = if dropped_code.is_file() {
            let lua = super::files::classify(self.load_dir, &dropped_code).ok_or_else(|| {
                at(format!(
                    "key `filename`: {} is not a plugin file name",
                    config.filename
                ))
            })?;
            Some(lua)
        } else if context.code_dir(file.kind, &config.filename).is_some() {
            None
        } else {
            return Err(Rejected {
                code_missing: true,
                ..at(format!(
                    "key `filename`: {} is in neither {} nor {}",
                    config.filename,
                    load_dir.display(),
                    run_dir.display()
                ))
            });
        };
        let code_dir = if new_code.is_some() {
            load_dir.clone()
        } else {
            context
                .code_dir(file.kind, &config.filename)
                .unwrap_or_else(|| run_dir.clone())
        };
        // New code is compiled (and tried with its other plugins) first: its syntax error
        // reads better without the trial load's `lsb_init()` around it.
        let other_users = match &new_code {
            Some(lua) => self.users_of(lua, Some(&config.name)).map_err(refused)?,
            None => Vec::new(),
        };
        self.trial_load(&config, &code_dir)
            .map_err(|t| refused(t.into()))?;

        if let Some(lua) = &new_code {
            self.move_code(lua).map_err(refused)?;
        }
        let target = run_dir.join(file.file_name());
        move_file(&file.path, &target)
            .map_err(|e| at(format!("cannot move it to {}: {e}", target.display())))?;
        for stale in ["off", "err"] {
            let _ = std::fs::remove_file(run_dir.join(format!("{}.{stale}", file.stem)));
        }
        let config = context
            .load_config(file.kind, &target)
            .map_err(|e| Rejected::new(e.to_string()))?;
        self.load(Arc::new(config));
        for user in other_users {
            self.load(Arc::new(user));
        }
        Ok(())
    }

    /// `NAME.lua`: unless a cfg in `hs_load` names it (then it goes with that cfg), check it
    /// compiles, trial-load it with every cfg in `hs_run` that uses it, move it to `hs_run`, and
    /// (re)start those plugins.
    fn apply_lua(&self, file: &Dropped) -> Result<Applied, Rejected> {
        if self.cfg_naming(file).is_some() {
            return Ok(Applied::WaitingForCfg);
        }
        let users = self
            .users_of(file, None)
            .map_err(|e| Rejected::at(&file.path, e))?;
        self.move_code(file)
            .map_err(|e| Rejected::at(&file.path, e))?;
        for config in users {
            self.load(Arc::new(config));
        }
        Ok(Applied::Done)
    }

    /// A cfg in `file`'s `hs_load` directory that names it as its `filename` (or, if the cfg
    /// cannot be read, shares its name).
    fn cfg_naming(&self, file: &Dropped) -> Option<PathBuf> {
        let entries = std::fs::read_dir(self.load_dir(file.kind)).ok()?;
        let code = file.file_name();
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter_map(|p| super::files::classify(self.load_dir, &p))
            .filter(|cfg| cfg.ext == Ext::Cfg)
            .find(|cfg| match PluginConfig::filename_in(&cfg.path) {
                Some(filename) => filename == code,
                None => cfg.stem == file.stem,
            })
            .map(|cfg| cfg.path)
    }

    /// Checks that the code `lua` (still in `hs_load`) compiles, and trial-loads it with every
    /// cfg in `hs_run` that uses it but the plugin `except`: the plugins to restart with it.
    fn users_of(
        &self,
        lua: &Dropped,
        except: Option<&str>,
    ) -> Result<Vec<PluginConfig>, CodeError> {
        let source = std::fs::read(&lua.path).map_err(CodeError::Read)?;
        let name = lua.file_name();
        mlua::Lua::new()
            .load(&source[..])
            .set_name(format!("@{name}"))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function()
            .map_err(|e| CodeError::Compile(crate::plugin::lua_error_text(&e)))?;
        let context = self.pipeline.context();
        let users: Vec<PluginConfig> = run_configs(context, lua.kind)
            .into_iter()
            .filter(|c| c.filename == name && Some(c.name.as_str()) != except)
            .collect();
        let load_dir = self.load_dir(lua.kind);
        for config in &users {
            self.trial_load(config, &load_dir)
                .map_err(|reason| CodeError::Users {
                    code: name.to_string(),
                    plugin: config.name.clone(),
                    reason,
                })?;
        }
        Ok(users)
    }

    /// Moves checked code to `hs_run`.
    fn move_code(&self, lua: &Dropped) -> Result<(), CodeError> {
        let target = self.run_dir(lua.kind).join(lua.file_name());
        move_file(&lua.path, &target).map_err(|source| CodeError::Move {
            from: lua.path.clone(),
            to: target.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(err_path(lua));
        tracing::info!(file = %target.display(), "hot-load: code updated");
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
    fn trial_load(&self, config: &PluginConfig, code_dir: &Path) -> Result<(), Terminated> {
        let mut settings = self.pipeline.context().settings(config.kind);
        settings.plugin_dir = code_dir.to_owned();
        Sandbox::new(Arc::new(config.clone()), &settings, None, StopToken::new()).map(drop)
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
fn run_configs(context: &crate::runner::Context, kind: PluginKind) -> Vec<PluginConfig> {
    let Ok(entries) = std::fs::read_dir(context.run_dir.join(kind.dir())) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .filter_map(|p| context.load_config(kind, &p).ok())
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
