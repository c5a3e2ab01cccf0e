//! Plugin configuration files: Hindsight's Lua-syntax `.cfg`.
//!
//! A cfg is Lua source evaluated in an empty environment (no functions at all; arithmetic and
//! `..` work), under a small memory and instruction budget so a hostile cfg cannot hang or bloat
//! Blink. Every global it sets becomes a key; the keys Hindsight defines are validated and typed
//! here, and all keys (user keys included) stay readable by the plugin through `read_config`.
//! Errors name the file, the key and the reason; a Lua syntax error carries its line.

use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Value};

use super::{PluginDefaults, PluginKind};
use crate::matcher::Matcher;

/// Why a plugin cfg cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginConfigError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// An error Lua reported at a line of the cfg (syntax, or evaluating it).
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: u32,
        reason: String,
    },
    #[error("{path}: key `{key}`: {reason}")]
    Key {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// A value from a cfg file; tables keep their entries in the order Lua iterates them.
#[derive(Debug, Clone, PartialEq)]
pub enum CfgValue {
    Bool(bool),
    Number(f64),
    String(Vec<u8>),
    Table(Vec<(CfgValue, CfgValue)>),
}

/// Which queue(s) an output reads (Hindsight's `read_queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadQueue {
    Input,
    Analysis,
    Both,
}

/// Where a plugin with no checkpoint of its own starts reading (cfg `initial_position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest retained message.
    Start,
    /// The next message written.
    End,
}

/// A validated plugin cfg.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub kind: PluginKind,
    /// `<kind>.<file stem>`, e.g. `analysis.count`.
    pub name: String,
    /// The cfg file.
    pub path: PathBuf,
    /// The Lua file, as the cfg names it (resolved against the plugin directory).
    pub filename: String,
    pub message_matcher: Option<String>,
    /// Seconds between `timer_event` calls (input: between `process_message` calls); 0 = never.
    pub ticker_interval: u64,
    /// Analysis thread to run on (modulo the thread count); `None` spreads plugins out.
    pub thread: Option<usize>,
    pub preserve_data: bool,
    /// Analysis (Blink's): the plugin's globals are saved with its checkpoint, so a crash
    /// resumes it with the state it had where it resumes reading (implies `preserve_data`).
    pub checkpoint_data: bool,
    pub memory_limit: usize,
    /// Instructions per call; 0 = no limit.
    pub instruction_limit: u32,
    pub output_limit: usize,
    pub shutdown_on_terminate: bool,
    pub process_message_inject_limit: u32,
    pub timer_event_inject_limit: u32,
    pub read_queue: ReadQueue,
    /// Analysis: Blink sets Uuid, Timestamp, Logger, Hostname and Pid of injected messages.
    pub restricted_headers: bool,
    /// Analysis and output plugins with no checkpoint: where to start. `None`: the oldest
    /// message for plugins in `hs_run` when Blink starts, the end for plugins loaded while it
    /// runs.
    pub initial_position: Option<InitialPosition>,
    /// Every key of the file, for `read_config`.
    pub values: Vec<(String, CfgValue)>,
    /// Keys Blink does not know that look like a misspelt one it does ("did you mean …?"): an
    /// unknown key is the plugin's own, as in Hindsight, so it is not an error.
    pub warnings: Vec<String>,
}

/// Every key Blink (or Hindsight) gives a meaning to.
const KNOWN_KEYS: &[&str] = &[
    "filename",
    "message_matcher",
    "ticker_interval",
    "thread",
    "preserve_data",
    "checkpoint_data",
    "memory_limit",
    "instruction_limit",
    "output_limit",
    "shutdown_on_terminate",
    "remove_checkpoints_on_terminate",
    "process_message_inject_limit",
    "timer_event_inject_limit",
    "async_buffer_size",
    "read_queue",
    "restricted_headers",
    "initial_position",
];

/// The likely misspellings among `keys`: unknown keys within a small edit distance of a known
/// one (one edit for short keys, two from eight letters on).
fn misspelt_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut warnings = Vec::new();
    for key in keys {
        if KNOWN_KEYS.contains(&key) {
            continue;
        }
        let allowed = if key.len() >= 8 { 2 } else { 1 };
        let closest = KNOWN_KEYS
            .iter()
            .map(|known| (edit_distance(key, known), *known))
            .min();
        if let Some((distance, known)) = closest
            && distance <= allowed
        {
            warnings.push(format!(
                "unknown key `{key}`: did you mean `{known}`? (unknown keys are the plugin's own, read with read_config; Blink ignores them)"
            ));
        }
    }
    warnings
}

/// Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`; gives up
/// past 3 (only small distances matter), so a long hostile key costs little.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 3 || a.len() > 64 {
        return usize::MAX;
    }
    // Three rows of the optimal-string-alignment table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

const KNOWN_NUMBERS: &[&str] = &[
    "ticker_interval",
    "thread",
    "memory_limit",
    "instruction_limit",
    "output_limit",
    "process_message_inject_limit",
    "timer_event_inject_limit",
    "async_buffer_size",
];

impl PluginConfig {
    /// Reads and validates `path`, a cfg of a plugin of `kind`.
    pub fn load(kind: PluginKind, path: &Path) -> Result<Self, PluginConfigError> {
        Self::load_with(kind, path, &PluginDefaults::default())
    }

    /// [`PluginConfig::load`], with `defaults` for the keys the cfg does not set.
    pub fn load_with(
        kind: PluginKind,
        path: &Path,
        defaults: &PluginDefaults,
    ) -> Result<Self, PluginConfigError> {
        let text = std::fs::read(path).map_err(|e| PluginConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse_with(kind, path, &text, defaults)
    }

    /// The `filename` a cfg at `path` names, even if the cfg is otherwise invalid (a bad
    /// matcher, say); `None` if it cannot be read or names none.
    pub fn filename_in(path: &Path) -> Option<String> {
        let values = evaluate(&std::fs::read(path).ok()?).ok()?;
        values.into_iter().find_map(|(key, value)| match value {
            CfgValue::String(s) if key == "filename" => String::from_utf8(s).ok(),
            _ => None,
        })
    }

    /// Validates cfg source `text`; `path` names the plugin (`<kind>.<stem>`) and the errors.
    pub fn parse(kind: PluginKind, path: &Path, text: &[u8]) -> Result<Self, PluginConfigError> {
        Self::parse_with(kind, path, text, &PluginDefaults::default())
    }

    /// [`PluginConfig::parse`], with `defaults` (`[<kind>_defaults]`) for the keys the cfg
    /// does not set.
    pub fn parse_with(
        kind: PluginKind,
        path: &Path,
        text: &[u8],
        defaults: &PluginDefaults,
    ) -> Result<Self, PluginConfigError> {
        let file_error = |reason: String| PluginConfigError::File {
            path: path.to_owned(),
            reason,
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
            .ok_or_else(|| file_error("a plugin name (the file name before .cfg) may hold only letters, digits, '_' and '-'".into()))?;
        let mut values = evaluate(text).map_err(|reason| located(path, reason))?;
        for (key, value) in defaults.of(kind) {
            if !values.iter().any(|(k, _)| k == key) {
                values.push((key.clone(), value.clone()));
            }
        }
        let key_error = |key: &str, reason: String| PluginConfigError::Key {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let get = |key: &str| values.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let string = |key: &str| -> Result<Option<String>, PluginConfigError> {
            match get(key) {
                None => Ok(None),
                Some(CfgValue::String(s)) => String::from_utf8(s.clone())
                    .map(Some)
                    .map_err(|_| key_error(key, "must be UTF-8 text".into())),
                Some(_) => Err(key_error(key, "must be a string".into())),
            }
        };
        let number = |key: &str, default: u64| -> Result<u64, PluginConfigError> {
            match get(key) {
                None => Ok(default),
                Some(CfgValue::Number(n))
                    if *n >= 0.0 && n.fract() == 0.0 && *n <= u32::MAX as f64 * 1024.0 =>
                {
                    Ok(*n as u64)
                }
                Some(_) => Err(key_error(key, "must be a whole number ≥ 0".into())),
            }
        };
        let boolean = |key: &str| -> Result<bool, PluginConfigError> {
            match get(key) {
                None => Ok(false),
                Some(CfgValue::Bool(b)) => Ok(*b),
                Some(_) => Err(key_error(key, "must be true or false".into())),
            }
        };
        for key in KNOWN_NUMBERS {
            number(key, 0)?;
        }

        let filename = string("filename")?
            .ok_or_else(|| key_error("filename", "is required (the plugin's .lua file)".into()))?;
        if !filename.ends_with(".lua") || filename.contains('/') || filename.starts_with('.') {
            return Err(key_error(
                "filename",
                format!("{filename:?} must be a file name ending in .lua, with no directory"),
            ));
        }
        let message_matcher = string("message_matcher")?;
        match (&message_matcher, kind) {
            (None, PluginKind::Analysis | PluginKind::Output) => {
                return Err(key_error(
                    "message_matcher",
                    "is required for analysis and output plugins".into(),
                ));
            }
            (Some(m), _) => {
                Matcher::new(m).map_err(|e| {
                    key_error(
                        "message_matcher",
                        format!("column {}: {}", e.column, e.message),
                    )
                })?;
            }
            _ => {}
        }
        let limit = |key: &str, default: u64, max: u64| -> Result<u64, PluginConfigError> {
            let v = number(key, default)?;
            if v > max {
                return Err(key_error(key, format!("{v} is above the maximum of {max}")));
            }
            Ok(v)
        };
        let memory_limit = limit("memory_limit", 8 << 20, 4 << 30)? as usize;
        if memory_limit != 0 && memory_limit < 64 << 10 {
            return Err(key_error(
                "memory_limit",
                "must be 0 (no limit) or at least 65536 bytes".into(),
            ));
        }
        let read_queue = match string("read_queue")?.as_deref() {
            None | Some("both") => ReadQueue::Both,
            Some("input") => ReadQueue::Input,
            Some("analysis") => ReadQueue::Analysis,
            Some(other) => {
                return Err(key_error(
                    "read_queue",
                    format!("{other:?} is not \"input\", \"analysis\" or \"both\""),
                ));
            }
        };
        let initial_position = match string("initial_position")?.as_deref() {
            None => None,
            Some("start") => Some(InitialPosition::Start),
            Some("end") => Some(InitialPosition::End),
            Some(other) => {
                return Err(key_error(
                    "initial_position",
                    format!("{other:?} is not \"start\" or \"end\""),
                ));
            }
        };
        let checkpoint_data = boolean("checkpoint_data")?;
        if checkpoint_data && kind != PluginKind::Analysis {
            return Err(key_error(
                "checkpoint_data",
                "is for analysis plugins (inputs and outputs keep their own checkpoints)".into(),
            ));
        }
        Ok(PluginConfig {
            kind,
            name: format!("{}.{stem}", kind.dir()),
            initial_position,
            path: path.to_owned(),
            filename,
            message_matcher,
            ticker_interval: limit("ticker_interval", 0, 86_400 * 365)?,
            thread: get("thread")
                .map(|_| number("thread", 0).map(|t| t as usize))
                .transpose()?,
            preserve_data: checkpoint_data || boolean("preserve_data")?,
            checkpoint_data,
            memory_limit,
            instruction_limit: limit("instruction_limit", 1_000_000, u32::MAX as u64)? as u32,
            output_limit: limit("output_limit", 64 << 10, 64 << 20)? as usize,
            shutdown_on_terminate: boolean("shutdown_on_terminate")?,
            process_message_inject_limit: limit("process_message_inject_limit", 0, u32::MAX as u64)?
                as u32,
            timer_event_inject_limit: limit("timer_event_inject_limit", 10, u32::MAX as u64)?
                as u32,
            read_queue,
            restricted_headers: match get("restricted_headers") {
                None => kind == PluginKind::Analysis,
                Some(_) => boolean("restricted_headers")?,
            },
            warnings: misspelt_keys(values.iter().map(|(k, _)| k.as_str())),
            values,
        })
    }

    /// The most bytes one output (an inject, the payload buffer) may have: `output_limit`,
    /// where 0 means no limit of its own, as in Hindsight (`max_message_size` still applies).
    pub fn output_cap(&self) -> usize {
        match self.output_limit {
            0 => usize::MAX,
            n => n,
        }
    }

    /// The value of a cfg key.
    pub fn get(&self, key: &str) -> Option<&CfgValue> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The chunk name the cfg is evaluated under; Lua prefixes its errors with it and the line.
/// A short fixed name, because Lua cuts long chunk names (a deep path) to 60 bytes.
const CHUNK: &str = "cfg";

/// A Lua error about the cfg as an error at its line of `path` (`cfg:LINE: …` from Lua).
fn located(path: &Path, reason: String) -> PluginConfigError {
    let at_line = reason
        .strip_prefix(CHUNK)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(line, rest)| Some((line.parse::<u32>().ok()?, rest)));
    match at_line {
        Some((line, rest)) => PluginConfigError::Line {
            path: path.to_owned(),
            line,
            reason: rest.to_owned(),
        },
        None => PluginConfigError::File {
            path: path.to_owned(),
            reason,
        },
    }
}

/// Runs the cfg source in an empty environment and collects its globals.
fn evaluate(text: &[u8]) -> Result<Vec<(String, CfgValue)>, String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::default()).map_err(|e| e.to_string())?;
    lua.set_memory_limit(1 << 20).map_err(|e| e.to_string())?;
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(1_000_000),
        |_, _| {
            Err(mlua::Error::runtime(
                "the cfg runs too long (instruction limit)",
            ))
        },
    )
    .map_err(|e| e.to_string())?;
    let env = lua.create_table().map_err(|e| e.to_string())?;
    lua.load(text)
        .set_name(format!("={CHUNK}"))
        .set_mode(ChunkMode::Text)
        .set_environment(env.clone())
        .exec()
        .map_err(|e| lua_error_text(&e))?;
    let mut out = Vec::new();
    for pair in env.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        let Value::String(key) = key else { continue };
        let key = key.to_string_lossy().to_string();
        match convert(&value, 0) {
            Some(v) => out.push((key, v)),
            None => {
                return Err(format!(
                    "key `{key}`: a cfg value must be a boolean, number, string or table of those"
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn convert(value: &Value, depth: usize) -> Option<CfgValue> {
    Some(match value {
        Value::Boolean(b) => CfgValue::Bool(*b),
        Value::Integer(i) => CfgValue::Number(*i as f64),
        Value::Number(n) => CfgValue::Number(*n),
        Value::String(s) => CfgValue::String(s.as_bytes().to_vec()),
        Value::Table(t) if depth < 16 => {
            let mut entries = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.ok()?;
                entries.push((convert(&k, depth + 1)?, convert(&v, depth + 1)?));
            }
            CfgValue::Table(entries)
        }
        _ => return None,
    })
}

/// The message of a Lua error without mlua's traceback decoration.
pub fn lua_error_text(e: &mlua::Error) -> String {
    // mlua appends a traceback to runtime errors; Hindsight's messages are one line.
    let first = |m: &str| {
        m.split("\nstack traceback:")
            .next()
            .unwrap_or(m)
            .trim_end()
            .to_owned()
    };
    match e {
        mlua::Error::SyntaxError { message, .. } => first(message),
        mlua::Error::RuntimeError(message) => first(message),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        mlua::Error::MemoryError(_) => "not enough memory".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: PluginKind, text: &str) -> Result<PluginConfig, PluginConfigError> {
        PluginConfig::parse(
            kind,
            Path::new("hs_run/analysis/count.cfg"),
            text.as_bytes(),
        )
    }

    #[test]
    fn reads_hindsight_keys_and_user_keys() {
        let c = parse(
            PluginKind::Analysis,
            r#"
            filename = "count.lua"
            message_matcher = 'Type == "bench" && Fields[action] == "login"'
            process_message_inject_limit = 1
            ticker_interval = 60 * 5
            expect = 2000000
            tags = {"a", "b", nested = {x = true}}
            prefix = "blink" .. "-" .. "x"
            "#,
        )
        .unwrap();
        assert_eq!(c.name, "analysis.count");
        assert_eq!(c.filename, "count.lua");
        assert_eq!(c.ticker_interval, 300);
        assert_eq!(c.process_message_inject_limit, 1);
        assert_eq!(c.memory_limit, 8 << 20);
        assert_eq!(c.instruction_limit, 1_000_000);
        assert_eq!(c.output_limit, 64 << 10);
        assert_eq!(c.timer_event_inject_limit, 10);
        assert_eq!(c.get("expect"), Some(&CfgValue::Number(2e6)));
        assert_eq!(
            c.get("prefix"),
            Some(&CfgValue::String(b"blink-x".to_vec()))
        );
        assert!(matches!(c.get("tags"), Some(CfgValue::Table(t)) if t.len() == 3));
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            ("message_matcher = 'TRUE'", "key `filename`: is required"),
            ("filename = 'x.lua'", "key `message_matcher`: is required"),
            (
                "filename = 'x.lua' message_matcher = 'Type = 1'",
                "key `message_matcher`: column 6",
            ),
            (
                "filename = 'x.lua' message_matcher = 'TRUE' ticker_interval = -1",
                "key `ticker_interval`",
            ),
            (
                "filename = 'x.lua' message_matcher = 'TRUE' memory_limit = 'big'",
                "key `memory_limit`",
            ),
            (
                "filename = '../x.lua' message_matcher = 'TRUE'",
                "key `filename`",
            ),
            (
                "filename = 'x.lua' message_matcher = 'TRUE' preserve_data = 1",
                "key `preserve_data`",
            ),
            (
                "filename = 'x.lua' message_matcher = 'TRUE' read_queue = 'all'",
                "key `read_queue`",
            ),
            (
                "filename = 'x.lua'\nmessage_matcher = = 'TRUE'",
                "count.cfg:2:",
            ),
            ("filename = os.getenv('HOME')", "count.cfg:1:"),
            ("while true do end", "instruction limit"),
            ("x = string.rep('x', 1e9)", "count.cfg:1:"),
            ("f = function() end filename = 'x.lua'", "key `f`"),
        ];
        for (text, expected) in cases {
            let err = parse(PluginKind::Analysis, text).unwrap_err().to_string();
            assert!(err.starts_with("hs_run/analysis/count.cfg"), "{err}");
            assert_eq!(err.matches("count.cfg").count(), 1, "the path once: {err}");
            assert!(
                err.contains(expected),
                "{text:?}: {err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn misspelt_keys_are_warned_about_and_user_keys_are_not() {
        let c = parse(
            PluginKind::Analysis,
            "filename = 'x.lua' message_matcher = 'TRUE' instruction_limt = 5 \
             process_message_inject_limt = 1 prezerve_data = true thred = 1 \
             threshold = 5 path = 'a' topics = 'x' type = 'y' window = 60",
        )
        .unwrap();
        let expected = [
            ("instruction_limt", "instruction_limit"),
            (
                "process_message_inject_limt",
                "process_message_inject_limit",
            ),
            ("prezerve_data", "preserve_data"),
            ("thred", "thread"),
        ];
        assert_eq!(c.warnings.len(), expected.len(), "{:?}", c.warnings);
        for (typo, known) in expected {
            assert!(
                c.warnings
                    .iter()
                    .any(|w| w.contains(&format!("`{typo}`: did you mean `{known}`?"))),
                "{typo}: {:?}",
                c.warnings
            );
        }
        assert_eq!(edit_distance("thread", "thraed"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("a", "abcdefgh"), usize::MAX);
    }

    #[test]
    fn inputs_need_no_matcher() {
        let c = parse(
            PluginKind::Input,
            "filename = 'gen.lua' instruction_limit = 0",
        )
        .unwrap();
        assert_eq!(c.kind, PluginKind::Input);
        assert_eq!(c.instruction_limit, 0);
        assert_eq!(c.message_matcher, None);
    }
}
