//! Plugin runners: the threads that run sandboxes over the log, and the pipeline that owns them.
//!
//! Each input and each output plugin has a thread of its own; analysis plugins share
//! `analysis_threads` threads, each with one reader over `blink.input`. The three runners share
//! one lifecycle: `start` (create the sandbox on the new thread), `stop` (ask it to finish), and
//! `join` (wait, after a final `timer_event(ns, true)` and checkpoint). A plugin that fails is
//! terminated alone: its error goes to `hs_run/<kind>/<name>.err` and to the log.

mod analysis;
mod clock;
mod input;
mod instance;
mod output;
mod pipeline;
mod state_snapshot;
mod stats;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use clock::Mode;
pub use instance::StartError;
pub use pipeline::{LoadError, LoadOutcome, Pipeline};
pub use stats::{HotloadCounters, PluginStats, Stats};
pub use worker::Worker;

use crate::checkpoint::CheckpointStore;
use crate::log::Log;
use crate::plugin::{PluginConfig, PluginKind};
use crate::sandbox::SandboxSettings;
use crate::stop::StopToken;

/// The verbs every runner shares (each also has `start`, and an analysis thread `load` and
/// `unload` to change its plugins in place).
pub(crate) trait Runner {
    /// How long the pipeline waits for a stopping runner of this kind.
    const DEADLINE: Duration;
    /// Asks the runner to finish: its plugins' last calls, checkpoints, preserve_data.
    fn stop(&self);
    /// Waits up to `deadline`; false if the runner is still running and was left behind.
    fn join(&self, deadline: Duration) -> bool;
}

/// Analysis threads and outputs are waited for when replaced: each holds positions and
/// confirmations that a replacement must not see written twice. (Bounding this needs fencing
/// their checkpoints as inputs are fenced; until then a wedged output holds its own restart.)
const READER_DEADLINE: Duration = Duration::MAX;

/// How long Blink's shutdown waits for each kind of runner in turn. A plugin that never returns
/// (no instruction limit, or blocked in I/O) is left behind and the process exits without it:
/// nothing it had not confirmed was checkpointed, so it is read again at the next start, as
/// after a crash.
pub(crate) const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// What every runner needs from the pipeline.
#[derive(Clone)]
pub struct Context {
    pub log: Arc<Log>,
    pub checkpoints: Arc<CheckpointStore>,
    /// `output_path`: where `preserve_data` files live (`preserve/<name>.data`).
    pub data_dir: PathBuf,
    /// `hs_run`: plugin files, and where `.err` files go.
    pub run_dir: PathBuf,
    /// Where `require` looks, in order; input and output plugins then also `io_lua_paths`.
    pub lua_paths: Vec<PathBuf>,
    pub io_lua_paths: Vec<PathBuf>,
    /// `sandbox_install_path`: where a cfg's code is looked for (`<dir>/<kind>/<filename>`)
    /// when `hs_run/<kind>/` does not have it; empty for nowhere.
    pub install_path: PathBuf,
    /// `[<kind>_defaults]`: cfg keys a plugin gets when its cfg does not set them.
    pub defaults: Arc<crate::plugin::PluginDefaults>,
    pub hostname: String,
    pub max_message_size: usize,
    /// Blink's own stop: stopped when a plugin with `shutdown_on_terminate` fails (and by
    /// `blink run` on a signal); `blink run` then stops everything in order.
    pub shutdown: StopToken,
    /// Every plugin's counters (`plugins.tsv`).
    pub stats: Arc<Stats>,
    /// Segments of `blink.input` the slowest reader may lag before inputs wait; 0 = off.
    pub backpressure: u64,
    /// `output_size` and `sandbox_load_path`, which plugins read with `read_config` (Hindsight
    /// tells them; Blink's own use of them is elsewhere).
    pub output_size: u64,
    pub load_dir: PathBuf,
    /// Live, or batch (`blink run --batch`): readers drain their queues before they stop, and
    /// timers follow message time.
    pub mode: Mode,
}

/// Copies a sandbox's counters into its stats (called at checkpoints, not per message).
fn publish(stats: &PluginStats, sandbox: &crate::sandbox::Sandbox, processed: u64, failures: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let host = sandbox.host();
    stats.inject_count.store(host.injected, Relaxed);
    stats.inject_bytes.store(host.injected_bytes, Relaxed);
    drop(host);
    stats.process_count.store(processed, Relaxed);
    stats.process_failures.store(failures, Relaxed);
    stats.memory_now(sandbox.memory());
}

impl Context {
    /// The sandbox settings for a plugin of `kind` in `hs_run`.
    pub fn settings(&self, kind: PluginKind) -> SandboxSettings {
        let mut lua_paths = self.lua_paths.clone();
        if kind != PluginKind::Analysis {
            lua_paths.extend(self.io_lua_paths.iter().cloned());
        }
        SandboxSettings {
            lua_paths,
            plugin_dir: self.run_dir.join(kind.dir()),
            hostname: self.hostname.clone(),
            pid: std::process::id() as i32,
            max_message_size: self.max_message_size,
            log: Some(self.log.clone()),
            stats: None,
            deployment: crate::sandbox::Deployment {
                output_path: self.data_dir.clone(),
                output_size: self.output_size,
                sandbox_load_path: self.load_dir.clone(),
                sandbox_run_path: self.run_dir.clone(),
            },
        }
    }

    /// The sandbox settings for the plugin `config` is about, its counters included; its cfg's
    /// warnings are logged and shown in `plugin_status.tsv`.
    pub fn plugin_settings(&self, config: &PluginConfig) -> SandboxSettings {
        let stats = self.stats.plugin(&config.name);
        for warning in &config.warnings {
            tracing::warn!(plugin = %config.name, cfg = %config.path.display(), "{warning}");
        }
        stats.set_warnings(config.warnings.clone());
        let mut settings = self.settings(config.kind);
        if let Some(dir) = self.code_dir(config.kind, &config.filename) {
            settings.plugin_dir = dir;
        }
        SandboxSettings {
            stats: Some(stats),
            ..settings
        }
    }

    /// The directory holding a plugin's code `filename`: its kind's directory in `hs_run`,
    /// else in `sandbox_install_path`; `None` if neither has it.
    pub fn code_dir(&self, kind: PluginKind, filename: &str) -> Option<PathBuf> {
        let run = self.run_dir.join(kind.dir());
        if run.join(filename).is_file() {
            return Some(run);
        }
        let installed = self.install_path.join(kind.dir());
        (!self.install_path.as_os_str().is_empty() && installed.join(filename).is_file())
            .then_some(installed)
    }

    /// Reads and validates the cfg at `path`, with the defaults of its kind.
    pub fn load_config(
        &self,
        kind: PluginKind,
        path: &std::path::Path,
    ) -> Result<PluginConfig, crate::plugin::PluginConfigError> {
        PluginConfig::load_with(kind, path, &self.defaults)
    }

    fn preserve_path(&self, config: &PluginConfig) -> PathBuf {
        self.data_dir
            .join("preserve")
            .join(format!("{}.data", config.name))
    }

    /// Restores a `preserve_data` plugin's globals; false (and reported) if that failed.
    fn restore(&self, config: &PluginConfig, sandbox: &crate::sandbox::Sandbox) -> bool {
        if !config.preserve_data {
            return true;
        }
        match sandbox.restore(&self.preserve_path(config)) {
            Ok(restored) => {
                if restored {
                    tracing::info!(plugin = %config.name, "restored preserved data");
                }
                true
            }
            Err(t) => {
                self.terminated(config, &t.0);
                false
            }
        }
    }

    /// Saves a `preserve_data` plugin's globals at a clean stop (a `checkpoint_data` plugin's
    /// are saved with its checkpoint: [`Context::snapshot`]).
    fn preserve(&self, config: &PluginConfig, sandbox: &crate::sandbox::Sandbox) {
        if config.preserve_data
            && !config.checkpoint_data
            && let Err(e) = sandbox.preserve(&self.preserve_path(config), "")
        {
            tracing::error!(plugin = %config.name, error = %e, "cannot preserve data");
        }
    }

    /// Saves a `checkpoint_data` plugin's globals with the position they belong to; false
    /// (and reported) if that failed, and the plugin's position must then stay where it was.
    fn snapshot(
        &self,
        config: &PluginConfig,
        sandbox: &crate::sandbox::Sandbox,
        mark: state_snapshot::Mark,
    ) -> bool {
        match sandbox.preserve(&self.preserve_path(config), &mark.header()) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(plugin = %config.name, error = %e, "cannot save the plugin's state; its position stays behind");
                false
            }
        }
    }

    /// Where a `checkpoint_data` plugin's saved state says it resumes.
    fn snapshot_mark(&self, config: &PluginConfig) -> Option<state_snapshot::Mark> {
        if !config.checkpoint_data {
            return None;
        }
        state_snapshot::Mark::read(&self.preserve_path(config))
    }

    /// Records a plugin's termination: `.err` file, log line, and Blink's shutdown if asked.
    fn terminated(&self, config: &PluginConfig, message: &str) {
        tracing::error!(plugin = %config.name, error = %message, "plugin terminated");
        self.stats.failed(config.kind);
        self.stats
            .plugin(&config.name)
            .set_state(format!("terminated: {message}"));
        let stem = config
            .name
            .split_once('.')
            .map_or(config.name.as_str(), |(_, s)| s);
        write_err(&self.run_dir.join(config.kind.dir()), stem, message);
        if config.shutdown_on_terminate {
            tracing::error!(plugin = %config.name, "shutdown_on_terminate is set: stopping Blink");
            self.shutdown.stop();
        }
    }
}

/// `<dir>/<stem>.err`: `YYYY-MM-DDTHH:MM:SS<TAB>error`, as Hindsight writes it.
pub fn write_err(dir: &std::path::Path, stem: &str, message: &str) {
    write_err_file(&dir.join(format!("{stem}.err")), message);
}

/// Writes an `.err` file: `YYYY-MM-DDTHH:MM:SS<TAB>error`, whole (written beside it and renamed
/// into place, so a reader never sees it empty or half written).
pub fn write_err_file(path: &std::path::Path, message: &str) {
    let stamp = crate::time::format_rfc3339_nanos(crate::time::now_nanos());
    let line = format!("{}\t{message}\n", &stamp[..19]);
    let tmp = path.with_extension("err.tmp");
    if let Err(e) = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::error!(path = %path.display(), error = %e, "cannot write the plugin's .err file");
    }
}
