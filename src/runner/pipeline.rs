//! The pipeline: every plugin in `hs_run/`, started in Hindsight's order and stopped in reverse
//! with checkpoints flushed after each step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::analysis::{self, AnalysisThread};
use super::input::InputRunner;
use super::output::OutputRunner;
use super::{Context, write_err};
use crate::plugin::{InitialPosition, PluginConfig, PluginKind};

/// The running plugins. Plugins can be loaded, restarted and stopped while it runs (the
/// hot-load directory does that); every method takes `&self` and they are serialised.
pub struct Pipeline {
    context: Context,
    analysis_threads: usize,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    inputs: BTreeMap<String, InputRunner>,
    threads: BTreeMap<usize, AnalysisThread>,
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

/// The valid plugin cfgs of one kind in `run_dir`, in name order. An invalid cfg is reported in
/// its `.err` file and the log, and left out; the others still start.
pub fn load_configs(run_dir: &Path, kind: PluginKind) -> Vec<Arc<PluginConfig>> {
    let dir = run_dir.join(kind.dir());
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
            Some("cfg") => match PluginConfig::load(kind, &path) {
                Ok(config) if !dir.join(&config.filename).exists() => {
                    let message = format!(
                        "{}: key `filename`: {} does not exist in {}",
                        path.display(),
                        config.filename,
                        dir.display()
                    );
                    tracing::error!(error = %message, "plugin not started");
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
        let outputs = load_configs(&context.run_dir, PluginKind::Output);
        let mut assignment: BTreeMap<usize, Vec<Arc<PluginConfig>>> = BTreeMap::new();
        for config in load_configs(&context.run_dir, PluginKind::Analysis) {
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
                .insert(id, AnalysisThread::start(&context, id, plugins)?);
        }
        for config in load_configs(&context.run_dir, PluginKind::Input) {
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

    /// True once a plugin with `shutdown_on_terminate` has failed.
    pub fn shutdown_requested(&self) -> bool {
        self.context.shutdown.load(Ordering::SeqCst)
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
    pub fn load(&self, config: Arc<PluginConfig>) -> Result<LoadOutcome, String> {
        let mut running = self.running();
        let running = &mut *running;
        let ctx = &self.context;
        let name = config.name.clone();
        let outcome = match config.kind {
            PluginKind::Input => {
                let old = running.inputs.remove(&name);
                let restarted = old.is_some();
                if let Some(old) = old {
                    old.stop();
                    old.join(Duration::from_secs(5));
                }
                let runner = InputRunner::start(ctx, config).map_err(|e| e.to_string())?;
                running.inputs.insert(name, runner);
                restarted
            }
            PluginKind::Output => {
                let old = running.outputs.remove(&name);
                let restarted = old.is_some();
                if let Some(old) = old {
                    old.stop();
                    old.join();
                }
                let runner = OutputRunner::start(ctx, config, InitialPosition::End)
                    .map_err(|e| e.to_string())?;
                running.outputs.insert(name, runner);
                restarted
            }
            PluginKind::Analysis => {
                let threads = self.analysis_threads;
                let target = config.thread.map(|t| t % threads).unwrap_or_else(|| {
                    match running.analysis.get(&name) {
                        Some((t, _)) => *t,
                        None => (0..threads)
                            .min_by_key(|t| {
                                running.analysis.values().filter(|(p, _)| p == t).count()
                            })
                            .expect("at least one thread"),
                    }
                });
                let current = running.analysis.get(&name).map(|(t, _)| *t);
                if let Some(t) = current.filter(|&t| t != target) {
                    // Moving threads: stop on the old one (its position is written), start on
                    // the new one from there.
                    if let Some(thread) = running.threads.get(&t) {
                        thread.unload(&name);
                    }
                    running.analysis.remove(&name);
                }
                // A plugin that ran here and was terminated resumes from its thread's position.
                let from = analysis::start_position(
                    ctx,
                    &config,
                    current.filter(|&t| t == target),
                    InitialPosition::End,
                );
                let thread = match running.threads.entry(target) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => e.insert(
                        AnalysisThread::start(ctx, target, Vec::new())
                            .map_err(|e| e.to_string())?,
                    ),
                };
                thread.load(config.clone(), from)?;
                running.analysis.insert(name, (target, config));
                current.is_some()
            }
        };
        Ok(if outcome {
            LoadOutcome::Restarted
        } else {
            LoadOutcome::Started
        })
    }

    /// Stops plugin `name` cleanly (`timer_event(ns, true)`, preserve_data, checkpoints written)
    /// and forgets its read positions, so a stopped plugin never holds back retention or
    /// backpressure; false if it was not running.
    pub fn unload(&self, name: &str) -> bool {
        let mut running = self.running();
        let stopped = if let Some(input) = running.inputs.remove(name) {
            input.stop();
            input.join(Duration::from_secs(5));
            true
        } else if let Some(output) = running.outputs.remove(name) {
            output.stop();
            output.join();
            true
        } else if let Some((thread, _)) = running.analysis.remove(name) {
            running.threads.get(&thread).is_some_and(|t| t.unload(name))
        } else {
            false
        };
        if stopped {
            self.context.checkpoints.remove_reader(name);
            self.context.log.unregister_topic_consumer(name);
        }
        stopped
    }

    /// Stops inputs, then analysis, then outputs, making checkpoints durable after each step.
    pub fn stop(&self) {
        let running = std::mem::take(&mut *self.running());
        let tick = |step: &str| {
            if let Err(e) = crate::durability::tick(&self.context.log, &self.context.checkpoints) {
                tracing::error!(step, error = %e, "checkpoint flush failed during shutdown");
            }
        };
        running.inputs.values().for_each(InputRunner::stop);
        for input in running.inputs.into_values() {
            input.join(Duration::from_secs(5));
        }
        tick("inputs");
        for thread in running.threads.values() {
            tracing::debug!(thread = thread.id, "stopping analysis thread");
            thread.stop();
        }
        running.threads.into_values().for_each(AnalysisThread::join);
        tick("analysis");
        for output in running.outputs.values() {
            tracing::debug!(plugin = %output.config.name, "stopping output");
            output.stop();
        }
        running.outputs.into_values().for_each(OutputRunner::join);
        tick("outputs");
    }
}
