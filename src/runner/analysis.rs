//! Analysis threads: each runs its share of the analysis plugins over one reader of `blink.input`.
//!
//! For every message the thread evaluates each plugin's matcher on the raw bytes and calls
//! `process_message()` of those that match, so one read and one decode serve all plugins of the
//! thread. The thread's position is checkpointed only after everything its plugins injected up to
//! there has been written to `blink.analysis`: after a crash, messages are processed again rather
//! than their detections lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::clock::{Clock, Mode, Ticker};
use super::instance::{Instance, StartError};
use super::state_snapshot::{Mark, Replay, SavedState};
use super::worker::Worker;
use super::{Context, Runner};
use crate::log::{ANALYSIS_TOPIC, INPUT_TOPIC, Partition, PartitionReader};
use crate::message::MessageView;
use crate::plugin::{InitialPosition, PluginConfig};
use crate::stop::StopToken;

/// Records between checkpoints while data is flowing (and after each idle moment): small enough
/// that a crash replays little, large enough that the flush it implies is rare.
const CHECKPOINT_EVERY: u32 = 1024;

/// How long a caller waits for a thread to answer a command: longer than any sandbox load, and
/// bounded so a wedged thread cannot hang the hot-loader.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest an idle thread waits before it looks again on its own (appends, commands and
/// `stop` wake it sooner): long, so an idle Blink stays idle.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// A change to a running thread's plugins, applied between two messages.
enum Command {
    /// Loads a plugin; one with the same name is replaced by it (the old instance stops cleanly
    /// first, and the new one sees exactly the next message). `from`: where a plugin that is not
    /// running yet starts.
    Load {
        config: Arc<PluginConfig>,
        from: i64,
        reply: mpsc::Sender<Result<(), StartError>>,
    },
    /// Stops a plugin cleanly (`timer_event(ns, true)`, preserve_data, its checkpoint written);
    /// the reply says whether it was running here.
    Unload {
        name: String,
        reply: mpsc::Sender<bool>,
    },
}

/// The commands waiting for a thread, and how to get its attention.
struct Mailbox {
    commands: mpsc::Sender<Command>,
    /// Set with every command, so the thread checks its mailbox with one load per message.
    pending: Arc<AtomicBool>,
    /// The queue the thread reads: waking its readers ends the thread's wait for data.
    input: Arc<Partition>,
}

pub struct AnalysisThread {
    pub id: usize,
    mailbox: Mailbox,
    worker: Worker,
}

/// A plugin loaded on the thread.
struct Loaded {
    instance: Instance,
    ticker: Ticker,
    /// The first offset this plugin processes: the thread's reader may be behind it (another
    /// plugin of the thread is replaying older messages).
    from: i64,
    /// Terminated: removed from the thread after the current message.
    dead: bool,
    /// A `checkpoint_data` plugin's last saved state.
    snapshot: Option<SavedState>,
    /// After a crash: the plugin catching up on what it had processed before.
    replay: Option<Replay>,
}

impl Loaded {
    /// Where this plugin is: the next offset it will process.
    fn position(&self, reader: &PartitionReader) -> i64 {
        self.from.max(reader.position())
    }
}

/// The checkpoint name of an analysis thread's reader.
pub fn reader_name(id: usize) -> String {
    format!("analysis-thread.{id}")
}

/// Where an analysis plugin starts: its own checkpoint, else (when Blink starts) its thread's,
/// else its `initial_position` (`default` when the cfg does not say).
pub fn start_position(
    ctx: &Context,
    config: &PluginConfig,
    thread: Option<usize>,
    default: InitialPosition,
) -> i64 {
    let Ok(partition) = ctx.log.partition(INPUT_TOPIC, 0) else {
        return 0;
    };
    // A checkpoint_data plugin resumes where its saved state belongs (unless its position was
    // forgotten, as `.off` and removal forget them: then it starts afresh, as any plugin).
    let own = ctx
        .checkpoints
        .position(&config.name, INPUT_TOPIC, 0)
        .map(|p| ctx.snapshot_mark(config).map_or(p, |mark| mark.input));
    let thread = thread.and_then(|t| ctx.checkpoints.position(&reader_name(t), INPUT_TOPIC, 0));
    let position =
        own.or(thread)
            .unwrap_or_else(|| match config.initial_position.unwrap_or(default) {
                InitialPosition::Start => partition.log_start(),
                InitialPosition::End => partition.next_offset(),
            });
    position.max(partition.log_start())
}

impl AnalysisThread {
    /// Starts thread `id` with `plugins`, each with the offset it starts from.
    pub fn start(
        context: &Context,
        id: usize,
        plugins: Vec<(Arc<PluginConfig>, i64)>,
    ) -> std::io::Result<Self> {
        let input = context
            .log
            .partition(INPUT_TOPIC, 0)
            .map_err(std::io::Error::other)?;
        let (commands, inbox) = mpsc::channel();
        let pending = Arc::new(AtomicBool::new(false));
        let (ctx, flag, queue) = (context.clone(), pending.clone(), input.clone());
        let worker = Worker::spawn(format!("analysis-{id}"), move |stop| {
            let span = tracing::info_span!("analysis_thread", id);
            let _entered = span.enter();
            let mut thread = ThreadState {
                ctx: &ctx,
                name: reader_name(id),
                plugins: Vec::new(),
                reader: None,
                input: queue,
                stop: &stop,
                clock: Clock::new(ctx.mode),
            };
            for (config, from) in plugins {
                if let Err(e) = thread.add(config.clone(), from) {
                    ctx.terminated(&config, &e.to_string());
                }
            }
            thread.run(&inbox, &flag);
        })?;
        // The thread waits for records of its queue: a stop wakes its reader.
        let readers = input.clone();
        worker.token().on_stop(move || readers.wake_readers());
        Ok(AnalysisThread {
            id,
            mailbox: Mailbox {
                commands,
                pending,
                input,
            },
            worker,
        })
    }

    fn send(&self, command: Command) -> bool {
        let sent = self.mailbox.commands.send(command).is_ok();
        self.mailbox.pending.store(true, Ordering::Release);
        self.mailbox.input.wake_readers();
        self.worker.wake();
        sent
    }

    /// Loads `config` on this thread between two messages (replacing a running instance of the
    /// same name), starting at `from` if it is new; an error if its sandbox cannot be created.
    pub fn load(&self, config: Arc<PluginConfig>, from: i64) -> Result<(), StartError> {
        let (reply, answer) = mpsc::channel();
        if !self.send(Command::Load {
            config,
            from,
            reply,
        }) {
            return Err(StartError::ThreadGone(self.id));
        }
        answer
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or(Err(StartError::NoAnswer(self.id)))
    }

    /// Stops plugin `name` cleanly; false if it was not running on this thread.
    pub fn unload(&self, name: &str) -> bool {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Unload {
            name: name.to_owned(),
            reply,
        }) && answer.recv_timeout(REPLY_TIMEOUT).unwrap_or(false)
    }
}

impl Runner for AnalysisThread {
    const DEADLINE: Duration = super::READER_DEADLINE;

    fn stop(&self) {
        self.worker.stop();
    }

    fn join(&self, deadline: Duration) -> bool {
        self.worker.join_timeout(deadline)
    }
}

/// Opens a plugin for the thread (preserved data is restored by the caller, once an instance
/// it replaces has saved its own).
fn load(
    ctx: &Context,
    config: &Arc<PluginConfig>,
    from: i64,
    stop: &StopToken,
) -> Result<Loaded, StartError> {
    let appender = ctx
        .log
        .appender(ANALYSIS_TOPIC, 0, None)
        .map_err(|source| StartError::Queue {
            topic: ANALYSIS_TOPIC,
            source,
        })?;
    let instance = Instance::open(ctx, config, Some(appender), stop)?;
    Ok(Loaded {
        instance,
        ticker: Ticker::new(ctx.mode, config.ticker_interval),
        from,
        dead: false,
        snapshot: config.checkpoint_data.then(|| SavedState::new(from)),
        replay: None,
    })
}

/// One analysis thread: its plugins and its reader (none while it has no plugins).
struct ThreadState<'a> {
    ctx: &'a Context,
    name: String,
    plugins: Vec<Loaded>,
    reader: Option<PartitionReader>,
    input: Arc<Partition>,
    stop: &'a StopToken,
    /// The thread's time: timers and the final `timer_event` read it.
    clock: Clock,
}

impl ThreadState<'_> {
    /// Adds a plugin that is not running here yet, reading from `from`.
    fn add(&mut self, config: Arc<PluginConfig>, from: i64) -> Result<(), StartError> {
        let from = from.max(self.input.log_start());
        let mut plugin = load(self.ctx, &config, from, self.stop)?;
        plugin.instance.start(self.ctx)?;
        self.prepare_replay(&mut plugin);
        // A first snapshot at once: a crash before the next one must find where it started
        // (if it cannot be written, the error is logged and the next checkpoint tries again).
        if plugin.snapshot.is_some() {
            self.save_state(&plugin, from);
        }
        match &mut self.reader {
            Some(reader) if from < reader.position() => {
                // Replay for the newcomer; the others skip what they have already seen.
                let now = reader.position();
                for p in &mut self.plugins {
                    p.from = p.from.max(now);
                }
                reader.seek(from);
            }
            Some(_) => {}
            None => self.reader = Some(PartitionReader::new(self.input.clone(), from)),
        }
        tracing::info!(plugin = %config.name, from, "started");
        self.ctx
            .checkpoints
            .set_position(&config.name, INPUT_TOPIC, 0, from);
        self.plugins.push(plugin);
        self.record_position();
        Ok(())
    }

    /// Loads `config`: replaces the running instance of that name, or adds it at `from`.
    fn load(&mut self, config: Arc<PluginConfig>, from: i64) -> Result<(), StartError> {
        let Some(i) = self
            .plugins
            .iter()
            .position(|p| p.instance.config.name == config.name)
        else {
            return self.add(config, from);
        };
        let started = Instant::now();
        let reader = self
            .reader
            .as_ref()
            .expect("a thread with plugins has a reader");
        let position = self.plugins[i].position(reader);
        // The new instance is created before the old one stops, so a failure leaves the old
        // one running.
        let plugin = load(self.ctx, &config, position, self.stop)?;
        let old = std::mem::replace(&mut self.plugins[i], plugin);
        self.shut_down(&old);
        if config.checkpoint_data {
            // A replay in progress goes on in the new instance (the old one's snapshot kept
            // its origin, and the new one restores that snapshot).
            let new = &mut self.plugins[i];
            new.replay = old.replay;
            let replayed = old.instance.sandbox.take_replayed();
            new.instance.sandbox.set_replayed(replayed);
        }
        if let Err(e) = self.plugins[i].instance.start(self.ctx) {
            self.plugins.remove(i);
            return Err(e);
        }
        let pause = started.elapsed();
        self.ctx.stats.hotload.swap_pause(pause);
        tracing::info!(plugin = %config.name, from = position, ?pause, "restarted");
        Ok(())
    }

    /// Stops plugin `name` cleanly; false if it is not running here.
    fn unload(&mut self, name: &str) -> bool {
        let Some(i) = self
            .plugins
            .iter()
            .position(|p| p.instance.config.name == name)
        else {
            return false;
        };
        let plugin = self.plugins.remove(i);
        self.shut_down(&plugin);
        tracing::info!(plugin = %name, "stopped");
        if self.plugins.is_empty() {
            // Nothing to read for: no reader, and no position holding back retention.
            self.reader = None;
            self.ctx.checkpoints.remove_reader(&self.name);
        }
        true
    }

    /// The last steps of a plugin leaving the thread: `timer_event(ns, true)`, preserve_data,
    /// what it injected written, its position and stats recorded.
    fn shut_down(&self, plugin: &Loaded) {
        if !plugin.instance.finish(self.ctx, self.clock.now_ns()) {
            // The position stays behind, so nothing is skipped when writing works again.
            return;
        }
        if let Some(reader) = &self.reader {
            let position = plugin.position(reader);
            if plugin.snapshot.is_some() && !self.save_state(plugin, position) {
                return;
            }
            self.ctx.checkpoints.set_position(
                &plugin.instance.config.name,
                INPUT_TOPIC,
                0,
                position,
            );
        }
    }

    /// Writes a `checkpoint_data` plugin's state for `position`, once what it injected has
    /// been written; false if that failed.
    fn save_state(&self, plugin: &Loaded, position: i64) -> bool {
        let analysis = match plugin.replay {
            Some(replay) => replay.origin,
            None => match self.ctx.log.partition(ANALYSIS_TOPIC, 0) {
                Ok(partition) => partition.next_offset(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open {ANALYSIS_TOPIC}");
                    return false;
                }
            },
        };
        let mark = Mark {
            input: position,
            analysis,
        };
        self.ctx
            .snapshot(&plugin.instance.config, &plugin.instance.sandbox, mark)
    }

    /// After a crash, a `checkpoint_data` plugin resumes from its snapshot's mark: what it
    /// injected after the mark is collected, so its repeats are dropped while it catches up.
    fn prepare_replay(&self, plugin: &mut Loaded) {
        let config = &plugin.instance.config;
        let Some(mark) = self
            .ctx
            .snapshot_mark(config)
            .filter(|mark| mark.input == plugin.from)
        else {
            return;
        };
        let Ok(analysis) = self.ctx.log.partition(ANALYSIS_TOPIC, 0) else {
            return;
        };
        let until = self.input.next_offset();
        if let Some((replay, replayed)) = Replay::after_crash(&analysis, mark, &config.name, until)
        {
            plugin.instance.sandbox.set_replayed(Some(replayed));
            plugin.replay = Some(replay);
        }
    }

    /// Ends the replays that are over: every earlier inject seen again, or the plugin caught
    /// up (and, if it has a timer, that timer fired once since).
    fn end_replays(&mut self) {
        let Some(reader) = &self.reader else {
            return;
        };
        for plugin in &mut self.plugins {
            let Some(replay) = plugin.replay else {
                continue;
            };
            let progress = plugin.instance.sandbox.replay_progress();
            let timer = !matches!(plugin.ticker, Ticker::Off);
            if !replay.is_over(plugin.position(reader), progress, timer) {
                continue;
            }
            let (left, skipped) = progress.unwrap_or_default();
            tracing::info!(plugin = %plugin.instance.config.name, skipped, left, "replay after the crash finished");
            plugin.instance.sandbox.set_replayed(None);
            plugin.replay = None;
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Load {
                config,
                from,
                reply,
            } => {
                let result = self.load(config, from);
                let _ = reply.send(result);
            }
            Command::Unload { name, reply } => {
                let _ = reply.send(self.unload(&name));
            }
        }
    }

    /// Records the thread's position (where its reader is).
    fn record_position(&self) {
        if let Some(reader) = &self.reader {
            self.ctx
                .checkpoints
                .set_position(&self.name, INPUT_TOPIC, 0, reader.position());
        }
    }

    /// Removes terminated plugins; their own positions go with them (the thread's position
    /// covers them when they are loaded again).
    fn bury_dead(&mut self) {
        for plugin in self.plugins.iter().filter(|p| p.dead) {
            self.ctx
                .checkpoints
                .remove_reader(&plugin.instance.config.name);
        }
        self.plugins.retain(|p| !p.dead);
        if self.plugins.is_empty() {
            self.reader = None;
            self.ctx.checkpoints.remove_reader(&self.name);
        }
    }

    /// Reads the queue until Blink stops (in batch mode: until it stops and everything in the
    /// queue has been read), applying commands between messages.
    fn run(&mut self, inbox: &mpsc::Receiver<Command>, pending: &AtomicBool) {
        let mut since_checkpoint = 0u32;
        let batch = self.clock.mode() == Mode::Batch;
        loop {
            let stopping = self.stop.is_stopped();
            if stopping && !batch {
                break;
            }
            // A plain load first: a swap (a locked instruction) on every message would cost more.
            if pending.load(Ordering::Relaxed) && pending.swap(false, Ordering::Acquire) {
                while let Ok(command) = inbox.try_recv() {
                    self.handle(command);
                }
            }
            let Some(reader) = &mut self.reader else {
                if stopping {
                    break;
                }
                // No plugins: nothing to read until one is loaded. A command or `stop` unparks
                // the thread (a token left by an unpark before the park is not lost).
                match inbox.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(mpsc::TryRecvError::Empty) => std::thread::park_timeout(IDLE_WAIT),
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
                continue;
            };
            match reader.next_record() {
                Ok(Some(record)) => {
                    if batch && self.clock.now_ns() == 0 {
                        // Before the first message: the timers' tick at time 0 (clock.rs).
                        self.run_timers();
                    }
                    self.process(record);
                    if batch {
                        // Message time moved: timers follow it message by message.
                        self.run_timers();
                    }
                    since_checkpoint += 1;
                    if since_checkpoint >= CHECKPOINT_EVERY {
                        self.checkpoint(false);
                        self.run_timers();
                        since_checkpoint = 0;
                    }
                }
                Ok(None) => {
                    if since_checkpoint > 0 || self.state_changed() {
                        self.checkpoint(false);
                        since_checkpoint = 0;
                    }
                    if stopping {
                        // Batch mode: the queue is drained.
                        break;
                    }
                    self.run_timers();
                    let next = self
                        .plugins
                        .iter()
                        .filter_map(|p| p.ticker.next_wall())
                        .min();
                    // Appends, commands and `stop` all wake the reader: the cap is a safety net.
                    let wait =
                        next.map_or(IDLE_WAIT, |t| t.saturating_duration_since(Instant::now()));
                    if let Some(reader) = &self.reader {
                        let _ = reader.wait(wait.min(IDLE_WAIT));
                    }
                }
                Err(e) if stopping => {
                    tracing::error!(error = %e, "cannot read {INPUT_TOPIC} while stopping");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read {INPUT_TOPIC}; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        for plugin in &self.plugins {
            plugin.instance.finish(self.ctx, self.clock.now_ns());
        }
        self.checkpoint(true);
        tracing::info!("stopped");
    }

    /// Runs one record through every plugin whose matcher accepts it.
    fn process(&mut self, record: crate::log::batch::Record) {
        let mut value = record.value.unwrap_or_default();
        // Queue records were validated when written (Blink encodes injects itself; a Kafka
        // produce into a queue is checked), and their batch CRC was checked on read.
        let index = match MessageView::parse_trusted(&value) {
            Ok(view) => {
                self.clock.observe(view.timestamp());
                view.index()
            }
            Err(e) => {
                tracing::warn!(offset = record.offset, error = %e, "skipping a record of {INPUT_TOPIC} that is not a Heka message");
                return;
            }
        };
        let mut dead = false;
        for plugin in self.plugins.iter_mut() {
            if record.offset < plugin.from
                || !plugin
                    .instance
                    .matches(&MessageView::with_index(&value, &index))
            {
                continue;
            }
            // Moved in and taken back: no reference count traffic per plugin.
            plugin.instance.sandbox.set_current_view(value, index);
            let result = plugin.instance.sandbox.process_message(());
            let back = plugin.instance.sandbox.take_current();
            debug_assert!(back.is_some(), "process_message keeps the message");
            value = back.unwrap_or_default();
            plugin
                .instance
                .count(matches!(result, Ok((status, _)) if status != 0));
            match result {
                Ok((0, _)) => {}
                Ok((_, message)) => {
                    tracing::debug!(plugin = %plugin.instance.config.name, ?message, "process_message failed");
                }
                Err(t) => {
                    self.ctx.terminated(&plugin.instance.config, &t.0);
                    plugin.dead = true;
                    dead = true;
                }
            }
        }
        if dead {
            self.bury_dead();
        }
    }

    /// Writes what the plugins injected, then records the positions of the thread and of each
    /// plugin (a `checkpoint_data` plugin's with its state: at most once per `SNAPSHOT_EVERY`
    /// unless `force`d).
    fn checkpoint(&mut self, force: bool) {
        self.end_replays();
        let Some(reader) = &self.reader else {
            return;
        };
        for plugin in &self.plugins {
            plugin.instance.publish();
        }
        for plugin in &self.plugins {
            if let Some(appender) = plugin.instance.sandbox.host().appender.as_ref()
                && let Err(e) = appender.flush()
            {
                // The positions stay behind, so nothing is skipped when writing works again.
                tracing::error!(plugin = %plugin.instance.config.name, error = %e, "cannot write injected messages");
                return;
            }
        }
        for i in 0..self.plugins.len() {
            let plugin = &self.plugins[i];
            let position = plugin.position(reader);
            if let Some(saved) = &plugin.snapshot {
                let injected = plugin.instance.sandbox.host().injected;
                let began = Instant::now();
                if !saved.wanted(position, injected, began, force)
                    || !self.save_state(plugin, position)
                {
                    continue;
                }
                self.plugins[i].snapshot = Some(SavedState {
                    at: began,
                    cost: began.elapsed(),
                    position,
                    injected,
                });
            }
            self.ctx.checkpoints.set_position(
                &self.plugins[i].instance.config.name,
                INPUT_TOPIC,
                0,
                position,
            );
        }
        self.record_position();
    }

    /// Whether a `checkpoint_data` plugin's state changed with no message read (its timer
    /// injected), so an idle thread still saves it.
    fn state_changed(&self) -> bool {
        self.plugins.iter().any(|p| {
            p.snapshot
                .as_ref()
                .is_some_and(|s| s.injected != p.instance.sandbox.host().injected)
        })
    }

    fn run_timers(&mut self) {
        let mut dead = false;
        let reader = self.reader.as_ref();
        for plugin in self.plugins.iter_mut() {
            if let (Some(replay), Some(reader)) = (&plugin.replay, reader)
                && plugin.position(reader) < replay.until
            {
                // Timers wait until the replay has caught up: a window closed by the clock
                // in the middle of a replay would not be the window the crash interrupted.
                continue;
            }
            if !plugin.ticker.due(&self.clock) {
                continue;
            }
            if let Some(replay) = &mut plugin.replay {
                replay.timer_after = true;
            }
            if let Err(t) = plugin
                .instance
                .sandbox
                .timer_event(self.clock.now_ns(), false)
            {
                self.ctx.terminated(&plugin.instance.config, &t.0);
                plugin.dead = true;
                dead = true;
            }
        }
        if dead {
            self.bury_dead();
        }
    }
}
