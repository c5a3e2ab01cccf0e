//! Output runner: one thread per output plugin, reading `blink.input` and/or `blink.analysis`.
//!
//! With both queues (Hindsight's default `read_queue = "both"`) the runner keeps the next record
//! of each and hands the plugin the one with the older timestamp first. The plugin's return code
//! decides the checkpoint: 0 sent, -1 failed and -2 skipped advance it; -3 retries the same
//! message every second; -4 (batching) holds it until a later 0 or `update_checkpoint()`; -5
//! (asynchronous) holds it until `update_checkpoint(sequence_id)` confirms that message.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{Clock, Mode, Ticker};
use super::instance::Instance;
use super::worker::Worker;
use super::{Context, Runner};
use crate::log::batch::Record;
use crate::log::{ANALYSIS_TOPIC, INPUT_TOPIC, PartitionReader};
use crate::message::MessageView;
use crate::plugin::{InitialPosition, PluginConfig, ReadQueue};
use crate::stop::StopToken;

/// What `process_message` asked for (Hindsight's output return codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStatus {
    Sent,
    Fail,
    Skip,
    Retry,
    Batch,
    Async,
}

impl OutputStatus {
    fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => OutputStatus::Sent,
            -1 => OutputStatus::Fail,
            -2 => OutputStatus::Skip,
            -3 => OutputStatus::Retry,
            -4 => OutputStatus::Batch,
            -5 => OutputStatus::Async,
            _ => return None,
        })
    }
}

pub struct OutputRunner {
    pub config: Arc<PluginConfig>,
    worker: Worker,
}

impl OutputRunner {
    /// Starts the output's thread; with no checkpoint it reads from `initial_position`, else
    /// from `default`.
    pub fn start(
        context: &Context,
        config: Arc<PluginConfig>,
        default: InitialPosition,
    ) -> std::io::Result<Self> {
        let (ctx, cfg) = (context.clone(), config.clone());
        let start_at = config.initial_position.unwrap_or(default);
        let worker = Worker::spawn(config.name.clone(), move |stop| {
            let span = tracing::info_span!("plugin", kind = "output", name = %cfg.name);
            let _entered = span.enter();
            run_output(&ctx, &cfg, &stop, start_at);
        })?;
        // The output waits for new records on the log's notifier: a stop bumps it.
        let notifier = context.log.notifier();
        worker.token().on_stop(move || notifier.notify());
        Ok(OutputRunner { config, worker })
    }
}

impl Runner for OutputRunner {
    const DEADLINE: Duration = super::READER_DEADLINE;

    fn stop(&self) {
        self.worker.stop();
    }

    fn join(&self, deadline: Duration) -> bool {
        self.worker.join_timeout(deadline)
    }
}

/// The longest an idle output waits before it looks again on its own (appends and `stop` wake
/// it sooner): long, so an idle Blink stays idle.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// How long a message a plugin asked to retry (-3) waits before it is offered again.
const RETRY_WAIT: Duration = Duration::from_secs(1);
/// Live, how long a stopping output goes on with what its queues already hold: the analysis
/// plugins' last injects (their `timer_event(ns, true)`, written before outputs are stopped)
/// go out in this run. A longer backlog stays for the next run, its checkpoint before it.
const DRAIN_ON_STOP: Duration = Duration::from_secs(1);

/// Records between checkpoint store updates while data flows.
const COMMIT_EVERY: u32 = 1024;

/// Reader positions, one per queue read (at most two).
type Positions = [i64; 2];

fn positions_of(sources: &[Source]) -> Positions {
    let mut out = [0; 2];
    for (slot, source) in out.iter_mut().zip(sources) {
        *slot = source.position();
    }
    out
}

/// One queue an output reads, with the record read ahead for the merge.
struct Source {
    topic: &'static str,
    reader: PartitionReader,
    next: Option<Record>,
}

impl Source {
    fn peek(&mut self) -> Option<&Record> {
        if self.next.is_none() {
            match self.reader.next_record() {
                Ok(r) => self.next = r,
                Err(e) => tracing::error!(topic = self.topic, error = %e, "cannot read"),
            }
        }
        self.next.as_ref()
    }

    /// The position to checkpoint: the next record not yet handed to the plugin.
    fn position(&self) -> i64 {
        self.next
            .as_ref()
            .map_or(self.reader.position(), |r| r.offset)
    }
}

fn run_output(
    ctx: &Context,
    config: &Arc<PluginConfig>,
    stop: &StopToken,
    start_at: InitialPosition,
) {
    let instance = match Instance::open(ctx, config, None, stop) {
        Ok(instance) => instance,
        Err(e) => return ctx.terminated(config, &e.to_string()),
    };
    if instance.start(ctx).is_err() {
        return;
    }
    let sandbox = &instance.sandbox;
    // The sequence id handed to process_message, and the failures counted.
    let (sequence, failures) = (&instance.processed, &instance.failures);
    let topics: &[&'static str] = match config.read_queue {
        ReadQueue::Input => &[INPUT_TOPIC],
        ReadQueue::Analysis => &[ANALYSIS_TOPIC],
        ReadQueue::Both => &[INPUT_TOPIC, ANALYSIS_TOPIC],
    };
    let mut sources = Vec::new();
    for &topic in topics {
        let partition = match ctx.log.partition(topic, 0) {
            Ok(p) => p,
            Err(e) => return ctx.terminated(config, &e.to_string()),
        };
        let start = ctx
            .checkpoints
            .position(&config.name, topic, 0)
            .unwrap_or_else(|| match start_at {
                InitialPosition::Start => partition.log_start(),
                InitialPosition::End => partition.next_offset(),
            });
        let start = start.max(partition.log_start());
        // Recorded at once, so retention and backpressure know this reader from the start.
        ctx.checkpoints.set_position(&config.name, topic, 0, start);
        sources.push(Source {
            topic,
            reader: PartitionReader::new(partition, start),
            next: None,
        });
    }
    tracing::info!("started");
    let notifier = ctx.log.notifier();
    let mut clock = Clock::new(ctx.mode);
    let mut ticker = Ticker::new(ctx.mode, config.ticker_interval);
    // Batch mode: a stop ends the run only once both queues are read to their ends.
    let batch = ctx.mode == Mode::Batch;
    // Positions waiting for confirmation (batch/async), by sequence id.
    let mut pending: VecDeque<(u64, Positions)> = VecDeque::new();
    // Positions confirmed but not yet handed to the checkpoint store: written every
    // COMMIT_EVERY records, when idle, and at the end, to keep the store off the hot path.
    let mut confirmed: Option<Positions> = None;
    let mut since_store = 0u32;
    let store = |positions: &Positions| {
        instance.publish();
        for (source, &position) in topics.iter().zip(positions) {
            ctx.checkpoints
                .set_position(&config.name, source, 0, position);
        }
    };
    let mut commit = |positions: &Positions, confirmed: &mut Option<Positions>| {
        *confirmed = Some(*positions);
        since_store += 1;
        if since_store >= COMMIT_EVERY {
            store(positions);
            since_store = 0;
        }
    };
    let mut drain_until = None;
    'run: loop {
        let stopping = stop.is_stopped();
        if stopping && !batch {
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN_ON_STOP);
            if Instant::now() >= until {
                break;
            }
        }
        let generation = notifier.generation();
        // The older of the queues' next records, input first on a tie.
        let pick = sources
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.peek().map(|r| (r.timestamp, i)))
            .min();
        let Some((_, index)) = pick else {
            if pending.is_empty() {
                confirmed = Some(positions_of(&sources));
            }
            if let Some(positions) = confirmed.take() {
                store(&positions);
            }
            if stopping {
                break;
            }
            if ticker.due(&clock)
                && let Err(t) = sandbox.timer_event(clock.now_ns(), false)
            {
                return ctx.terminated(config, &t.0);
            }
            // Appends and `stop` both bump the notifier: the cap is only a safety net.
            let wait = ticker.next_wall().map_or(IDLE_WAIT, |next| {
                next.saturating_duration_since(Instant::now())
            });
            notifier.wait_past(generation, wait.min(IDLE_WAIT));
            continue;
        };
        if batch
            && clock.now_ns() == 0
            && ticker.due(&clock)
            && let Err(t) = sandbox.timer_event(0, false)
        {
            // Before the first message: the timer's tick at time 0 (clock.rs).
            return ctx.terminated(config, &t.0);
        }
        let record = sources[index].next.take().expect("peeked");
        let value = record.value.unwrap_or_default();
        // Queue records were validated when written (Blink encodes injects itself; a Kafka
        // produce into a queue is checked), and their batch CRC was checked on read.
        let view = match MessageView::parse_trusted(&value) {
            Ok(view) => {
                clock.observe(view.timestamp());
                instance.matches(&view).then_some(view)
            }
            Err(e) => {
                tracing::warn!(topic = sources[index].topic, offset = record.offset, error = %e, "skipping a record that is not a Heka message");
                None
            }
        };
        let positions = positions_of(&sources);
        let Some(index) = view.map(|v| v.index()) else {
            if pending.is_empty() {
                commit(&positions, &mut confirmed);
            }
            continue;
        };
        sequence.set(sequence.get() + 1);
        sandbox.set_current_view(value, index);
        loop {
            let status = match sandbox.process_message(sequence.get() as f64) {
                Ok((code, message)) => match OutputStatus::from_code(code) {
                    Some(status) => status,
                    None => {
                        tracing::warn!(code, ?message, "unknown output status; treating as failed");
                        OutputStatus::Fail
                    }
                },
                Err(t) => return ctx.terminated(config, &t.0),
            };
            match status {
                OutputStatus::Sent => {
                    pending.clear();
                    commit(&positions, &mut confirmed);
                }
                OutputStatus::Fail | OutputStatus::Skip => {
                    if status == OutputStatus::Fail {
                        failures.set(failures.get() + 1);
                    }
                    if pending.is_empty() {
                        commit(&positions, &mut confirmed);
                    } else {
                        pending.push_back((sequence.get(), positions));
                    }
                }
                OutputStatus::Batch | OutputStatus::Async => {
                    pending.push_back((sequence.get(), positions))
                }
                OutputStatus::Retry => {
                    // Same message again in a second. Timers keep firing meanwhile, as in
                    // Hindsight: a plugin that buffers (or an endpoint's backoff) may depend on
                    // them to make progress.
                    let until = Instant::now() + RETRY_WAIT;
                    loop {
                        // Live, a stop leaves the message for the next run (the checkpoint is
                        // before it); a batch run delivers everything first, as hindsight_cli
                        // does (a second signal still exits at once).
                        if stop.is_stopped() && !batch {
                            break 'run;
                        }
                        if ticker.due(&clock) {
                            // timer_event sees no current message; the retried one comes back.
                            let held = sandbox.take_current();
                            if let Err(t) = sandbox.timer_event(clock.now_ns(), false) {
                                return ctx.terminated(config, &t.0);
                            }
                            if let Some(bytes) = held {
                                sandbox.set_current_view(bytes, index);
                            }
                        }
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        let wake = ticker.next_wall().map_or(until, |next| next.min(until));
                        let pause = wake.saturating_duration_since(now);
                        if stop.is_stopped() {
                            // A stopped token no longer waits (batch mode retrying after it).
                            std::thread::sleep(pause);
                        } else {
                            stop.wait_timeout(pause);
                        }
                    }
                    continue;
                }
            }
            break;
        }
        if let Some((sequence_id, _)) = sandbox.host().checkpoint_update.take() {
            // update_checkpoint(seq) confirms everything up to seq; with no seq, everything.
            let upto = if sequence_id == 0 {
                u64::MAX
            } else {
                sequence_id
            };
            let mut last = None;
            while pending.front().is_some_and(|(s, _)| *s <= upto) {
                last = pending.pop_front();
            }
            if let Some((_, positions)) = last {
                commit(&positions, &mut confirmed);
            }
        }
        if ticker.due(&clock)
            && let Err(t) = sandbox.timer_event(clock.now_ns(), false)
        {
            return ctx.terminated(config, &t.0);
        }
    }
    instance.finish(ctx, clock.now_ns());
    // A final update_checkpoint() in the shutdown timer_event confirms what is pending.
    if sandbox.host().checkpoint_update.take().is_some()
        && let Some((_, positions)) = pending.pop_back()
    {
        confirmed = Some(positions);
        pending.clear();
    }
    if let Some(positions) = confirmed {
        store(&positions);
    }
    tracing::info!(
        sequence = sequence.get(),
        failures = failures.get(),
        unconfirmed = pending.len(),
        "stopped"
    );
}
