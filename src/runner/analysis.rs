//! Analysis threads: each runs its share of the analysis plugins over one reader of `blink.input`.
//!
//! For every message the thread evaluates each plugin's matcher on the raw bytes and calls
//! `process_message()` of those that match, so one read and one decode serve all plugins of the
//! thread. The thread's position is checkpointed only after everything its plugins injected up to
//! there has been written to `blink.analysis`: after a crash, messages are processed again rather
//! than their detections lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::worker::Worker;
use super::{Context, PluginStats};
use crate::log::{ANALYSIS_TOPIC, INPUT_TOPIC, PartitionReader};
use crate::matcher::Matcher;
use crate::message::MessageView;
use crate::plugin::PluginConfig;
use crate::sandbox::Sandbox;

/// Records between checkpoints while data is flowing (and after each idle moment): small enough
/// that a crash replays little, large enough that the flush it implies is rare.
const CHECKPOINT_EVERY: u32 = 1024;

pub struct AnalysisThread {
    pub id: usize,
    pub plugins: Vec<Arc<PluginConfig>>,
    worker: Worker,
}

/// A plugin loaded on the thread.
struct Loaded {
    config: Arc<PluginConfig>,
    sandbox: Sandbox,
    matcher: Matcher,
    interval: Option<Duration>,
    next_timer: Instant,
    processed: u64,
    failures: u64,
    /// Terminated: removed from the thread after the current message.
    dead: bool,
    stats: Arc<PluginStats>,
}

/// The checkpoint name of an analysis thread's reader.
pub fn reader_name(id: usize) -> String {
    format!("analysis-thread.{id}")
}

impl AnalysisThread {
    pub fn start(
        context: &Context,
        id: usize,
        plugins: Vec<Arc<PluginConfig>>,
    ) -> std::io::Result<Self> {
        let (ctx, cfgs) = (context.clone(), plugins.clone());
        let worker = Worker::spawn(format!("analysis-{id}"), move |running| {
            let span = tracing::info_span!("analysis_thread", id);
            let _entered = span.enter();
            run_thread(&ctx, id, cfgs, &running);
        })?;
        Ok(AnalysisThread {
            id,
            plugins,
            worker,
        })
    }

    pub fn stop(&self) {
        self.worker.stop();
    }

    pub fn join(self) {
        self.worker.join();
    }
}

fn load(ctx: &Context, config: &Arc<PluginConfig>, running: &Arc<AtomicBool>) -> Option<Loaded> {
    let matcher = Matcher::new(config.message_matcher.as_deref().unwrap_or("TRUE"));
    let appender = ctx.log.appender(ANALYSIS_TOPIC, 0, None);
    let (matcher, appender) = match (matcher, appender) {
        (Ok(m), Ok(a)) => (m, a),
        (Err(e), _) => {
            ctx.terminated(config, &e.to_string());
            return None;
        }
        (_, Err(e)) => {
            ctx.terminated(config, &e.to_string());
            return None;
        }
    };
    match Sandbox::new(
        config.clone(),
        &ctx.settings(config.kind),
        Some(appender),
        running.clone(),
    ) {
        Ok(sandbox) if !ctx.restore(config, &sandbox) => None,
        Ok(sandbox) => {
            let interval =
                (config.ticker_interval > 0).then(|| Duration::from_secs(config.ticker_interval));
            tracing::info!(plugin = %config.name, "started");
            let stats = ctx.stats.plugin(&config.name);
            stats.set_state("running");
            Some(Loaded {
                config: config.clone(),
                sandbox,
                matcher,
                next_timer: Instant::now() + interval.unwrap_or_default(),
                interval,
                processed: 0,
                failures: 0,
                dead: false,
                stats,
            })
        }
        Err(t) => {
            ctx.terminated(config, &t.0);
            None
        }
    }
}

fn run_thread(
    ctx: &Context,
    id: usize,
    configs: Vec<Arc<PluginConfig>>,
    running: &Arc<AtomicBool>,
) {
    let mut plugins: Vec<Loaded> = configs
        .iter()
        .filter_map(|c| load(ctx, c, running))
        .collect();
    let name = reader_name(id);
    let partition = match ctx.log.partition(INPUT_TOPIC, 0) {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "no input queue"),
    };
    let start = ctx
        .checkpoints
        .position(&name, INPUT_TOPIC, 0)
        .unwrap_or_else(|| partition.log_start());
    let start = start.max(partition.log_start());
    // Recorded at once, so retention and backpressure know this reader from the start.
    ctx.checkpoints.set_position(&name, INPUT_TOPIC, 0, start);
    let mut reader = PartitionReader::new(partition, start);
    tracing::info!(
        from = start,
        plugins = plugins.len(),
        "reading {INPUT_TOPIC}"
    );
    let mut since_checkpoint = 0u32;
    while running.load(Ordering::Relaxed) {
        match reader.next_record() {
            Ok(Some(record)) => {
                let mut value = record.value.unwrap_or_default();
                // Queue records were validated when written (Blink encodes injects itself; a Kafka
                // produce into a queue is checked), and their batch CRC was checked on read.
                match MessageView::parse_trusted(&value).map(|view| view.index()) {
                    Ok(index) => {
                        let mut dead = false;
                        for plugin in plugins.iter_mut() {
                            if !plugin
                                .matcher
                                .matches(&MessageView::with_index(&value, &index))
                            {
                                continue;
                            }
                            // Moved in and taken back: no reference count traffic per plugin.
                            plugin.sandbox.set_current_view(value, index);
                            let result = plugin.sandbox.process_message(());
                            let back = plugin.sandbox.take_current();
                            debug_assert!(back.is_some(), "process_message keeps the message");
                            value = back.unwrap_or_default();
                            plugin.processed += 1;
                            match result {
                                Ok((0, _)) => {}
                                Ok((_, message)) => {
                                    plugin.failures += 1;
                                    tracing::debug!(plugin = %plugin.config.name, ?message, "process_message failed");
                                }
                                Err(t) => {
                                    ctx.terminated(&plugin.config, &t.0);
                                    plugin.dead = true;
                                    dead = true;
                                }
                            }
                        }
                        if dead {
                            plugins.retain(|p| !p.dead);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(offset = record.offset, error = %e, "skipping a record of {INPUT_TOPIC} that is not a Heka message")
                    }
                }
                since_checkpoint += 1;
                if since_checkpoint >= CHECKPOINT_EVERY {
                    checkpoint(ctx, &name, &plugins, &reader);
                    run_timers(ctx, &mut plugins, false);
                    since_checkpoint = 0;
                }
            }
            Ok(None) => {
                if since_checkpoint > 0 {
                    checkpoint(ctx, &name, &plugins, &reader);
                    since_checkpoint = 0;
                }
                run_timers(ctx, &mut plugins, false);
                let next = plugins
                    .iter()
                    .filter(|p| p.interval.is_some())
                    .map(|p| p.next_timer)
                    .min();
                let wait = next.map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(Instant::now())
                });
                let _ = reader.wait(wait.min(Duration::from_millis(100)));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read {INPUT_TOPIC}; retrying in 1 s");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let now = crate::time::now_nanos();
    for plugin in &plugins {
        match plugin.sandbox.timer_event(now, true) {
            Ok(()) => {
                ctx.preserve(&plugin.config, &plugin.sandbox);
                plugin.stats.set_state("stopped");
            }
            Err(t) => ctx.terminated(&plugin.config, &t.0),
        }
    }
    checkpoint(ctx, &name, &plugins, &reader);
    tracing::info!("stopped");
}

/// Writes what the plugins injected, then records the reader's position.
fn checkpoint(ctx: &Context, name: &str, plugins: &[Loaded], reader: &PartitionReader) {
    for plugin in plugins {
        super::publish(
            &plugin.stats,
            &plugin.sandbox,
            plugin.processed,
            plugin.failures,
        );
    }
    for plugin in plugins {
        if let Some(appender) = plugin.sandbox.host().appender.as_ref()
            && let Err(e) = appender.flush()
        {
            // The position stays behind, so nothing is skipped when writing works again.
            tracing::error!(plugin = %plugin.config.name, error = %e, "cannot write injected messages");
            return;
        }
    }
    ctx.checkpoints
        .set_position(name, INPUT_TOPIC, 0, reader.position());
}

fn run_timers(ctx: &Context, plugins: &mut Vec<Loaded>, shutdown: bool) {
    let now = Instant::now();
    let mut dead = false;
    for plugin in plugins.iter_mut() {
        let Some(interval) = plugin.interval else {
            continue;
        };
        if plugin.next_timer > now {
            continue;
        }
        plugin.next_timer = (plugin.next_timer + interval).max(now);
        if let Err(t) = plugin
            .sandbox
            .timer_event(crate::time::now_nanos(), shutdown)
        {
            ctx.terminated(&plugin.config, &t.0);
            plugin.dead = true;
            dead = true;
        }
    }
    if dead {
        plugins.retain(|p| !p.dead);
    }
}
