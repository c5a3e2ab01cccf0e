//! Host modules: Lua modules written in Rust, loaded by `require` like lua_sandbox's.
//!
//! [`MODULES`] is the one list of them: a name, the plugin kinds that may load it, and the
//! function that opens it. A module is a leaf: it gets a [`ModuleEnv`] (the plugin's kind and
//! name, the log, its counters, its inject size limit and a checkpoint-confirm callback) and
//! imports nothing of the sandbox. Adding one is a new file here and a row in [`MODULES`].
//!
//! - `bit`: LuaBitOp's bitwise operations on 32-bit integers (every plugin type).
//! - `bloom_filter`: approximate set membership (every plugin type).
//! - `circular_buffer`: sliding-window time series with the `cbuf`/`cbufd` text output
//!   (every plugin type).
//! - `cjson`: JSON `decode`/`encode`, lua-cjson's call shape (every plugin type).
//! - `cuckoo_filter`, `cuckoo_filter_expire`: approximate set membership with deletion, the
//!   second with entries expiring by message time (every plugin type).
//! - `gzfile`: line-by-line reading of files that may be gzip-compressed, following a growing
//!   file too (input and output).
//! - `http`: HTTP(S) requests with timeouts, and HMAC-SHA256 signatures (input and output).
//! - `hyperloglog`: distinct counts as Redis keeps them (every plugin type).
//! - `lfs`: LuaFileSystem's `attributes`, `dir`, `currentdir` (every plugin type), `mkdir`,
//!   `rmdir`, `touch` (input and output).
//! - `libinjection`: SQL-injection and XSS detection (every plugin type).
//! - `lookup`: enrichment tables from CSV and JSON files, by exact key or IP network, following
//!   their files (every plugin type).
//! - `lpeg`: LPeg 1.0's patterns, grammars and captures, paid from the instruction limit
//!   (every plugin type).
//! - `maxminddb`: GeoIP lookups in MaxMind DB files (analysis plugins: files inside the
//!   deployment only).
//! - `re`: LPeg's regex-like syntax over `lpeg` (every plugin type).
//! - `rjson`: JSON documents walked by handles, with JSON Schema validation (every plugin
//!   type).
//! - `sax`: symbolic approximation of time series, words and sliding windows compared by
//!   `mindist` (every plugin type).
//! - `socket`: LuaSocket's TCP and UDP calls that heka's inputs and outputs make (input and
//!   output).
//! - `streaming_algorithms.cm_sketch`, `.p2`, `.time_series`: a count-min sketch, P² quantiles,
//!   a sliding window of counts (every plugin type).
//! - `zlib`: lua-zlib's inflate and deflate streams and checksums (input and output).
//! - `kafka`: consumers over Blink's own topics for input plugins (their position is the
//!   plugin's checkpoint), producers into them for output plugins.

mod bit;
mod bloom_filter;
mod circular_buffer;
mod cjson;
mod cm_sketch;
mod cuckoo_filter;
mod cuckoo_filter_expire;
mod gzfile;
mod http;
mod hyperloglog;
mod kafka;
mod lfs;
mod libinjection;
mod lookup;
mod lpeg;
mod lua_args;
mod maxminddb;
mod p2;
pub(crate) mod plain_error;
mod preserved;
mod re;
mod rjson;
mod sax;
mod socket;
mod time_series;
mod zlib;

use std::rc::Rc;
use std::sync::Arc;

use mlua::{Lua, Table};

use crate::log::Log;
use crate::plugin::{PluginKind, PluginStats};

/// Confirms an output plugin's delivery of every message up to a sequence id (0: all pending),
/// with a count of failures: what `update_checkpoint(sequence_id, failures)` does, for modules
/// that deliver asynchronously.
pub type Confirm = Rc<dyn Fn(u64, u64)>;

/// Work a host module does outside Lua's VM (a matching loop), paid from the plugin's
/// instruction limit like the plugin's own instructions.
pub trait StepAccount {
    /// Steps the running call may still take (`u64::MAX` without a limit).
    fn left(&self) -> u64;
    /// Records `used` steps taken.
    fn spend(&self, used: u64);
    /// The error that ends the plugin's call once its budget is spent.
    fn exhausted(&self, lua: &Lua) -> mlua::Error;
}

/// No limit: for sandboxes without an instruction budget.
pub struct Unlimited;

impl StepAccount for Unlimited {
    fn left(&self) -> u64 {
        u64::MAX
    }
    fn spend(&self, _used: u64) {}
    fn exhausted(&self, _lua: &Lua) -> mlua::Error {
        mlua::Error::runtime("instruction_limit exceeded")
    }
}

/// What a host module may know of the plugin that requires it.
pub struct ModuleEnv {
    pub kind: PluginKind,
    /// The plugin's name, e.g. `input.kafka`.
    pub plugin: String,
    /// Blink's log (`None` in sandboxes with no log, such as a trial load's).
    pub log: Option<Arc<Log>>,
    /// The plugin's counters (`plugins.tsv`).
    pub stats: Arc<PluginStats>,
    /// The most bytes one message the plugin injects may have.
    pub max_message_bytes: usize,
    pub confirm: Confirm,
    /// The plugin's instruction budget, for modules that loop in Rust.
    pub steps: Rc<dyn StepAccount>,
    /// The plugin's `memory_limit` in bytes (0: none): what a module that allocates outside
    /// Lua (a decompressed stream) may hold at most.
    pub memory_limit: usize,
    /// What the plugin's module objects hold outside Lua's allocator, all together.
    pub external: Rc<ExternalMemory>,
}

/// The bytes a plugin's host-module objects (filters, buffers, documents) hold outside Lua's
/// allocator, which Lua's memory limit does not see: together they may hold no more than the
/// plugin's `memory_limit` (1 GiB without one), so a plugin cannot get round its limit by
/// making many objects that are each within it.
pub struct ExternalMemory {
    limit: usize,
    used: std::cell::Cell<usize>,
}

/// Bytes held by one object, given back when it is dropped.
pub struct Reservation {
    memory: Rc<ExternalMemory>,
    bytes: usize,
}

impl Reservation {
    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let used = &self.memory.used;
        used.set(used.get().saturating_sub(self.bytes));
    }
}

impl ExternalMemory {
    pub fn new(memory_limit: usize) -> Rc<Self> {
        Rc::new(ExternalMemory {
            limit: if memory_limit == 0 {
                1 << 30
            } else {
                memory_limit
            },
            used: std::cell::Cell::new(0),
        })
    }

    /// Holds `bytes` for `what`, or refuses with an error naming the limit.
    pub fn reserve(self: &Rc<Self>, bytes: usize, what: &str) -> mlua::Result<Reservation> {
        let used = self.used.get();
        if bytes > self.limit.saturating_sub(used) {
            return Err(mlua::Error::runtime(format!(
                "{what} of {bytes} bytes would take the plugin's module objects past its \
                 memory limit ({} bytes, {used} in use)",
                self.limit
            )));
        }
        self.used.set(used + bytes);
        Ok(Reservation {
            memory: self.clone(),
            bytes,
        })
    }

    /// Bytes that may still be held.
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used.get())
    }
}

#[cfg(test)]
impl ModuleEnv {
    /// An environment for a module's own tests: no log, no limits.
    pub fn for_tests(kind: PluginKind) -> ModuleEnv {
        ModuleEnv {
            kind,
            plugin: format!("{kind}.test"),
            log: None,
            stats: Arc::new(PluginStats::default()),
            max_message_bytes: 65536,
            confirm: Rc::new(|_, _| {}),
            steps: Rc::new(Unlimited),
            memory_limit: 0,
            external: ExternalMemory::new(0),
        }
    }
}

/// A Lua state with a module opened as a plugin of `kind` opens it, as global `name`: how the
/// modules' own tests start.
#[cfg(test)]
pub fn lua_with(
    open: fn(&Lua, &ModuleEnv) -> mlua::Result<Option<Table>>,
    kind: PluginKind,
    name: &str,
) -> Lua {
    let lua = Lua::new();
    let module = open(&lua, &ModuleEnv::for_tests(kind))
        .unwrap()
        .expect("the module opens for this plugin kind");
    lua.globals().set(name, module).unwrap();
    lua
}

/// A host module: `open` returns its table, or `None` when it cannot work in this sandbox.
pub struct HostModule {
    pub name: &'static str,
    /// The plugin kinds that may `require` it.
    pub kinds: &'static [PluginKind],
    pub open: fn(&Lua, &ModuleEnv) -> mlua::Result<Option<Table>>,
}

use PluginKind::{Analysis, Input, Output};

/// Every host module.
pub static MODULES: &[HostModule] = &[
    HostModule {
        name: "bit",
        kinds: &[Input, Analysis, Output],
        open: bit::open,
    },
    HostModule {
        name: "bloom_filter",
        kinds: &[Input, Analysis, Output],
        open: bloom_filter::open,
    },
    HostModule {
        name: "circular_buffer",
        kinds: &[Input, Analysis, Output],
        open: circular_buffer::open,
    },
    HostModule {
        name: "cjson",
        kinds: &[Input, Analysis, Output],
        open: cjson::open,
    },
    HostModule {
        name: "cuckoo_filter",
        kinds: &[Input, Analysis, Output],
        open: cuckoo_filter::open,
    },
    HostModule {
        name: "cuckoo_filter_expire",
        kinds: &[Input, Analysis, Output],
        open: cuckoo_filter_expire::open,
    },
    HostModule {
        name: "gzfile",
        kinds: &[Input, Output],
        open: gzfile::open,
    },
    HostModule {
        name: "http",
        kinds: &[Input, Output],
        open: http::open,
    },
    HostModule {
        name: "hyperloglog",
        kinds: &[Input, Analysis, Output],
        open: hyperloglog::open,
    },
    HostModule {
        name: "lfs",
        kinds: &[Input, Analysis, Output],
        open: lfs::open,
    },
    HostModule {
        name: "libinjection",
        kinds: &[Input, Analysis, Output],
        open: libinjection::open,
    },
    HostModule {
        name: "lookup",
        kinds: &[Input, Analysis, Output],
        open: lookup::open,
    },
    HostModule {
        name: "lpeg",
        kinds: &[Input, Analysis, Output],
        open: lpeg::open,
    },
    HostModule {
        name: "maxminddb",
        kinds: &[Input, Analysis, Output],
        open: maxminddb::open,
    },
    HostModule {
        name: "re",
        kinds: &[Input, Analysis, Output],
        open: re::open,
    },
    HostModule {
        name: "rjson",
        kinds: &[Input, Analysis, Output],
        open: rjson::open,
    },
    HostModule {
        name: "sax",
        kinds: &[Input, Analysis, Output],
        open: sax::open,
    },
    HostModule {
        name: "socket",
        kinds: &[Input, Output],
        open: socket::open,
    },
    HostModule {
        name: "streaming_algorithms.cm_sketch",
        kinds: &[Input, Analysis, Output],
        open: cm_sketch::open,
    },
    HostModule {
        name: "streaming_algorithms.p2",
        kinds: &[Input, Analysis, Output],
        open: p2::open,
    },
    HostModule {
        name: "streaming_algorithms.time_series",
        kinds: &[Input, Analysis, Output],
        open: time_series::open,
    },
    HostModule {
        name: "zlib",
        kinds: &[Input, Output],
        open: zlib::open,
    },
    HostModule {
        name: "kafka",
        kinds: &[Input, Output],
        open: kafka::open,
    },
];

/// Fuzzing: an rjson document and schema check over `data` (see `crate::fuzz`).
pub(crate) fn fuzz_json(data: &[u8]) {
    rjson::fuzz(data);
}

/// Fuzzing: SQL injection and XSS detection over `data` (see `crate::fuzz`).
pub(crate) fn fuzz_injection(data: &[u8]) {
    libinjection::fuzz(data);
}

/// `preserve_data`: the module and saved state of a module object, if it keeps one.
pub fn preserve_object(object: &mlua::AnyUserData) -> Option<(&'static str, String)> {
    preserved::save(object)
}

/// `preserve_data`: a module object rebuilt from what [`preserve_object`] saved.
pub fn restore_object(
    lua: &Lua,
    env: &ModuleEnv,
    module: &str,
    state: &str,
) -> mlua::Result<mlua::AnyUserData> {
    preserved::restore(lua, env, module, state)
}

/// The host module called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static HostModule> {
    MODULES.iter().find(|m| m.name == name)
}
