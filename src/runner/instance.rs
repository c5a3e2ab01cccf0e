//! One plugin instance, and the steps every runner takes to open it and to finish it.
//!
//! Opening: the `message_matcher` compiled (analysis and output plugins), the sandbox created
//! (which runs the plugin's code), its counters found. Starting: `preserve_data` restored — a
//! separate step, because an instance replacing another restores only after the old one saved.
//! Finishing: `timer_event(ns, true)` (analysis and output plugins; Hindsight gives inputs no
//! timer), `preserve_data` saved, what it injected written, its counters published. What is
//! particular to a kind — an input's checkpoint, an output's delivery confirmations, an
//! analysis thread's positions — stays with its runner.

use std::cell::Cell;
use std::sync::Arc;

use super::{Context, PluginStats};
use crate::log::{Appender, LogError};
use crate::matcher::{Matcher, MatcherError};
use crate::plugin::{PluginConfig, PluginKind};
use crate::sandbox::{Sandbox, Terminated};
use crate::stop::StopToken;

/// Why a plugin instance could not be opened or started: what its termination says.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    #[error(transparent)]
    Sandbox(#[from] Terminated),
    #[error("cannot write to {topic}: {source}")]
    Queue {
        topic: &'static str,
        source: LogError,
    },
    #[error("cannot restore its preserved data")]
    Restore,
    #[error("analysis thread {0} is not running")]
    ThreadGone(usize),
    #[error("analysis thread {0} did not answer")]
    NoAnswer(usize),
}

pub(super) struct Instance {
    pub config: Arc<PluginConfig>,
    pub sandbox: Sandbox,
    /// What it reads (`message_matcher`); `None` for an input, which reads no messages.
    pub matcher: Option<Matcher>,
    pub stats: Arc<PluginStats>,
    /// `process_message` calls (an output's last sequence id), and those that failed.
    pub processed: Cell<u64>,
    pub failures: Cell<u64>,
}

impl Instance {
    /// Compiles the matcher and creates the sandbox; `appender` is where it injects, `stop` what
    /// `is_running()` reads. The error is the termination message.
    pub fn open(
        ctx: &Context,
        config: &Arc<PluginConfig>,
        appender: Option<Appender>,
        stop: &StopToken,
    ) -> Result<Self, StartError> {
        let matcher = match config.kind {
            PluginKind::Input => None,
            _ => Some(Matcher::new(
                config.message_matcher.as_deref().unwrap_or("TRUE"),
            )?),
        };
        let sandbox = Sandbox::new(
            config.clone(),
            &ctx.plugin_settings(config),
            appender,
            stop.clone(),
        )?;
        Ok(Instance {
            config: config.clone(),
            sandbox,
            matcher,
            stats: ctx.stats.plugin(&config.name),
            processed: Cell::new(0),
            failures: Cell::new(0),
        })
    }

    /// Restores its preserved data and marks it running; an error (already reported as its
    /// termination) if the data could not be restored.
    pub fn start(&self, ctx: &Context) -> Result<(), StartError> {
        if !ctx.restore(&self.config, &self.sandbox) {
            return Err(StartError::Restore);
        }
        self.stats.set_state("running");
        Ok(())
    }

    /// Whether the message the sandbox has as current is one this plugin reads.
    #[inline]
    pub fn matches(&self, message: &crate::message::MessageView) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.matches(message))
    }

    /// Counts one `process_message` call.
    pub fn count(&self, failed: bool) {
        self.processed.set(self.processed.get() + 1);
        if failed {
            self.failures.set(self.failures.get() + 1);
        }
    }

    /// Copies its counters into its stats row (at checkpoints, not per message).
    pub fn publish(&self) {
        super::publish(
            &self.stats,
            &self.sandbox,
            self.processed.get(),
            self.failures.get(),
        );
    }

    /// The last steps of a clean stop: `timer_event(ns, true)` where the kind has timers,
    /// `preserve_data` saved (only if that succeeded), what it injected written, its counters
    /// published. A failure in the timer is reported as the plugin's termination; the result
    /// says whether what it injected is written (false: logged, and the caller's position must
    /// stay behind so nothing is skipped). `now_ns`: the runner's time (its clock).
    pub fn finish(&self, ctx: &Context, now_ns: i64) -> bool {
        let timer = match self.config.kind {
            PluginKind::Input => Ok(()),
            _ => self.sandbox.timer_event(now_ns, true),
        };
        match timer {
            Ok(()) => {
                ctx.preserve(&self.config, &self.sandbox);
                self.stats.set_state("stopped");
            }
            Err(t) => ctx.terminated(&self.config, &t.0),
        }
        self.publish();
        if let Some(appender) = self.sandbox.host().appender.as_ref()
            && let Err(e) = appender.flush()
        {
            tracing::error!(plugin = %self.config.name, error = %e, "cannot write injected messages");
            return false;
        }
        true
    }
}
