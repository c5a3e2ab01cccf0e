//! Input runner: one thread per input plugin, injecting into `blink.input`.
//!
//! `process_message(checkpoint)` is called once with the plugin's last checkpoint; with a
//! `ticker_interval` it is called again every interval until Blink stops. Injected messages go
//! through a batching appender whose checkpoint reaches the checkpoint store only once the
//! messages carrying it are in the log, so a restart resumes with no gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlua::Value;

use super::Context;
use super::worker::Worker;
use crate::checkpoint::CheckpointValue;
use crate::log::{Appender, CheckpointTarget, Fence, INPUT_TOPIC};
use crate::plugin::PluginConfig;
use crate::sandbox::Sandbox;

/// How long a stopping input gets before it is fenced and left behind.
const JOIN_DEADLINE: Duration = Duration::from_secs(5);

pub struct InputRunner {
    pub config: Arc<PluginConfig>,
    worker: Worker,
    /// Closes the instance's writer once it is asked to stop and joined, or given up on.
    fence: Fence,
    /// The log's notifier: an input waiting for records of a topic (the kafka bridge) waits on
    /// it, so `stop` bumps it.
    notifier: Arc<crate::log::Notifier>,
}

impl InputRunner {
    pub fn start(context: &Context, config: Arc<PluginConfig>) -> std::io::Result<Self> {
        let target = CheckpointTarget {
            store: context.checkpoints.clone(),
            input: config.name.clone(),
        };
        let appender = context
            .log
            .appender(INPUT_TOPIC, 0, Some(target))
            .map_err(|e| std::io::Error::other(format!("cannot write to {INPUT_TOPIC}: {e}")))?;
        let fence = appender.fence();
        let (ctx, cfg) = (context.clone(), config.clone());
        let worker = Worker::spawn(config.name.clone(), move |running| {
            let span = tracing::info_span!("plugin", kind = "input", name = %cfg.name);
            let _entered = span.enter();
            run_input(&ctx, &cfg, appender, &running);
        })?;
        Ok(InputRunner {
            config,
            worker,
            fence,
            notifier: context.log.notifier(),
        })
    }

    /// Asks the plugin to stop: `is_running()` turns false and no further call is made.
    pub fn stop(&self) {
        self.worker.stop();
        self.notifier.notify();
    }

    /// Waits up to `timeout` for the thread, then closes its writer. An input that does not stop
    /// (blocked in I/O, or ignoring `is_running()`) is left behind, fenced: what it injected
    /// before is written, and every inject and checkpoint after is refused, so a replacement can
    /// start from its checkpoint with no duplicates after it and no checkpoint moving back.
    pub fn join(&self) {
        let stopped = self.worker.join_timeout(JOIN_DEADLINE);
        if let Err(e) = self.fence.close() {
            tracing::error!(plugin = %self.config.name, error = %e, "closing the input's writer failed; its unwritten records will be read again from its checkpoint");
        }
        if !stopped {
            tracing::warn!(plugin = %self.config.name, "input did not stop in time; leaving it running with its injects and checkpoints refused");
        }
    }
}

/// Backpressure: waits while the slowest reader of `blink.input` is more than `backpressure`
/// segments behind its end (or until Blink stops).
fn throttle(ctx: &Context, running: Arc<AtomicBool>) -> Box<dyn Fn() -> bool> {
    let (checkpoints, max) = (ctx.checkpoints.clone(), ctx.backpressure as usize);
    let partition = ctx.log.partition(INPUT_TOPIC, 0).ok();
    Box::new(move || {
        let Some(partition) = &partition else {
            return true;
        };
        let mut waited = false;
        while running.load(Ordering::Relaxed) {
            let Some(slowest) = checkpoints.oldest_position(INPUT_TOPIC, 0) else {
                break;
            };
            let behind = partition.segments_after(slowest);
            if behind <= max {
                break;
            }
            if !waited {
                tracing::warn!(
                    behind,
                    backpressure = max,
                    "backpressure: waiting for the slowest reader of {INPUT_TOPIC}"
                );
                waited = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let go_on = running.load(Ordering::Relaxed);
        if waited && go_on {
            tracing::info!("backpressure released");
        }
        go_on
    })
}

fn run_input(
    ctx: &Context,
    config: &Arc<PluginConfig>,
    appender: Appender,
    running: &Arc<AtomicBool>,
) {
    let sandbox = match Sandbox::new(
        config.clone(),
        &ctx.plugin_settings(config),
        Some(appender),
        running.clone(),
    ) {
        Ok(s) => s,
        Err(t) => return ctx.terminated(config, &t.0),
    };
    if !ctx.restore(config, &sandbox) {
        return;
    }
    if ctx.backpressure > 0 {
        sandbox.host().throttle = Some(throttle(ctx, running.clone()));
    }
    let stats = ctx.stats.plugin(&config.name);
    stats.set_state("running");
    let (mut processed, mut failures) = (0u64, 0u64);
    tracing::info!("started");
    let interval = Duration::from_secs(config.ticker_interval);
    while running.load(Ordering::SeqCst) {
        let result = match ctx.checkpoints.input(&config.name) {
            Some(CheckpointValue::Number(n)) => sandbox.process_message(n),
            Some(CheckpointValue::String(s)) => sandbox.process_message(s),
            None => sandbox.process_message(Value::Nil),
        };
        let flushed = sandbox.host().appender.as_ref().map(|a| a.flush());
        processed += 1;
        if matches!(result, Ok((status, _)) if status < 0) {
            failures += 1;
        }
        super::publish(&stats, &sandbox, processed, failures);
        match (result, flushed) {
            (Err(_), _) if !running.load(Ordering::SeqCst) => {
                // Refused while stopping (backpressure held it until then, or the instance was
                // fenced): a clean stop; the checkpoint names the last message written.
                tracing::info!("stopped: an inject was refused while stopping");
                break;
            }
            (Err(t), _) => return ctx.terminated(config, &t.0),
            (_, Some(Err(e))) => {
                return ctx.terminated(config, &format!("writing to {INPUT_TOPIC}: {e}"));
            }
            (Ok((status, Some(message))), _) if status < 0 => {
                tracing::warn!(status, %message, "process_message failed")
            }
            _ => {}
        }
        if interval.is_zero() {
            break;
        }
        // Parked until the next tick; `stop` unparks it (no polling while idle).
        let deadline = Instant::now() + interval;
        while running.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }
    let fenced = sandbox
        .host()
        .appender
        .as_ref()
        .is_some_and(Appender::is_closed);
    if fenced {
        // Given up on and replaced: the state and counters are the new instance's now.
        tracing::warn!("a fenced instance finished late; its data is not preserved");
        return;
    }
    ctx.preserve(config, &sandbox);
    stats.set_state("stopped");
    tracing::info!(injected = sandbox.host().injected, "stopped");
}
