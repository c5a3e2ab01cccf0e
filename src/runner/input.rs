//! Input runner: one thread per input plugin, injecting into `blink.input`.
//!
//! `process_message(checkpoint)` is called once with the plugin's last checkpoint; with a
//! `ticker_interval` it is called again every interval until Blink stops. Injected messages go
//! through a batching appender whose checkpoint reaches the checkpoint store only once the
//! messages carrying it are in the log, so a restart resumes with no gap.

use std::sync::Arc;
use std::time::Duration;

use mlua::Value;

use super::instance::Instance;
use super::worker::Worker;
use super::{Context, Runner};
use crate::checkpoint::CheckpointValue;
use crate::log::{Appender, CheckpointTarget, Fence, INPUT_TOPIC};
use crate::plugin::PluginConfig;
use crate::stop::StopToken;

pub struct InputRunner {
    pub config: Arc<PluginConfig>,
    worker: Worker,
    /// Closes the instance's writer once it is asked to stop and joined, or given up on.
    fence: Fence,
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
        let worker = Worker::spawn(config.name.clone(), move |stop| {
            let span = tracing::info_span!("plugin", kind = "input", name = %cfg.name);
            let _entered = span.enter();
            run_input(&ctx, &cfg, appender, &stop);
        })?;
        // An input waiting for records of a topic (the kafka bridge) waits on the log's
        // notifier: a stop bumps it.
        let notifier = context.log.notifier();
        worker.token().on_stop(move || notifier.notify());
        Ok(InputRunner {
            config,
            worker,
            fence,
        })
    }
}

impl InputRunner {
    /// Whether its thread has ended (the plugin returned for good, failed, or was stopped).
    pub fn finished(&self) -> bool {
        self.worker.finished()
    }
}

impl Runner for InputRunner {
    /// An input blocked in I/O (or ignoring `is_running()`) holds nothing unwritten: after 5 s
    /// it is fenced and left behind, so a restart or a shutdown is never held up by it.
    const DEADLINE: Duration = Duration::from_secs(5);

    /// Asks the plugin to stop: `is_running()` turns false and no further call is made.
    fn stop(&self) {
        self.worker.stop();
    }

    /// Waits up to `deadline` for the thread, then closes its writer. An input that does not stop
    /// (blocked in I/O, or ignoring `is_running()`) is left behind, fenced: what it injected
    /// before is written, and every inject and checkpoint after is refused, so a replacement can
    /// start from its checkpoint with no duplicates after it and no checkpoint moving back.
    fn join(&self, deadline: Duration) -> bool {
        let stopped = self.worker.join_timeout(deadline);
        if let Err(e) = self.fence.close() {
            tracing::error!(plugin = %self.config.name, error = %e, "closing the input's writer failed; its unwritten records will be read again from its checkpoint");
        }
        if !stopped {
            tracing::warn!(plugin = %self.config.name, "input did not stop in time; leaving it running with its injects and checkpoints refused");
        }
        stopped
    }
}

/// Backpressure: waits while the slowest reader of `blink.input` is more than `backpressure`
/// segments behind its end (or until Blink stops).
fn throttle(ctx: &Context, stop: StopToken) -> Box<dyn Fn() -> bool> {
    let (checkpoints, max) = (ctx.checkpoints.clone(), ctx.backpressure as usize);
    let partition = ctx.log.partition(INPUT_TOPIC, 0).ok();
    Box::new(move || {
        let Some(partition) = &partition else {
            return true;
        };
        let mut waited = false;
        while !stop.is_stopped() {
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
            // Reader progress is looked at every 10 ms; a stop ends the wait at once.
            stop.wait_timeout(Duration::from_millis(10));
        }
        let go_on = !stop.is_stopped();
        if waited && go_on {
            tracing::info!("backpressure released");
        }
        go_on
    })
}

fn run_input(ctx: &Context, config: &Arc<PluginConfig>, appender: Appender, stop: &StopToken) {
    let instance = match Instance::open(ctx, config, Some(appender), stop) {
        Ok(instance) => instance,
        Err(e) => return ctx.terminated(config, &e.to_string()),
    };
    if instance.start(ctx).is_err() {
        return;
    }
    let sandbox = &instance.sandbox;
    if ctx.backpressure > 0 {
        sandbox.host().throttle = Some(throttle(ctx, stop.clone()));
    }
    tracing::info!("started");
    let interval = Duration::from_secs(config.ticker_interval);
    while !stop.is_stopped() {
        let result = match ctx.checkpoints.input(&config.name) {
            Some(CheckpointValue::Number(n)) => sandbox.process_message(n),
            Some(CheckpointValue::String(s)) => sandbox.process_message(s),
            None => sandbox.process_message(Value::Nil),
        };
        let flushed = sandbox.host().appender.as_ref().map(|a| a.flush());
        instance.count(matches!(result, Ok((status, _)) if status < 0));
        instance.publish();
        match (result, flushed) {
            (Err(_), _) if stop.is_stopped() => {
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
        // Until the next tick, or the stop (no polling while idle).
        if stop.wait_timeout(interval) {
            break;
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
    instance.finish(ctx, crate::time::now_nanos());
    tracing::info!(injected = sandbox.host().injected, "stopped");
}
