//! The pipeline: every plugin in `hs_run/`, started in Hindsight's order and stopped in reverse
//! with checkpoints flushed after each step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::analysis::AnalysisThread;
use super::input::InputRunner;
use super::output::OutputRunner;
use super::{Context, write_err};
use crate::plugin::{PluginConfig, PluginKind};

pub struct Pipeline {
    context: Context,
    inputs: Vec<InputRunner>,
    analysis: Vec<AnalysisThread>,
    outputs: Vec<OutputRunner>,
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
fn forget_stale_readers(
    context: &Context,
    outputs: &[OutputRunner],
    threads: impl Iterator<Item = usize>,
) {
    let mut live: Vec<String> = outputs.iter().map(|o| o.config.name.clone()).collect();
    live.extend(threads.map(super::analysis::reader_name));
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
    /// Starts outputs, then analysis threads, then inputs, so that readers exist before data
    /// flows (they would catch up from their checkpoints anyway).
    pub fn start(context: Context, analysis_threads: usize) -> std::io::Result<Self> {
        let outputs = load_configs(&context.run_dir, PluginKind::Output)
            .into_iter()
            .map(|c| OutputRunner::start(&context, c))
            .collect::<Result<Vec<_>, _>>()?;

        let threads = analysis_threads.max(1);
        let mut assignment: BTreeMap<usize, Vec<Arc<PluginConfig>>> =
            (0..threads).map(|t| (t, Vec::new())).collect();
        for config in load_configs(&context.run_dir, PluginKind::Analysis) {
            let thread = match config.thread {
                Some(t) => t % threads,
                // Spread: the thread with the fewest plugins so far.
                None => *assignment
                    .iter()
                    .min_by_key(|(_, p)| p.len())
                    .map(|(t, _)| t)
                    .expect("at least one thread"),
            };
            assignment
                .get_mut(&thread)
                .expect("thread exists")
                .push(config);
        }
        let assignment: Vec<_> = assignment
            .into_iter()
            .filter(|(_, plugins)| !plugins.is_empty())
            .collect();
        forget_stale_readers(&context, &outputs, assignment.iter().map(|(id, _)| *id));
        let analysis = assignment
            .into_iter()
            .map(|(id, plugins)| AnalysisThread::start(&context, id, plugins))
            .collect::<Result<Vec<_>, _>>()?;

        let inputs = load_configs(&context.run_dir, PluginKind::Input)
            .into_iter()
            .map(|c| InputRunner::start(&context, c))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(
            inputs = inputs.len(),
            analysis = analysis.iter().map(|t| t.plugins.len()).sum::<usize>(),
            analysis_threads = analysis.len(),
            outputs = outputs.len(),
            "pipeline started"
        );
        Ok(Pipeline {
            context,
            inputs,
            analysis,
            outputs,
        })
    }

    /// True once a plugin with `shutdown_on_terminate` has failed.
    pub fn shutdown_requested(&self) -> bool {
        self.context.shutdown.load(Ordering::SeqCst)
    }

    /// Stops inputs, then analysis, then outputs, making checkpoints durable after each step.
    pub fn stop(self) {
        let tick = |step: &str| {
            if let Err(e) = crate::durability::tick(&self.context.log, &self.context.checkpoints) {
                tracing::error!(step, error = %e, "checkpoint flush failed during shutdown");
            }
        };
        self.inputs.iter().for_each(InputRunner::stop);
        for input in self.inputs {
            input.join(Duration::from_secs(5));
        }
        tick("inputs");
        for thread in &self.analysis {
            tracing::debug!(thread = thread.id, "stopping analysis thread");
            thread.stop();
        }
        self.analysis.into_iter().for_each(AnalysisThread::join);
        tick("analysis");
        for output in &self.outputs {
            tracing::debug!(plugin = %output.config.name, "stopping output");
            output.stop();
        }
        self.outputs.into_iter().for_each(OutputRunner::join);
        tick("outputs");
    }
}
