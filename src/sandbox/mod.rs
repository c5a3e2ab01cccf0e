//! Lua sandboxes: one Lua 5.1 state per plugin with Hindsight's libraries, limits and API.
//!
//! A [`Sandbox`] is created on its plugin's thread and never leaves it (mlua without `send`).
//! What a plugin can reach is decided here: the base library without `dofile`, `loadfile`,
//! `newproxy` and binary chunks (`load`/`loadstring` compile text only); `string`, `table` and
//! `math` preloaded; `os` (time, date, clock, difftime only), `io` and `coroutine` (input and
//! output plugins only) through `require`, which otherwise finds modules only in the configured
//! Lua directories. Limits are per plugin: memory (the allocator refuses past `memory_limit`),
//! instructions per call (a count hook; once exceeded every further instruction fails, so a
//! `pcall` cannot swallow it), and output (`add_to_payload` and injected message size). A plugin
//! that breaks a limit or raises an error is terminated with Hindsight's message, e.g.
//! `process_message() instruction_limit exceeded`.

mod api;
mod config_values;
mod current;
pub mod heka;
mod host;
mod inject;
mod limits;
mod lua_patterns;
mod lua_values;
mod modules;
mod preserve;
mod replayed;
mod table_encoder;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use limits::{INSTRUCTION_LIMIT, MemoryCeiling, TICKS, refuse_every_instruction};
use mlua::chunk::ChunkMode;
use mlua::{
    Function, HookTriggers, IntoLuaMulti, Lua, LuaOptions, MultiValue, StdLib, Table, Value,
};

use crate::log::Appender;
use crate::message::{MessageIndex, MessageView};
use crate::plugin::{PluginConfig, PluginKind};
use crate::stop::StopToken;

pub use config_values::Deployment;
pub use host::{Host, SandboxSettings};
pub use lua_values::{format_number, lua_type};
pub use replayed::ReplayedInjects;

/// Why a plugin's globals could not be saved (`preserve_data`).
#[derive(Debug, thiserror::Error)]
pub enum PreserveError {
    /// Reading its globals failed (the Lua error).
    #[error("{0}")]
    Save(String),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a plugin stopped: Hindsight's termination message (at most 255 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Terminated(pub String);

impl Terminated {
    fn new(function: &str, detail: &str) -> Self {
        let mut message = format!("{function}() {detail}");
        if message.len() > 255 {
            let mut cut = 255;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Terminated(message)
    }
}

/// One plugin's Lua state.
pub struct Sandbox {
    lua: Lua,
    kind: PluginKind,
    instruction_limit: u32,
    exceeded: Arc<AtomicBool>,
    /// Whether the count hook is installed; later calls only reset `ticks`.
    hooked: std::cell::Cell<bool>,
    /// Hook firings during the running call (see [`Sandbox::arm`]).
    ticks: Arc<std::sync::atomic::AtomicU32>,
    /// Registry reference of the plugin's `process_message`, for the raw call.
    process_ref: std::ffi::c_int,
    timer_event: Option<Function>,
    /// The message `read_message` sees. Declared after `lua`, so the Lua state (whose
    /// `read_message` closure points here) is dropped first.
    current: current::SharedCurrent,
    /// The API's state; after `lua` for the same reason (`inject_message` points here).
    host: host::SharedHost,
}

/// `io.write` and a file's `write` take zero-copy references (`read_message(…, true)`) as
/// lua_sandbox's do: each is written as its field of the current message (nothing if absent).
/// Arguments are only copied when one is a reference.
const IO_ZERO_COPY: &str = r##"
local io, getmetatable = ...
local select, tostring, unpack = select, tostring, unpack
local MARK = "read_message zero copy"
local function plain(...)
    local n = select("#", ...)
    for i = 1, n do
        if getmetatable((select(i, ...))) == MARK then
            local args = {...}
            for j = i, n do
                if getmetatable(args[j]) == MARK then args[j] = tostring(args[j]) or "" end
            end
            return unpack(args, 1, n)
        end
    end
    return ...
end
local methods = getmetatable(io.stdout).__index
local write = methods.write
methods.write = function(f, ...) return write(f, plain(...)) end
local io_write = io.write
io.write = function(...) return io_write(plain(...)) end
"##;

impl Sandbox {
    /// Creates the state, installs the API for the plugin's kind, and runs the plugin's file.
    pub fn new(
        config: Arc<PluginConfig>,
        settings: &SandboxSettings,
        appender: Option<Appender>,
        stop: StopToken,
    ) -> Result<Self, Terminated> {
        let kind = config.kind;
        let fail = |e: mlua::Error| Terminated::new("lsb_init", &crate::plugin::lua_error_text(&e));
        let mut libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::OS;
        if kind != PluginKind::Analysis {
            libs |= StdLib::IO; // coroutine is part of Lua 5.1's base library
        }
        let lua = Lua::new_with(libs, LuaOptions::default()).map_err(fail)?;
        let sandbox = Sandbox {
            lua,
            kind,
            instruction_limit: config.instruction_limit,
            exceeded: Arc::new(AtomicBool::new(false)),
            hooked: std::cell::Cell::new(false),
            ticks: Arc::new(std::sync::atomic::AtomicU32::new(0)),
            process_ref: 0,
            timer_event: None,
            current: current::new(),
            host: std::rc::Rc::new(std::cell::RefCell::new(Host::new(
                config.clone(),
                settings,
                appender,
                stop,
            ))),
        };
        sandbox.restrict().map_err(fail)?;
        let string: Table = sandbox.lua.globals().raw_get("string").map_err(fail)?;
        let budget = lua_patterns::StepBudget {
            ticks: sandbox.ticks.clone(),
            exceeded: sandbox.exceeded.clone(),
            step: match sandbox.instruction_limit {
                0 => 0,
                limit => (limit / TICKS).max(1) as u64,
            },
            ticks_per_call: TICKS,
        };
        sandbox.host.borrow_mut().steps = Some(std::rc::Rc::new(budget.clone()));
        lua_patterns::install(&sandbox.lua, &string, budget).map_err(fail)?;
        api::install(&sandbox.lua, kind, &sandbox.host, &sandbox.current).map_err(fail)?;
        if config.memory_limit > 0 {
            // The state itself (libraries, API) is already allocated; the limit bounds the plugin.
            let base = sandbox.lua.used_memory();
            let ceiling = base + config.memory_limit;
            sandbox.lua.set_memory_limit(ceiling).map_err(fail)?;
            sandbox.lua.set_app_data(MemoryCeiling(ceiling));
        }
        let path = settings.plugin_dir.join(&config.filename);
        let source = std::fs::read(&path).map_err(|e| {
            Terminated::new("lsb_init", &format!("cannot read {}: {e}", path.display()))
        })?;
        sandbox.arm();
        let loaded = sandbox
            .lua
            .load(source)
            .set_name(format!("@{}", config.filename))
            .set_mode(ChunkMode::Text)
            .exec();
        if let Err(e) = loaded {
            return Err(sandbox.terminated("lsb_init", &e));
        }
        sandbox.within_limit("lsb_init")?;
        let mut sandbox = sandbox;
        let globals = sandbox.lua.globals();
        let process_message = globals
            .raw_get::<Option<Function>>("process_message")
            .ok()
            .flatten();
        sandbox.timer_event = globals
            .raw_get::<Option<Function>>("timer_event")
            .ok()
            .flatten();
        let Some(process_message) = process_message else {
            return Err(Terminated::new(
                "lsb_init",
                "process_message() function was not found",
            ));
        };
        // SAFETY: pops the function mlua pushed and leaves its registry reference on the stack.
        sandbox.process_ref = unsafe {
            sandbox
                .lua
                .exec_raw::<std::ffi::c_int>(process_message, |state| {
                    let reference = mlua::ffi::luaL_ref(state, mlua::ffi::LUA_REGISTRYINDEX);
                    mlua::ffi::lua_pushinteger(state, reference as mlua::ffi::lua_Integer);
                })
        }
        .map_err(|e| Terminated::new("lsb_init", &crate::plugin::lua_error_text(&e)))?;
        if kind != PluginKind::Input && config.ticker_interval > 0 && sandbox.timer_event.is_none()
        {
            return Err(Terminated::new(
                "lsb_init",
                "timer_event() function was not found",
            ));
        }
        Ok(sandbox)
    }

    /// Removes what a plugin must not reach and stashes the libraries `require` hands out.
    fn restrict(&self) -> mlua::Result<()> {
        let lua = &self.lua;
        let globals = lua.globals();
        let libs = lua.create_table()?;
        for name in ["string", "table", "math", "os", "io", "coroutine"] {
            let lib: Value = globals.raw_get(name)?;
            if let Value::Table(t) = &lib {
                libs.raw_set(name, t.clone())?;
            }
        }
        // os: only the clock and calendar functions.
        // os: for analysis plugins only the clock and calendar functions; input and output
        // plugins, which talk to the world, get what Hindsight gives them too (getenv, execute,
        // remove, rename, tmpname), never exit or setlocale (which would act on all of Blink).
        if let Some(os) = libs.raw_get::<Option<Table>>("os")? {
            let safe = lua.create_table()?;
            let io_only: &[&str] = match self.kind {
                PluginKind::Analysis => &[],
                PluginKind::Input | PluginKind::Output => {
                    &["getenv", "execute", "remove", "rename", "tmpname"]
                }
            };
            for f in ["time", "date", "clock", "difftime"].iter().chain(io_only) {
                safe.raw_set(*f, os.raw_get::<Value>(*f)?)?;
            }
            libs.raw_set("os", safe)?;
        }
        if let Some(string) = libs.raw_get::<Option<Table>>("string")? {
            string.raw_set("dump", Value::Nil)?;
            // string.rep("", 2^31) spins in C for seconds, out of the instruction hook's sight;
            // any other string is bounded by the memory limit.
            let rep: Function = lua
                .load(
                    "local rep, type = ... return function(s, n, ...) \
                     if s == '' and type(n) == 'number' then return '' end \
                     return rep(s, n, ...) end",
                )
                .set_name("=[string]")
                .call((
                    string.raw_get::<Function>("rep")?,
                    globals.raw_get::<Function>("type")?,
                ))?;
            string.raw_set("rep", rep)?;
        }
        if let Some(io) = libs.raw_get::<Option<Table>>("io")? {
            lua.load(IO_ZERO_COPY)
                .set_name("=[io]")
                .call::<()>((io, globals.raw_get::<Function>("getmetatable")?))?;
        }
        for name in [
            "os",
            "io",
            "coroutine",
            "dofile",
            "loadfile",
            "load",
            "loadstring",
            "newproxy",
        ] {
            globals.raw_set(name, Value::Nil)?;
        }
        if self.kind == PluginKind::Analysis {
            libs.raw_set("coroutine", Value::Nil)?;
            libs.raw_set("io", Value::Nil)?;
        }
        if self.kind == PluginKind::Analysis {
            globals.raw_set("collectgarbage", Value::Nil)?;
        }
        lua.set_named_registry_value("blink.libs", libs)?;
        lua.set_named_registry_value("blink.loaded", lua.create_table()?)?;
        // Text-only replacements for load and loadstring.
        let loadstring =
            lua.create_function(|lua, (source, name): (mlua::LuaString, Option<String>)| {
                let chunk = lua
                    .load(source.as_bytes().to_vec())
                    .set_name(name.unwrap_or_else(|| "=(loadstring)".into()))
                    .set_mode(ChunkMode::Text)
                    .set_environment(lua.globals());
                match chunk.into_function() {
                    Ok(f) => Ok((Value::Function(f), Value::Nil)),
                    Err(e) => Ok((
                        Value::Nil,
                        Value::String(lua.create_string(crate::plugin::lua_error_text(&e))?),
                    )),
                }
            })?;
        globals.raw_set("loadstring", loadstring.clone())?;
        let load = lua.create_function(move |lua, (reader, name): (Value, Option<String>)| {
            let source = match reader {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Function(f) => {
                    // The pieces are gathered outside Lua's allocator, so they are counted
                    // against the plugin's memory limit here: a reader that never ends is
                    // refused as any other allocation past the limit is.
                    let mut out = Vec::new();
                    loop {
                        match f.call::<Value>(())? {
                            Value::String(s) if !s.as_bytes().is_empty() => {
                                let piece = s.as_bytes();
                                if MemoryCeiling::exceeded_by(lua, out.len() + piece.len()) {
                                    return Err(mlua::Error::MemoryError(
                                        "not enough memory".into(),
                                    ));
                                }
                                out.extend_from_slice(&piece)
                            }
                            _ => break,
                        }
                    }
                    out
                }
                _ => {
                    return Err(mlua::Error::runtime(
                        "bad argument #1 to 'load' (function expected)",
                    ));
                }
            };
            loadstring.call::<MultiValue>((lua.create_string(source)?, name))
        })?;
        globals.raw_set("load", load)?;
        Ok(())
    }

    /// Starts a fresh instruction budget for the next call.
    ///
    /// The count hook is installed once and fires every 1/16 of the limit; each firing adds one
    /// tick to the running call, and the 16th tick of one call ends it. Resetting the ticks is a
    /// store, where resetting Lua's own counter would cost a round trip through mlua on every
    /// call. The price: a call may be stopped up to 1/16 of the limit early.
    fn arm(&self) {
        if self.instruction_limit == 0 {
            return;
        }
        self.ticks.store(0, Ordering::Relaxed);
        if self.hooked.get() {
            return;
        }
        self.hooked.set(true);
        let exceeded = self.exceeded.clone();
        let ticks = self.ticks.clone();
        let step = (self.instruction_limit / TICKS).max(1);
        // A global hook, not a per-thread one: Lua 5.1 gives a new coroutine its creator's
        // hook, and only the global callback is found from any thread (mlua's per-thread hook
        // removes itself in a coroutine, which then ran unbounded). The ticks are shared, so
        // a coroutine's instructions count against the call that resumes it.
        let _ = self.lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(step),
            move |lua, _| {
                if ticks.fetch_add(1, Ordering::Relaxed) + 1 < TICKS {
                    return Ok(mlua::VmState::Continue);
                }
                exceeded.store(true, Ordering::Relaxed);
                Err(refuse_every_instruction(lua))
            },
        );
    }

    /// A call that returned normally still broke the limit if the error was raised in a
    /// coroutine it resumed (`coroutine.resume` returns it as a value): terminated all the same.
    fn within_limit(&self, function: &str) -> Result<(), Terminated> {
        if self.exceeded.load(Ordering::Relaxed) {
            return Err(Terminated::new(function, INSTRUCTION_LIMIT));
        }
        Ok(())
    }

    fn terminated(&self, function: &str, e: &mlua::Error) -> Terminated {
        if self.exceeded.load(Ordering::Relaxed) {
            return Terminated::new(function, INSTRUCTION_LIMIT);
        }
        if contains_memory_error(e) {
            return Terminated::new(function, "not enough memory");
        }
        Terminated::new(function, &crate::plugin::lua_error_text(e))
    }

    /// The host state the API functions work on.
    pub fn host(&self) -> std::cell::RefMut<'_, Host> {
        self.host.borrow_mut()
    }

    /// Makes `message` (protobuf bytes, already validated) the one `read_message` sees.
    pub fn set_current(&self, message: Option<Bytes>) {
        let message = message.and_then(|bytes| {
            let index = MessageView::parse(&bytes).ok()?.index();
            Some((bytes, index))
        });
        current::set(&self.current, message);
    }

    /// Makes a message the current one, with the index of the view its reader already parsed
    /// (no re-scan). The bytes are moved in, not cloned: a clone and its drop are two atomic
    /// operations per message, a measurable share of an analysis thread's time.
    pub fn set_current_view(&self, bytes: Bytes, index: MessageIndex) {
        current::set(&self.current, Some((bytes, index)));
    }

    /// Takes the current message's bytes back (`read_message` then sees none).
    pub fn take_current(&self) -> Option<Bytes> {
        current::take(&self.current)
    }

    /// Calls `process_message(arg)`; returns its status code and optional error text.
    pub fn process_message(
        &self,
        arg: impl IntoLuaMulti,
    ) -> Result<(i64, Option<String>), Terminated> {
        self.host().begin_call(host::Phase::ProcessMessage);
        self.arm();
        let (first, second) = self.call_process_message(arg)?;
        self.within_limit("process_message")?;
        let Some(status) = first else {
            return Err(Terminated::new(
                "process_message",
                "must return a numeric status code",
            ));
        };
        let status = status as i64;
        let message = second;
        if status > 0 {
            let detail = message.as_deref().unwrap_or("returned a fatal status");
            return Err(Terminated::new("process_message", detail));
        }
        Ok((status, message))
    }

    /// Calls the plugin's `process_message` with a raw `lua_pcall` (it runs for every message;
    /// mlua's general call path costs several times more) and returns its first result if it is
    /// a number and its second if it is a string.
    fn call_process_message(
        &self,
        arg: impl IntoLuaMulti,
    ) -> Result<(Option<f64>, Option<String>), Terminated> {
        enum Failure {
            Memory,
            Message(String),
        }
        let function = self.process_ref;
        let outcome = self.lua.exec_raw_lua(|raw| {
            // SAFETY: the stack is restored to `top` on every path; the call is protected by
            // lua_pcall, so no Lua error unwinds through these Rust frames.
            unsafe {
                let state = raw.state();
                let top = mlua::ffi::lua_gettop(state);
                if mlua::ffi::lua_checkstack(state, 8) == 0 {
                    return Err(Failure::Message("Lua stack overflow".into()));
                }
                mlua::ffi::lua_rawgeti(
                    state,
                    mlua::ffi::LUA_REGISTRYINDEX,
                    function as mlua::ffi::lua_Integer,
                );
                let nargs = match arg.push_into_stack_multi(raw) {
                    Ok(n) => n,
                    Err(e) => {
                        mlua::ffi::lua_settop(state, top);
                        return Err(Failure::Message(crate::plugin::lua_error_text(&e)));
                    }
                };
                let status = mlua::ffi::lua_pcall(state, nargs, 2, 0);
                let string_at = |idx| {
                    let mut len = 0usize;
                    let ptr = mlua::ffi::lua_tolstring(state, idx, &mut len);
                    String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
                        .into_owned()
                };
                let outcome = if status == 0 {
                    let first = (mlua::ffi::lua_type(state, -2) == mlua::ffi::LUA_TNUMBER)
                        .then(|| mlua::ffi::lua_tonumber(state, -2));
                    let second = (mlua::ffi::lua_type(state, -1) == mlua::ffi::LUA_TSTRING)
                        .then(|| string_at(-1));
                    Ok((first, second))
                } else if status == mlua::ffi::LUA_ERRMEM {
                    Err(Failure::Memory)
                } else if mlua::ffi::lua_type(state, -1) == mlua::ffi::LUA_TSTRING {
                    Err(Failure::Message(string_at(-1)))
                } else {
                    // An error raised from Rust (mlua wraps it in a userdata): let it describe itself.
                    let value = raw.pop_value();
                    Err(Failure::Message(
                        value.to_string().unwrap_or_else(|_| "unknown error".into()),
                    ))
                };
                mlua::ffi::lua_settop(state, top);
                outcome
            }
        });
        outcome.map_err(|failure| {
            if self.exceeded.load(Ordering::Relaxed) {
                return Terminated::new("process_message", INSTRUCTION_LIMIT);
            }
            match failure {
                Failure::Memory => Terminated::new("process_message", "not enough memory"),
                Failure::Message(m) if m.contains("not enough memory") => {
                    Terminated::new("process_message", "not enough memory")
                }
                Failure::Message(m) => {
                    let m = m
                        .split("\nstack traceback:")
                        .next()
                        .unwrap_or(&m)
                        .trim_end()
                        .to_owned();
                    Terminated::new("process_message", &m)
                }
            }
        })
    }

    /// Calls `timer_event(ns, shutdown)` if the plugin defines it, then collects garbage.
    pub fn timer_event(&self, ns: i64, shutdown: bool) -> Result<(), Terminated> {
        let Some(f) = &self.timer_event else {
            return Ok(());
        };
        self.host().begin_call(host::Phase::TimerEvent);
        self.set_current(None);
        self.arm();
        f.call::<()>((ns as f64, shutdown))
            .map_err(|e| self.terminated("timer_event", &e))?;
        self.within_limit("timer_event")?;
        let _ = self.lua.gc_collect();
        Ok(())
    }

    /// Saves the plugin's globals to `path` (`preserve_data`: at a clean shutdown, and with every
    /// checkpoint of a `checkpoint_data` plugin), after `header` (Lua comment lines). The file
    /// is replaced whole, so a crash while it is written leaves the previous one.
    pub fn preserve(&self, path: &std::path::Path, header: &str) -> Result<(), PreserveError> {
        let (source, cut) = preserve::save(&self.lua)
            .map_err(|e| PreserveError::Save(crate::plugin::lua_error_text(&e)))?;
        if !cut.is_empty() {
            tracing::warn!(cycles = ?cut, "preserve_data: cyclic tables were cut");
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| PreserveError::Write {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut bytes = Vec::with_capacity(header.len() + source.len());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(source.as_bytes());
        crate::atomic_file::write(path, &bytes).map_err(|e| PreserveError::Write {
            path: e.path,
            source: e.source,
        })
    }

    /// Drops injects equal to messages already in the stream while the plugin replays what it
    /// processed before a crash (`None`: inject everything).
    pub fn set_replayed(&self, replayed: Option<ReplayedInjects>) {
        self.host().replayed = replayed;
    }

    /// Takes the replay's list away (to hand it to a replacing instance).
    pub fn take_replayed(&self) -> Option<ReplayedInjects> {
        self.host().replayed.take()
    }

    /// The injects still expected from a replay, and how many were dropped so far.
    pub fn replay_progress(&self) -> Option<(usize, u64)> {
        let host = self.host();
        host.replayed.as_ref().map(|r| (r.len(), r.skipped()))
    }

    /// Restores globals saved by [`Sandbox::preserve`], after the plugin's code has run.
    pub fn restore(&self, path: &std::path::Path) -> Result<bool, Terminated> {
        let Ok(source) = std::fs::read(path) else {
            return Ok(false);
        };
        self.arm();
        // Module objects in the file are rebuilt through this, present only while it loads.
        let host = host::shared(&self.lua);
        let rebuild = self
            .lua
            .create_function(move |lua, (module, state): (String, mlua::LuaString)| {
                let env = host.borrow().module_env(&host);
                modules::restore_object(lua, &env, &module, &state.to_str()?)
            })
            .map_err(|e| self.terminated("lsb_init", &e))?;
        let globals = self.lua.globals();
        let loaded = globals.raw_set(preserve::RESTORE, rebuild).and_then(|()| {
            self.lua
                .load(source)
                .set_name(format!("@{}", path.display()))
                .set_mode(ChunkMode::Text)
                .exec()
        });
        let _ = globals.raw_remove(preserve::RESTORE);
        loaded.map_err(|e| self.terminated("lsb_init", &e))?;
        Ok(true)
    }

    /// Memory the plugin's state uses now, in bytes.
    pub fn memory(&self) -> usize {
        self.lua.used_memory()
    }
}

fn contains_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => contains_memory_error(cause),
        mlua::Error::RuntimeError(m) => m.contains("not enough memory"),
        _ => false,
    }
}

/// Fuzzing: framed Heka streams through a stream reader (see `crate::fuzz`).
#[doc(hidden)]
pub fn fuzz_stream_frames(data: &[u8]) {
    api::fuzz_stream_frames(data);
}

/// Fuzzing: JSON documents and schema checks of the `rjson` module (see `crate::fuzz`).
#[doc(hidden)]
pub fn fuzz_json_document(data: &[u8]) {
    modules::fuzz_json(data);
}

/// Fuzzing: SQL injection and XSS detection of the `libinjection` module (see `crate::fuzz`).
#[doc(hidden)]
pub fn fuzz_injection(data: &[u8]) {
    modules::fuzz_injection(data);
}
