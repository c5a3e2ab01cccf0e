//! The pipeline: every plugin in `hs_run/`, started in Hindsight's order and stopped in reverse
//! with checkpoints flushed after each step.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::analysis::{self, AnalysisThread};
use super::input::InputRunner;
use super::instance::StartError;
use super::output::OutputRunner;
use super::{Context, Mode, Runner, SHUTDOWN_DEADLINE, write_err};
use crate::plugin::{InitialPosition, PluginConfig, PluginKind};
use crate::stop::StopToken;

/// The running plugins. Plugins can be loaded, restarted and stopped while it runs (the
/// hot-load directory does that); every method takes `&self` and they are serialised.
pub struct Pipeline {
    context: Context,
    analysis_threads: usize,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    /// Set by [`Pipeline::stop`]: nothing starts after it.
    stopped: bool,
    inputs: BTreeMap<String, InputRunner>,
    threads: BTreeMap<usize, Arc<AnalysisThread>>,
    /// Each running analysis plugin and the thread it runs on.
    analysis: BTreeMap<String, (usize, Arc<PluginConfig>)>,
    outputs: BTreeMap<String, OutputRunner>,
}

/// What [`Pipeline::load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Started,
    Restarted,
}

/// The valid plugin cfgs of one kind in `hs_run`, in name order. An invalid cfg is reported in
/// its `.err` file and the log (and counted as a plugin of its kind that failed), and left out;
/// the others still start.
fn load_configs(context: &Context, kind: PluginKind) -> Vec<Arc<PluginConfig>> {
    let dir = context.run_dir.join(kind.dir());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        tracing::warn!(dir = %dir.display(), "no plugin directory");
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    let mut configs = Vec::new();
    for path in paths {
        match path.extension().and_then(|e| e.to_str()) {
            Some("err") => {
                // Errors of an earlier run are stale.
                let _ = std::fs::remove_file(&path);
            }
            Some("cfg") => match context.load_config(kind, &path) {
                Ok(config) if context.code_dir(kind, &config.filename).is_none() => {
                    let installed = if context.install_path.as_os_str().is_empty() {
                        String::new()
                    } else {
                        format!(
                            " nor in {}",
                            context.install_path.join(kind.dir()).display()
                        )
                    };
                    let message = format!(
                        "{}: key `filename`: {} does not exist in {}{installed}",
                        path.display(),
                        config.filename,
                        dir.display()
                    );
                    tracing::error!(error = %message, "plugin not started");
                    context.stats.failed(kind);
                    write_err(
                        &dir,
                        path.file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or("plugin"),
                        &message,
                    );
                }
                Ok(config) => configs.push(Arc::new(config)),
                Err(e) => {
                    tracing::error!(error = %e, "plugin not started");
                    context.stats.failed(kind);
                    write_err(
                        &dir,
                        path.file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or("plugin"),
                        &e.to_string(),
                    );
                }
            },
            _ => {}
        }
    }
    configs
}

/// Drops the positions of readers that no longer exist (an output removed from `hs_run`, an
/// analysis thread no longer used): a stale position would hold back retention and
/// backpressure for ever. As in Hindsight, a removed output starts afresh if it comes back.
fn forget_stale_readers(context: &Context, live: &[String]) {
    for reader in context.checkpoints.readers() {
        if !live.contains(&reader) {
            tracing::info!(
                reader,
                "forgetting the checkpoint of a reader that no longer exists"
            );
            context.checkpoints.remove_reader(&reader);
        }
    }
}

impl Pipeline {
    /// Starts the plugins in `hs_run`: outputs, then analysis threads, then inputs, so that
    /// readers exist before data flows (they would catch up from their checkpoints anyway).
    /// Plugins with no checkpoint start at the oldest retained message unless their cfg says
    /// `initial_position = "end"`.
    pub fn start(context: Context, analysis_threads: usize) -> std::io::Result<Self> {
        let threads = analysis_threads.max(1);
        let outputs = load_configs(&context, PluginKind::Output);
        let mut assignment: BTreeMap<usize, Vec<Arc<PluginConfig>>> = BTreeMap::new();
        for config in load_configs(&context, PluginKind::Analysis) {
            let thread = config.thread.map(|t| t % threads).unwrap_or_else(|| {
                // Spread: the thread with the fewest plugins so far.
                (0..threads)
                    .min_by_key(|t| assignment.get(t).map_or(0, Vec::len))
                    .expect("at least one thread")
            });
            assignment.entry(thread).or_default().push(config);
        }
        let mut live: Vec<String> = outputs.iter().map(|c| c.name.clone()).collect();
        for (id, plugins) in &assignment {
            live.push(analysis::reader_name(*id));
            live.extend(plugins.iter().map(|c| c.name.clone()));
        }
        forget_stale_readers(&context, &live);

        let mut running = Running::default();
        for config in outputs {
            let runner = OutputRunner::start(&context, config.clone(), InitialPosition::Start)?;
            running.outputs.insert(config.name.clone(), runner);
        }
        for (id, plugins) in assignment {
            let plugins = plugins
                .into_iter()
                .map(|c| {
                    let from =
                        analysis::start_position(&context, &c, Some(id), InitialPosition::Start);
                    running.analysis.insert(c.name.clone(), (id, c.clone()));
                    (c, from)
                })
                .collect();
            running
                .threads
                .insert(id, Arc::new(AnalysisThread::start(&context, id, plugins)?));
        }
        for config in load_configs(&context, PluginKind::Input) {
            let runner = InputRunner::start(&context, config.clone())?;
            running.inputs.insert(config.name.clone(), runner);
        }
        tracing::info!(
            inputs = running.inputs.len(),
            analysis = running.analysis.len(),
            analysis_threads = running.threads.len(),
            outputs = running.outputs.len(),
            "pipeline started"
        );
        Ok(Pipeline {
            context,
            analysis_threads: threads,
            running: Mutex::new(running),
        })
    }

    fn running(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Stopped once a plugin with `shutdown_on_terminate` has failed.
    pub fn shutdown(&self) -> &StopToken {
        &self.context.shutdown
    }

    /// The cfgs of the plugins running now, by name.
    pub fn configs(&self) -> Vec<Arc<PluginConfig>> {
        let running = self.running();
        let mut out: Vec<_> = running.inputs.values().map(|r| r.config.clone()).collect();
        out.extend(running.analysis.values().map(|(_, c)| c.clone()));
        out.extend(running.outputs.values().map(|r| r.config.clone()));
        out
    }

    /// Starts plugin `config.name`, or restarts it with this cfg and its code if it runs. A
    /// restart resumes from the old instance's position: an input gets its checkpoint back, an
    /// output continues from its checkpoint, and an analysis plugin is swapped between two
    /// messages of its thread. A plugin with no checkpoint starts per its `initial_position`,
    /// by default at the end of the stream.
    ///
    /// The lock on the running plugins is held only to look up and record runners, never while
    /// a plugin stops, starts or runs Lua: a slow plugin keeps nobody else waiting.
    pub fn load(&self, config: Arc<PluginConfig>) -> Result<LoadOutcome, LoadError> {
        let restarted = match config.kind {
            PluginKind::Input => self.replace(
                |r| &mut r.inputs,
                &config,
                |ctx| InputRunner::start(ctx, config.clone()),
            )?,
            PluginKind::Output => self.replace(
                |r| &mut r.outputs,
                &config,
                |ctx| OutputRunner::start(ctx, config.clone(), InitialPosition::End),
            )?,
            PluginKind::Analysis => self.load_analysis(config)?,
        };
        Ok(if restarted {
            LoadOutcome::Restarted
        } else {
            LoadOutcome::Started
        })
    }

    /// Stops the running input or output of `config`'s name, if any, and starts its
    /// replacement; true if one was running.
    fn replace<R: Runner>(
        &self,
        runners: fn(&mut Running) -> &mut BTreeMap<String, R>,
        config: &PluginConfig,
        start: impl FnOnce(&Context) -> std::io::Result<R>,
    ) -> Result<bool, LoadError> {
        let name = &config.name;
        let old = {
            let mut running = self.running();
            if running.stopped {
                return Err(LoadError::Stopping);
            }
            runners(&mut running).remove(name)
        };
        let restarted = old.is_some();
        if let Some(old) = old {
            old.stop();
            old.join(R::DEADLINE);
        }
        let runner = start(&self.context).map_err(|source| LoadError::Start {
            plugin: name.clone(),
            source,
        })?;
        let displaced = {
            let mut running = self.running();
            if running.stopped {
                Err(runner)
            } else {
                Ok(runners(&mut running).insert(name.clone(), runner))
            }
        };
        match displaced {
            Err(runner) => {
                runner.stop();
                runner.join(R::DEADLINE);
                Err(LoadError::Stopping)
            }
            Ok(displaced) => {
                // Only a concurrent load of the same plugin gets here: the later one wins.
                if let Some(other) = displaced {
                    other.stop();
                    other.join(R::DEADLINE);
                }
                Ok(restarted)
            }
        }
    }

    fn load_analysis(&self, config: Arc<PluginConfig>) -> Result<bool, LoadError> {
        let ctx = &self.context;
        let name = config.name.clone();
        let threads = self.analysis_threads;
        let (thread, moved_from, current, target) = {
            let mut running = self.running();
            let running = &mut *running;
            if running.stopped {
                return Err(LoadError::Stopping);
            }
            let current = running.analysis.get(&name).map(|(t, _)| *t);
            let target = config.thread.map(|t| t % threads).unwrap_or_else(|| {
                current.unwrap_or_else(|| {
                    (0..threads)
                        .min_by_key(|t| running.analysis.values().filter(|(p, _)| p == t).count())
                        .expect("at least one thread")
                })
            });
            let moved_from = match current.filter(|&t| t != target) {
                Some(t) => {
                    running.analysis.remove(&name);
                    running.threads.get(&t).cloned()
                }
                None => None,
            };
            let thread = match running.threads.entry(target) {
                std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
                std::collections::btree_map::Entry::Vacant(e) => e
                    .insert(Arc::new(
                        AnalysisThread::start(ctx, target, Vec::new()).map_err(|source| {
                            LoadError::Start {
                                plugin: name.clone(),
                                source,
                            }
                        })?,
                    ))
                    .clone(),
            };
            (thread, moved_from, current, target)
        };
        if let Some(old) = moved_from {
            // Moving threads: stop on the old one (its position is written), start on the new
            // one from there.
            old.unload(&name);
        }
        // A plugin that ran here and was terminated resumes from its thread's position.
        let from = analysis::start_position(
            ctx,
            &config,
            current.filter(|&t| t == target),
            InitialPosition::End,
        );
        thread
            .load(config.clone(), from)
            .map_err(LoadError::Refused)?;
        self.running().analysis.insert(name, (target, config));
        Ok(current.is_some())
    }

    /// Stops plugin `name` cleanly (`timer_event(ns, true)`, preserve_data, checkpoints written)
    /// and forgets its read positions, so a stopped plugin never holds back retention or
    /// backpressure; false if it was not running. No lock is held while it stops.
    pub fn unload(&self, name: &str) -> bool {
        enum Found {
            Input(InputRunner),
            Output(OutputRunner),
            Analysis(Option<Arc<AnalysisThread>>),
        }
        let found = {
            let mut running = self.running();
            if let Some(input) = running.inputs.remove(name) {
                Some(Found::Input(input))
            } else if let Some(output) = running.outputs.remove(name) {
                Some(Found::Output(output))
            } else if let Some((thread, _)) = running.analysis.remove(name) {
                Some(Found::Analysis(running.threads.get(&thread).cloned()))
            } else {
                None
            }
        };
        let stopped = match found {
            Some(Found::Input(runner)) => {
                runner.stop();
                runner.join(InputRunner::DEADLINE);
                true
            }
            Some(Found::Output(runner)) => {
                runner.stop();
                runner.join(OutputRunner::DEADLINE);
                true
            }
            Some(Found::Analysis(thread)) => thread.is_some_and(|t| t.unload(name)),
            None => false,
        };
        if stopped {
            self.context.checkpoints.remove_reader(name);
            self.context.log.unregister_topic_consumer(name);
        }
        stopped
    }

    /// Whether every input has finished: returned from its last `process_message` (one with no
    /// `ticker_interval` returns once), failed, or was stopped. True when there are none.
    pub fn inputs_finished(&self) -> bool {
        self.running().inputs.values().all(InputRunner::finished)
    }

    /// Stops inputs, then analysis, then outputs, making checkpoints durable after each step.
    /// Later loads are refused. In batch mode each reader first reads its queues to the end,
    /// with no deadline: what the inputs produced is all processed.
    pub fn stop(&self) {
        let running = {
            let mut running = self.running();
            let taken = std::mem::take(&mut *running);
            running.stopped = true;
            taken
        };
        let tick = |step: &str| {
            if let Err(e) = crate::durability::tick(&self.context.log, &self.context.checkpoints) {
                tracing::error!(step, error = %e, "checkpoint flush failed during shutdown");
            }
        };
        let readers_deadline = match self.context.mode {
            Mode::Live => SHUTDOWN_DEADLINE,
            Mode::Batch => Duration::MAX,
        };
        stop_all("input", running.inputs.values(), SHUTDOWN_DEADLINE);
        tick("inputs");
        stop_all(
            "analysis",
            running.threads.values().map(|t| &**t),
            readers_deadline,
        );
        tick("analysis");
        match self.context.mode {
            Mode::Live => stop_all("output", running.outputs.values(), readers_deadline),
            // As hindsight_cli: one after another, in name order, each done (its queues read,
            // its final timer_event run) before the next is asked to stop. A batch's last
            // output may check what an earlier one wrote (the telemetry monitors' tests do).
            Mode::Batch => {
                for output in running.outputs.values() {
                    stop_all("output", std::iter::once(output), readers_deadline);
                }
            }
        }
        tick("outputs");
    }
}

/// Why [`Pipeline::load`] did not start a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("Blink is stopping")]
    Stopping,
    #[error("cannot start a thread for {plugin}: {source}")]
    Start {
        plugin: String,
        source: std::io::Error,
    },
    /// The analysis thread could not open the plugin (its termination message).
    #[error(transparent)]
    Refused(#[from] StartError),
}

/// Stops every runner first, then joins them: they wind down side by side, and together wait
/// no longer than the kind's deadline or `deadline`, whichever is shorter.
fn stop_all<'a, R: Runner + 'a>(
    kind: &str,
    runners: impl Iterator<Item = &'a R> + Clone,
    deadline: Duration,
) {
    runners.clone().for_each(R::stop);
    let limit = R::DEADLINE.min(deadline);
    let until = Instant::now().checked_add(limit);
    let left_behind = runners
        .filter(|r| {
            !r.join(until.map_or(Duration::MAX, |u| {
                u.saturating_duration_since(Instant::now())
            }))
        })
        .count();
    if left_behind > 0 {
        tracing::warn!(
            kind,
            left_behind,
            "shutdown: plugins still running after {limit:?} are left behind; what they had not confirmed is read again at the next start"
        );
    }
}
