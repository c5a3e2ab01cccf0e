//! The Hindsight API functions a plugin calls, per plugin kind.
//!
//! | function | input | analysis | output |
//! |---|---|---|---|
//! | `read_config`, `print`, `decode_message`, `require` | ✓ | ✓ | ✓ |
//! | `inject_message(table \| protobuf string \| nil, checkpoint)` | ✓ | | |
//! | `is_running` | ✓ | | |
//! | `inject_message(table)`, `inject_payload`, `add_to_payload` | | ✓ | |
//! | `read_message` | | ✓ | ✓ |
//! | `encode_message`, `update_checkpoint`, `create_message_matcher` | | | ✓ |
//!
//! This file installs what every kind gets; `input.rs`, `analysis.rs` and `output.rs` add the
//! rest, and `require.rs` finds libraries, host modules and module files.

mod analysis;
mod input;
mod matches;
mod output;
mod require;
mod stream_reader;

use mlua::{Lua, LuaString, MultiValue, Value};

use super::current::SharedCurrent;
use super::heka;
use super::host::{SharedHost, shared};
use super::lua_values::{format_output_number, lua_type};
use crate::message::MessageView;
use crate::plugin::{CfgValue, PluginKind};

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

/// Appends `values` to `out` as Lua's tostring would print them; a zero-copy reference
/// (`read_message(…, true)`) appends its field of the current message, or nothing.
fn append_values(lua: &Lua, out: &mut Vec<u8>, values: &MultiValue) -> Result<(), String> {
    for v in values {
        if let Some(text) = super::current::zero_copy_text(lua, v).map_err(|e| e.to_string())? {
            if let Some(text) = text {
                out.extend_from_slice(&text.as_bytes());
            }
            continue;
        }
        match v {
            Value::String(s) => out.extend_from_slice(&s.as_bytes()),
            Value::Integer(i) => out.extend_from_slice(format_output_number(*i as f64).as_bytes()),
            Value::Number(n) => out.extend_from_slice(format_output_number(*n).as_bytes()),
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => out.extend_from_slice(b"nil"),
            // A module's object that writes itself (a circular buffer): its `__tostring`, as
            // lua_sandbox calls a module's output function.
            Value::UserData(u) => {
                let to_string = u
                    .metatable()
                    .and_then(|m| m.get::<mlua::Function>(mlua::MetaMethod::ToString))
                    .map_err(|_| "unknown userdata type".to_string())?;
                let text: mlua::LuaString = to_string.call(u.clone()).map_err(|e| e.to_string())?;
                out.extend_from_slice(&text.as_bytes());
            }
            other => return Err(format!("cannot output a {}", lua_type(other))),
        }
    }
    Ok(())
}

/// Fuzzing: see [`stream_reader::fuzz`].
pub(super) fn fuzz_stream_frames(data: &[u8]) {
    stream_reader::fuzz(data);
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
            let value = host.config.get(&key).or_else(|| {
                let default = host.config_defaults.iter().find(|(k, _)| *k == key);
                default.map(|(_, v)| v)
            });
            match value {
                Some(v) => cfg_to_lua(lua, v),
                None => Ok(Value::Nil),
            }
        })?,
    )?;

    // Blink's: a count of the plugin's own in plugin_status.tsv's Notes (a detection's alerts,
    // suppressions, errors in its optional functions).
    g.raw_set(
        "add_count",
        lua.create_function(|lua, (name, n): (String, Option<f64>)| {
            let n = n.unwrap_or(1.0);
            if !(0.0..=1e15).contains(&n) || n.fract() != 0.0 {
                return Err(mlua::Error::runtime(
                    "bad argument #2 to 'add_count' (a whole number from 0)",
                ));
            }
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(mlua::Error::runtime(
                    "bad argument #1 to 'add_count' (a name of 1 to 64 letters, digits, '_' or '.')",
                ));
            }
            shared(lua).borrow().stats.count(&name, n as u64);
            Ok(())
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
                if append_values(lua, &mut line, &MultiValue::from_iter([v.clone()])).is_err() {
                    line.extend_from_slice(lua_type(v).as_bytes());
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
        lua.create_function(|lua, name: String| one(require::require(lua, &name)))?,
    )?;

    match kind {
        PluginKind::Input => input::install(lua, &g, &no_result)?,
        PluginKind::Analysis => analysis::install(lua, &no_result)?,
        PluginKind::Output => output::install(lua, &g, &one_result, current)?,
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
        matches::install(lua, &g, current)?;
    }
    if let Some(general) = general_inject {
        super::inject::install(lua, host, general)?;
    }
    Ok(())
}
