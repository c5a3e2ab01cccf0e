//! The host state behind a sandbox's API: what a plugin injects into, its limits and counters.
//!
//! One [`Host`] per sandbox, shared by the sandbox, the API functions (through mlua app data)
//! and the raw C functions (through an upvalue pointing at it); everything runs on the
//! sandbox's thread. The API functions ([`super::api`]) and the raw inject path
//! ([`super::inject`]) both work on it; host modules never see it, only the narrow
//! [`super::modules::ModuleEnv`] made from it.

use std::path::PathBuf;
use std::sync::Arc;

use mlua::{Lua, Table};

use super::heka::{self, Defaults};
use super::modules::ModuleEnv;
use super::table_encoder::{self, Headers, Scratch};
use crate::checkpoint::CheckpointValue;
use crate::log::{Appender, LogError};
use crate::message::Message;
use crate::plugin::{PluginConfig, PluginKind};
use crate::stop::StopToken;

/// What every sandbox of a pipeline shares.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Directories `require` searches, in order.
    pub lua_paths: Vec<PathBuf>,
    /// Directory holding the plugin's `.lua` file.
    pub plugin_dir: PathBuf,
    pub hostname: String,
    pub pid: i32,
    pub max_message_size: usize,
    /// The log, for the `kafka` module's consumers; `None` leaves the module out.
    pub log: Option<std::sync::Arc<crate::log::Log>>,
    /// The plugin's counters in `plugins.tsv` (`None`: counted where nobody looks, as in a trial
    /// load).
    pub stats: Option<std::sync::Arc<crate::plugin::PluginStats>>,
    /// Where the deployment keeps things, for `read_config` (Hindsight's values).
    pub deployment: super::config_values::Deployment,
}

/// Why an inject was refused: the text after `inject_message() ` in the plugin's error.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The call's inject budget is spent (the message names the cfg key to raise).
    #[error("{0}")]
    Count(String),
    #[error("output_limit exceeded")]
    OutputLimit,
    #[error("message of {len} bytes exceeds max_message_size ({max})")]
    TooLarge { len: usize, max: usize },
    #[error("refused: Blink is stopping")]
    Stopping,
    #[error("this plugin cannot inject")]
    NoQueue,
    /// The log refused it (a fenced instance, a failing disk). Boxed: the inject path returns
    /// this `Result` for every message, and a small one costs less to return.
    #[error(transparent)]
    Log(Box<LogError>),
    /// The table or protobuf string is not a valid message (lua_sandbox's words after
    /// `failed: `).
    #[error("failed: {0}")]
    Message(String),
}

impl From<LogError> for InjectError {
    fn from(e: LogError) -> Self {
        InjectError::Log(Box::new(e))
    }
}

/// Injects between two backpressure checks.
const THROTTLE_EVERY: u64 = 256;

/// Which entry point is running: inject limits differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    ProcessMessage,
    TimerEvent,
}

/// The host state, shared by the sandbox, the mlua callbacks (through app data) and the raw C
/// functions (through an upvalue pointing at it). Everything runs on the sandbox's thread.
pub type SharedHost = std::rc::Rc<std::cell::RefCell<Host>>;

/// The state API functions read and change; one per sandbox.
pub struct Host {
    pub config: Arc<PluginConfig>,
    /// Where injected messages go (input → blink.input, analysis → blink.analysis).
    pub appender: Option<Appender>,
    /// Messages injected since the plugin started, and their bytes.
    pub injected: u64,
    pub injected_bytes: u64,
    /// Injects left in the current call, for analysis plugins.
    pub(super) inject_budget: u32,
    /// The entry point running (`None` while the plugin's top-level code loads).
    pub(super) phase: Option<Phase>,
    pub(super) payload: Vec<u8>,
    /// Where `inject_message` encodes a table (reused: no allocation per inject).
    pub(super) scratch: Scratch,
    pub(super) defaults: Defaults,
    pub(super) keys: Option<heka::Keys>,
    /// The instruction budget, for host modules that loop in Rust (set once the sandbox is).
    pub(super) steps: Option<std::rc::Rc<dyn crate::sandbox::modules::StepAccount>>,
    /// What the plugin's module objects hold outside Lua, bounded by its memory limit.
    pub(super) external: std::rc::Rc<crate::sandbox::modules::ExternalMemory>,
    /// What `read_config` answers for keys the cfg does not have (Hindsight's values).
    pub(super) config_defaults: Vec<(String, crate::plugin::CfgValue)>,
    pub(super) lua_paths: Vec<std::path::PathBuf>,
    pub(super) max_message_size: usize,
    /// For host modules that read the log (`kafka`).
    pub(super) log: Option<Arc<crate::log::Log>>,
    /// The plugin's counters in `plugins.tsv`, kept current as it injects.
    pub(super) stats: Arc<crate::plugin::PluginStats>,
    /// Stopped when the plugin is asked to stop (`is_running()` turns false).
    pub(super) stop: StopToken,
    /// Input plugins: called every `THROTTLE_EVERY` injects; blocks while backpressure applies,
    /// and returns false if Blink is stopping meanwhile (the inject is then refused).
    pub throttle: Option<Box<dyn Fn() -> bool>>,
    /// Output plugins: the last `update_checkpoint(sequence_id, failures)` call.
    pub checkpoint_update: Option<(u64, u64)>,
    /// While a `checkpoint_data` plugin replays after a crash: what it injected before.
    pub(super) replayed: Option<super::replayed::ReplayedInjects>,
}

impl Host {
    pub(super) fn new(
        config: Arc<PluginConfig>,
        settings: &SandboxSettings,
        appender: Option<Appender>,
        stop: StopToken,
    ) -> Self {
        let defaults = Defaults {
            logger: config.name.as_bytes().to_vec(),
            hostname: settings.hostname.as_bytes().to_vec(),
            pid: settings.pid,
        };
        let config_defaults = super::config_values::defaults(
            &config,
            &settings.hostname,
            settings.pid,
            &settings.lua_paths,
            settings.max_message_size,
            &settings.deployment,
        );
        Host {
            steps: None,
            external: crate::sandbox::modules::ExternalMemory::new(config.memory_limit),
            config_defaults,
            config,
            appender,
            injected: 0,
            injected_bytes: 0,
            inject_budget: 0,
            phase: None,
            payload: Vec::new(),
            scratch: Scratch::default(),
            defaults,
            keys: None,
            lua_paths: settings.lua_paths.clone(),
            log: settings.log.clone(),
            stats: settings.stats.clone().unwrap_or_default(),
            max_message_size: settings.max_message_size,
            stop,
            checkpoint_update: None,
            replayed: None,
            throttle: None,
        }
    }

    pub(super) fn begin_call(&mut self, phase: Phase) {
        self.phase = Some(phase);
        self.inject_budget = match phase {
            Phase::ProcessMessage => self.config.process_message_inject_limit,
            Phase::TimerEvent => self.config.timer_event_inject_limit,
        };
    }

    /// What `inject_message(table, checkpoint)` does with the message built from the table: an
    /// analysis plugin spends one of its injects for this call and (with `restricted_headers`)
    /// gets Blink's identity headers; an input's checkpoint goes with its message.
    pub(super) fn inject_from_plugin(
        &mut self,
        mut m: Message,
        checkpoint: Option<CheckpointValue>,
    ) -> Result<(), InjectError> {
        self.check_inject_budget()?;
        if self.table_headers() == Headers::Restricted {
            restrict_headers(&mut m, &self.defaults);
        }
        self.inject(&m, checkpoint)
    }

    /// Appends a message to the plugin's queue (see [`Host::append`]).
    pub(super) fn inject(
        &mut self,
        m: &Message,
        checkpoint: Option<CheckpointValue>,
    ) -> Result<(), InjectError> {
        let timestamp_ms = m.timestamp.div_euclid(1_000_000);
        self.append(timestamp_ms, m.encoded_len(), checkpoint, |out| {
            m.encode(out)
        })
    }

    /// `inject_message(table, checkpoint)` of a table [`table_encoder::encode`] wrote into
    /// `self.scratch`, with the same rules as [`Host::inject_from_plugin`].
    pub(super) fn inject_scratch(
        &mut self,
        timestamp: i64,
        checkpoint: Option<CheckpointValue>,
    ) -> Result<(), InjectError> {
        let scratch = std::mem::take(&mut self.scratch);
        let bytes = &scratch.message;
        let timestamp_ms = timestamp.div_euclid(1_000_000);
        let result = self.append(timestamp_ms, bytes.len(), checkpoint, |out| {
            out.extend_from_slice(bytes)
        });
        self.scratch = scratch;
        result
    }

    /// Encodes the message table at stack index 1 into `self.scratch` (see
    /// [`table_encoder::encode`]); `None`: the general converter must do it.
    ///
    /// # Safety
    /// As [`table_encoder::encode`]: index 1 is a table, and `keys` are valid for this state.
    pub(super) unsafe fn encode_table(
        &mut self,
        state: *mut mlua::ffi::lua_State,
        keys: table_encoder::Keys,
    ) -> Option<table_encoder::Encoded> {
        let headers = self.table_headers();
        // SAFETY: per this function's contract.
        unsafe { table_encoder::encode(state, &self.defaults, keys, headers, &mut self.scratch) }
    }

    /// Analysis plugins may inject `process_message_inject_limit` messages per call (timer
    /// events: `timer_event_inject_limit`).
    pub(super) fn check_inject_budget(&self) -> Result<(), InjectError> {
        if self.config.kind == PluginKind::Analysis && self.inject_budget == 0 {
            return Err(InjectError::Count(self.inject_count_error()));
        }
        Ok(())
    }

    /// Hindsight's words, then the cfg key and value that would have allowed the inject: the
    /// default `process_message_inject_limit` is 0, which surprises a detection's first alert.
    pub(super) fn inject_count_error(&self) -> String {
        let (key, limit) = match self.phase {
            Some(Phase::ProcessMessage) => (
                "process_message_inject_limit",
                self.config.process_message_inject_limit,
            ),
            Some(Phase::TimerEvent) => (
                "timer_event_inject_limit",
                self.config.timer_event_inject_limit,
            ),
            None => {
                return "exceeded InjectMessage count: no injects while the plugin loads".into();
            }
        };
        format!(
            "exceeded InjectMessage count: {key} = {limit} in the cfg; set {key} = {} (or more) to inject",
            limit + 1
        )
    }

    /// The most bytes one injected message may have: the plugin's `output_limit`, or Blink's
    /// `max_message_size` if that is smaller.
    pub(super) fn inject_size_limit(&self) -> usize {
        self.config.output_cap().min(self.max_message_size)
    }

    /// Which headers of an injected table are kept.
    pub(super) fn table_headers(&self) -> Headers {
        if self.config.kind == PluginKind::Analysis && self.config.restricted_headers {
            Headers::Restricted
        } else {
            Headers::FromTable
        }
    }

    /// Appends an encoded message (`len` bytes, which `write` produces) to the plugin's queue,
    /// with an input's checkpoint to publish once it is written; spends an analysis plugin's
    /// inject.
    fn append(
        &mut self,
        timestamp_ms: i64,
        len: usize,
        checkpoint: Option<CheckpointValue>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), InjectError> {
        if len > self.config.output_cap() {
            return Err(InjectError::OutputLimit);
        }
        if len > self.max_message_size {
            return Err(InjectError::TooLarge {
                len,
                max: self.max_message_size,
            });
        }
        if (self.injected + 1).is_multiple_of(THROTTLE_EVERY)
            && let Some(throttle) = &self.throttle
            && !throttle()
        {
            return Err(InjectError::Stopping);
        }
        let analysis = self.config.kind == PluginKind::Analysis;
        let checkpoint = if analysis { None } else { checkpoint };
        let appender = self.appender.as_ref().ok_or(InjectError::NoQueue)?;
        if let Some(replayed) = self.replayed.as_mut() {
            // Rare (a replay after a crash): the message is built aside to be compared.
            let mut bytes = Vec::with_capacity(len);
            write(&mut bytes);
            if replayed.take(&bytes) {
                if analysis {
                    self.inject_budget -= 1;
                }
                self.stats.count("replayed_duplicates", 1);
                return Ok(());
            }
            appender.append_encoded(timestamp_ms, len, checkpoint, |out| {
                out.extend_from_slice(&bytes)
            })?;
        } else {
            appender.append_encoded(timestamp_ms, len, checkpoint, write)?;
        }
        self.injected += 1;
        self.injected_bytes += len as u64;
        self.stats.injected(self.injected, self.injected_bytes);
        if analysis {
            self.inject_budget -= 1;
        }
        Ok(())
    }
}

impl Host {
    /// A message from a plugin's table, by the general converter.
    pub(super) fn message_of(&self, t: &Table) -> Result<Message, InjectError> {
        heka::message_from_table(
            t,
            &self.defaults,
            self.keys.as_ref().expect("keys made at install"),
        )
        .map_err(InjectError::Message)
    }

    /// Whether the plugin is still wanted (`is_running()`).
    pub(super) fn is_running(&self) -> bool {
        !self.stop.is_stopped()
    }

    /// Output plugins: confirms delivery of every message up to `sequence` (0: all pending), as
    /// `update_checkpoint(sequence, failures)` does.
    pub(super) fn confirm(&mut self, sequence: u64, failures: u64) {
        self.checkpoint_update = Some((sequence, failures));
    }

    /// The narrow view of this plugin a host module gets; `shared` is this host's own handle,
    /// which the confirm callback holds weakly (a module's userdata may outlive nothing, but a
    /// cycle through the Lua state must not keep the host alive).
    pub(super) fn module_env(&self, shared: &SharedHost) -> ModuleEnv {
        let host = std::rc::Rc::downgrade(shared);
        ModuleEnv {
            kind: self.config.kind,
            plugin: self.config.name.clone(),
            log: self.log.clone(),
            stats: self.stats.clone(),
            max_message_bytes: self.inject_size_limit(),
            confirm: std::rc::Rc::new(move |sequence, failures| {
                if let Some(host) = host.upgrade() {
                    host.borrow_mut().confirm(sequence, failures);
                }
            }),
            steps: self
                .steps
                .clone()
                .unwrap_or_else(|| std::rc::Rc::new(crate::sandbox::modules::Unlimited)),
            memory_limit: self.config.memory_limit,
            external: self.external.clone(),
        }
    }
}

/// Analysis plugins' `restricted_headers`: identity headers are Blink's, not the plugin's.
pub(super) fn restrict_headers(m: &mut Message, defaults: &Defaults) {
    m.uuid = crate::message::new_uuid();
    m.timestamp = crate::time::now_nanos();
    m.logger = Some(defaults.logger.clone());
    m.hostname = Some(defaults.hostname.clone());
    m.pid = Some(defaults.pid);
}

/// The sandbox's host state, shared with the raw C functions (see [`SharedHost`]).
pub(super) fn shared(lua: &Lua) -> SharedHost {
    lua.app_data_ref::<SharedHost>()
        .expect("host installed")
        .clone()
}
