//! The Hindsight API functions a plugin calls, per plugin kind, and the host state behind them.
//!
//! | function | input | analysis | output |
//! |---|---|---|---|
//! | `read_config`, `print`, `decode_message`, `require` | ✓ | ✓ | ✓ |
//! | `inject_message(table \| protobuf string \| nil, checkpoint)` | ✓ | | |
//! | `is_running` | ✓ | | |
//! | `inject_message(table)`, `inject_payload`, `add_to_payload` | | ✓ | |
//! | `read_message` | | ✓ | ✓ |
//! | `encode_message`, `update_checkpoint`, `create_message_matcher` | | | ✓ |

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mlua::{Lua, LuaString, MultiValue, Table, UserData, UserDataMethods, Value};

use super::current::SharedCurrent;
use super::heka::{self, Defaults};
use super::table_encoder::{self, Headers, Scratch};
use super::{SandboxSettings, format_number};
use crate::checkpoint::CheckpointValue;
use crate::log::Appender;
use crate::matcher::Matcher;
use crate::message::{Field, FieldValues, Message, MessageView, stream};
use crate::plugin::{CfgValue, PluginConfig, PluginKind};

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
    inject_budget: u32,
    /// The entry point running (`None` while the plugin's top-level code loads).
    phase: Option<Phase>,
    payload: Vec<u8>,
    /// Where `inject_message` encodes a table (reused: no allocation per inject).
    pub(super) scratch: Scratch,
    defaults: Defaults,
    keys: Option<heka::Keys>,
    lua_paths: Vec<std::path::PathBuf>,
    max_message_size: usize,
    /// For host modules that read the log (`kafka`).
    pub(super) log: Option<Arc<crate::log::Log>>,
    /// The plugin's counters in `plugins.tsv`, kept current as it injects.
    pub(super) stats: Arc<crate::plugin::PluginStats>,
    running: Arc<AtomicBool>,
    /// Input plugins: called every `THROTTLE_EVERY` injects; blocks while backpressure applies,
    /// and returns false if Blink is stopping meanwhile (the inject is then refused).
    pub throttle: Option<Box<dyn Fn() -> bool>>,
    /// Output plugins: the last `update_checkpoint(sequence_id, failures)` call.
    pub checkpoint_update: Option<(u64, u64)>,
}

impl Host {
    pub(super) fn new(
        config: Arc<PluginConfig>,
        settings: &SandboxSettings,
        appender: Option<Appender>,
        running: Arc<AtomicBool>,
    ) -> Self {
        let defaults = Defaults {
            logger: config.name.as_bytes().to_vec(),
            hostname: settings.hostname.as_bytes().to_vec(),
            pid: settings.pid,
        };
        Host {
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
            running,
            checkpoint_update: None,
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
    ) -> Result<(), String> {
        self.check_inject_budget()?;
        if self.table_headers() == Headers::Restricted {
            restrict_headers(&mut m, &self.defaults);
        }
        self.inject(&m, checkpoint)
    }

    /// Appends a message to the plugin's queue (see [`Host::append`]).
    fn inject(&mut self, m: &Message, checkpoint: Option<CheckpointValue>) -> Result<(), String> {
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
    ) -> Result<(), String> {
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
    pub(super) fn check_inject_budget(&self) -> Result<(), String> {
        if self.config.kind == PluginKind::Analysis && self.inject_budget == 0 {
            return Err(self.inject_count_error());
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
        self.config.output_limit.min(self.max_message_size)
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
    ) -> Result<(), String> {
        if len > self.config.output_limit {
            return Err("output_limit exceeded".into());
        }
        if len > self.max_message_size {
            return Err(format!(
                "message of {len} bytes exceeds max_message_size ({})",
                self.max_message_size
            ));
        }
        if (self.injected + 1).is_multiple_of(THROTTLE_EVERY)
            && let Some(throttle) = &self.throttle
            && !throttle()
        {
            return Err("refused: Blink is stopping".into());
        }
        let analysis = self.config.kind == PluginKind::Analysis;
        let checkpoint = if analysis { None } else { checkpoint };
        let appender = self.appender.as_ref().ok_or("this plugin cannot inject")?;
        appender
            .append_encoded(timestamp_ms, len, checkpoint, write)
            .map_err(|e| e.to_string())?;
        self.injected += 1;
        self.injected_bytes += len as u64;
        self.stats.injected(self.injected, self.injected_bytes);
        if analysis {
            self.inject_budget -= 1;
        }
        Ok(())
    }
}

/// A message from a plugin's table: the raw fast path when the table has the common shape,
/// else the general converter.
fn message_of(t: &Table, host: &Host) -> Result<Message, String> {
    heka::message_from_table(
        t,
        &host.defaults,
        host.keys.as_ref().expect("keys made at install"),
    )
}

/// The sandbox's host state, shared with the raw C functions (see [`SharedHost`]).
pub(super) fn shared(lua: &Lua) -> SharedHost {
    lua.app_data_ref::<SharedHost>()
        .expect("host installed")
        .clone()
}

/// Output plugins: confirms delivery of every message up to `sequence` (0: all pending), as
/// `update_checkpoint(sequence, failures)` does; host modules delivering asynchronously call it.
pub(crate) fn update_checkpoint(lua: &Lua, sequence: u64, failures: u64) {
    shared(lua).borrow_mut().checkpoint_update = Some((sequence, failures));
}

/// An API error: `function() detail`. The Lua wrapper raises it at the plugin's line (see
/// [`PRELUDE`]), so a plugin's `pcall` gets a string, as in Hindsight.
fn api_error(_lua: &Lua, function: &str, detail: impl std::fmt::Display) -> String {
    format!("{function}() {detail}")
}

/// Raw API functions report errors as a returned string; these wrappers raise them with
/// `error(msg, 2)`, which puts the plugin's `file:line:` in front like luaL_error does. (An error
/// raised from Rust would reach Lua as a userdata, which Hindsight plugins cannot `:match`.)
const PRELUDE: &str = r#"
local raw, error = ...
local function no_result(f)
    return function(...)
        local err = f(...)
        if err then error(err, 2) end
    end
end
local function one_result(f)
    return function(...)
        local v, err = f(...)
        if err then error(err, 2) end
        return v
    end
end
for name, f in pairs(raw.no_result) do _G[name] = no_result(f) end
for name, f in pairs(raw.one_result) do _G[name] = one_result(f) end
"#;

/// Result of a raw API function with no Lua result: nil, or the error message.
type NoResult = Option<String>;
/// Result of a raw API function with one Lua result: (value, nil), or (nil, error message).
type OneResult = (Value, Option<String>);

fn one(result: Result<Value, String>) -> mlua::Result<OneResult> {
    Ok(match result {
        Ok(v) => (v, None),
        Err(e) => (Value::Nil, Some(e)),
    })
}

fn cfg_to_lua(lua: &Lua, value: &CfgValue) -> mlua::Result<Value> {
    Ok(match value {
        CfgValue::Bool(b) => Value::Boolean(*b),
        CfgValue::Number(n) => Value::Number(*n),
        CfgValue::String(s) => Value::String(lua.create_string(s)?),
        CfgValue::Table(entries) => {
            let t = lua.create_table()?;
            for (k, v) in entries {
                t.raw_set(cfg_to_lua(lua, k)?, cfg_to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

fn checkpoint_of(value: &Value) -> Option<CheckpointValue> {
    match value {
        Value::Integer(i) => Some(CheckpointValue::Number(*i as f64)),
        Value::Number(n) => Some(CheckpointValue::Number(*n)),
        Value::String(s) => Some(CheckpointValue::String(s.to_string_lossy().to_string())),
        _ => None,
    }
}

/// Appends `values` to `out` as Lua's tostring would print them.
fn append_values(out: &mut Vec<u8>, values: &MultiValue) -> Result<(), String> {
    for v in values {
        match v {
            Value::String(s) => out.extend_from_slice(&s.as_bytes()),
            Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Number(n) => out.extend_from_slice(format_number(*n).as_bytes()),
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => out.extend_from_slice(b"nil"),
            other => return Err(format!("cannot output a {}", super::lua_type(other))),
        }
    }
    Ok(())
}

pub(super) fn install(
    lua: &Lua,
    kind: PluginKind,
    host: &SharedHost,
    current: &SharedCurrent,
) -> mlua::Result<()> {
    host.borrow_mut().keys = Some(heka::Keys::new(lua)?);
    lua.set_app_data(host.clone());
    let g = lua.globals();
    let no_result = lua.create_table()?;
    let one_result = lua.create_table()?;

    g.raw_set(
        "read_config",
        lua.create_function(|lua, key: String| {
            let host = shared(lua);
            let host = host.borrow();
            match host.config.get(&key) {
                Some(v) => cfg_to_lua(lua, v),
                None => Ok(Value::Nil),
            }
        })?,
    )?;

    g.raw_set(
        "print",
        lua.create_function(|lua, values: MultiValue| {
            let mut line = Vec::new();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    line.push(b'\t');
                }
                if append_values(&mut line, &MultiValue::from_iter([v.clone()])).is_err() {
                    line.extend_from_slice(super::lua_type(v).as_bytes());
                }
            }
            let name = shared(lua).borrow().config.name.clone();
            tracing::debug!(plugin = %name, "{}", String::from_utf8_lossy(&line));
            Ok(())
        })?,
    )?;

    one_result.raw_set(
        "decode_message",
        lua.create_function(|lua, bytes: LuaString| {
            let bytes = bytes.as_bytes();
            one(match MessageView::parse(&bytes) {
                Ok(view) => heka::message_to_table(lua, &view)
                    .map(Value::Table)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(api_error(
                    lua,
                    "decode_message",
                    format!("invalid message: {e}"),
                )),
            })
        })?,
    )?;

    one_result.raw_set(
        "require",
        lua.create_function(|lua, name: String| one(require(lua, &name)))?,
    )?;

    match kind {
        PluginKind::Input => install_input(lua, &g, &no_result)?,
        PluginKind::Analysis => install_analysis(lua, &no_result)?,
        PluginKind::Output => install_output(lua, &g, &one_result, current)?,
    }
    let general_inject: Option<mlua::Function> = no_result.raw_get("inject_message")?;
    let raw = lua.create_table()?;
    raw.raw_set("no_result", no_result)?;
    raw.raw_set("one_result", one_result)?;
    let error: Value = g.raw_get("error")?;
    lua.load(PRELUDE)
        .set_name("=blink")
        .call::<()>((raw, error))?;
    if kind != PluginKind::Input {
        super::current::install_read_message(lua, current)?;
    }
    if let Some(general) = general_inject {
        super::inject::install(lua, host, general)?;
    }
    Ok(())
}

fn install_input(lua: &Lua, g: &Table, no_result: &Table) -> mlua::Result<()> {
    no_result.raw_set(
        "inject_message",
        lua.create_function(
            |lua, (message, checkpoint): (Value, Value)| -> mlua::Result<NoResult> {
                let checkpoint = checkpoint_of(&checkpoint);
                let host = shared(lua);
                let mut host = host.borrow_mut();
                let result = match message {
                    Value::Table(t) => {
                        message_of(&t, &host).and_then(|m| host.inject_from_plugin(m, checkpoint))
                    }
                    Value::String(s) => {
                        let bytes = s.as_bytes();
                        MessageView::parse(&bytes)
                            .map_err(|e| e.to_string())
                            .and_then(|view| host.inject(&Message::from(&view), checkpoint))
                    }
                    Value::Nil => match (checkpoint, host.appender.as_ref()) {
                        (Some(cp), Some(appender)) => {
                            appender.checkpoint(cp).map_err(|e| e.to_string())
                        }
                        _ => Ok(()),
                    },
                    other => Err(format!(
                        "takes a table, a string or nil, not a {}",
                        super::lua_type(&other)
                    )),
                };
                Ok(result.err().map(|e| api_error(lua, "inject_message", e)))
            },
        )?,
    )?;
    g.raw_set(
        "is_running",
        lua.create_function(|lua, ()| Ok(shared(lua).borrow().running.load(Ordering::Relaxed)))?,
    )?;
    Ok(())
}

fn install_analysis(lua: &Lua, no_result: &Table) -> mlua::Result<()> {
    no_result.raw_set(
        "inject_message",
        lua.create_function(|lua, message: Value| -> mlua::Result<NoResult> {
            let Value::Table(t) = message else {
                return Ok(Some(api_error(lua, "inject_message", "takes a table")));
            };
            let host = shared(lua);
            let mut host = host.borrow_mut();
            if host.inject_budget == 0 {
                let error = host.inject_count_error();
                return Ok(Some(api_error(lua, "inject_message", error)));
            }
            let result = message_of(&t, &host).and_then(|m| host.inject_from_plugin(m, None));
            Ok(result.err().map(|e| api_error(lua, "inject_message", e)))
        })?,
    )?;
    no_result.raw_set(
        "add_to_payload",
        lua.create_function(|lua, values: MultiValue| -> mlua::Result<NoResult> {
            let host = shared(lua);
            let mut host = host.borrow_mut();
            if let Err(e) = append_values(&mut host.payload, &values) {
                return Ok(Some(api_error(lua, "add_to_payload", e)));
            }
            if host.payload.len() > host.config.output_limit {
                host.payload.clear();
                return Ok(Some("output_limit exceeded".into()));
            }
            Ok(None)
        })?,
    )?;
    no_result.raw_set(
        "inject_payload",
        lua.create_function(
            |lua,
             (payload_type, payload_name, rest): (Option<String>, Option<String>, MultiValue)|
             -> mlua::Result<NoResult> {
                let host = shared(lua);
                let mut host = host.borrow_mut();
                if host.inject_budget == 0 {
                    let error = host.inject_count_error();
                    return Ok(Some(api_error(lua, "inject_payload", error)));
                }
                let mut payload = std::mem::take(&mut host.payload);
                if let Err(e) = append_values(&mut payload, &rest) {
                    return Ok(Some(api_error(lua, "inject_payload", e)));
                }
                let mut m = Message::new(crate::message::new_uuid(), crate::time::now_nanos());
                m.r#type = Some(b"inject_payload".to_vec());
                m.payload = Some(payload);
                let text = |s: Option<String>, default: &str| {
                    FieldValues::String(vec![s.unwrap_or_else(|| default.into()).into_bytes()])
                };
                m.fields = vec![
                    Field::new("payload_type", text(payload_type, "txt")),
                    Field::new("payload_name", text(payload_name, "")),
                ];
                if host.config.restricted_headers {
                    restrict_headers(&mut m, &host.defaults);
                }
                let result = host.inject(&m, None);
                Ok(result.err().map(|e| api_error(lua, "inject_payload", e)))
            },
        )?,
    )?;
    Ok(())
}

/// Analysis plugins' `restricted_headers`: identity headers are Blink's, not the plugin's.
fn restrict_headers(m: &mut Message, defaults: &Defaults) {
    m.uuid = crate::message::new_uuid();
    m.timestamp = crate::time::now_nanos();
    m.logger = Some(defaults.logger.clone());
    m.hostname = Some(defaults.hostname.clone());
    m.pid = Some(defaults.pid);
}

/// A compiled matcher a plugin holds (`create_message_matcher`), with the current message.
struct LuaMatcher(Matcher, SharedCurrent);

impl UserData for LuaMatcher {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("eval", |_, this, ()| {
            Ok(super::current::with(&this.1, |m| this.0.matches(m)).unwrap_or(false))
        });
    }
}

fn install_output(
    lua: &Lua,
    g: &Table,
    one_result: &Table,
    current: &SharedCurrent,
) -> mlua::Result<()> {
    let current = current.clone();
    one_result.raw_set(
        "encode_message",
        lua.create_function(|lua, (t, framed): (Table, Option<bool>)| {
            let host = shared(lua);
            let mut host = host.borrow_mut();
            let host = &mut *host;
            let fast = table_encoder::encode_table(lua, &t, &host.defaults, &mut host.scratch)
                .map(|_| host.scratch.message.clone());
            let encoded = fast.map_or_else(|| message_of(&t, host).map(|m| m.to_bytes()), Ok);
            let encoded = encoded.map(|bytes| {
                if framed.unwrap_or(false) {
                    let mut out = Vec::with_capacity(bytes.len() + 16);
                    stream::frame(&bytes, &mut out);
                    out
                } else {
                    bytes
                }
            });
            one(match encoded {
                Ok(bytes) => lua
                    .create_string(bytes)
                    .map(Value::String)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(api_error(lua, "encode_message", e)),
            })
        })?,
    )?;
    g.raw_set(
        "update_checkpoint",
        lua.create_function(|lua, (sequence, failures): (Option<f64>, Option<f64>)| {
            update_checkpoint(
                lua,
                sequence.unwrap_or(0.0) as u64,
                failures.unwrap_or(0.0) as u64,
            );
            Ok(())
        })?,
    )?;
    one_result.raw_set(
        "create_message_matcher",
        lua.create_function(move |lua, expression: String| {
            one(match Matcher::new(&expression) {
                Ok(m) => lua
                    .create_userdata(LuaMatcher(m, current.clone()))
                    .map(Value::UserData)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(api_error(lua, "create_message_matcher", e)),
            })
        })?,
    )?;
    Ok(())
}

/// `require(name)`: a standard library the plugin kind may use, or a module file from the
/// configured Lua directories. Names are `[A-Za-z0-9_.]`; dots separate directories.
fn require(lua: &Lua, name: &str) -> Result<Value, String> {
    let fail = |detail: String| api_error(lua, "require", detail);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(fail(format!("invalid module name '{name}'")));
    }
    let lua_err = |e: mlua::Error| fail(crate::plugin::lua_error_text(&e));
    let loaded: Table = lua.named_registry_value("blink.loaded").map_err(lua_err)?;
    if let Some(v) = loaded.raw_get::<Option<Value>>(name).map_err(lua_err)? {
        return Ok(v);
    }
    if matches!(
        name,
        "string" | "table" | "math" | "os" | "io" | "coroutine"
    ) {
        let libs: Table = lua.named_registry_value("blink.libs").map_err(lua_err)?;
        return match libs.raw_get::<Option<Table>>(name).map_err(lua_err)? {
            Some(lib) => {
                lua.globals().raw_set(name, lib.clone()).map_err(lua_err)?;
                loaded.raw_set(name, lib.clone()).map_err(lua_err)?;
                Ok(Value::Table(lib))
            }
            None => Err(fail(format!(
                "module '{name}' is not available to this plugin type"
            ))),
        };
    }
    if let Some(module) = super::modules::load(lua, name).map_err(lua_err)? {
        // As lua_sandbox's modules do, the module is also a global of its name.
        lua.globals()
            .raw_set(name, module.clone())
            .map_err(lua_err)?;
        loaded.raw_set(name, module.clone()).map_err(lua_err)?;
        return Ok(module);
    }
    let relative = format!("{}.lua", name.replace('.', "/"));
    let paths = shared(lua).borrow().lua_paths.clone();
    for dir in &paths {
        let path = dir.join(&relative);
        let Ok(source) = std::fs::read(&path) else {
            continue;
        };
        let chunk = lua
            .load(source)
            .set_name(format!("@{relative}"))
            .set_mode(mlua::chunk::ChunkMode::Text);
        let value = match chunk.call::<Value>(name).map_err(lua_err)? {
            Value::Nil => Value::Boolean(true),
            v => v,
        };
        loaded.raw_set(name, value.clone()).map_err(lua_err)?;
        return Ok(value);
    }
    let searched: Vec<String> = paths
        .iter()
        .map(|d| d.join(&relative).display().to_string())
        .collect();
    Err(fail(format!(
        "module '{name}' not found; searched {}",
        searched.join(", ")
    )))
}
