//! `preserve_data`: a plugin's global variables saved as Lua source at a clean shutdown and
//! restored when it starts again, as Hindsight does.
//!
//! Numbers, strings, booleans, tables of those and module objects that keep state (circular
//! buffers, filters, sketches, SAX windows: `modules::preserve_object`) are saved; functions,
//! other userdata, the standard libraries and the API are not (the plugin's code defines them
//! again on load). A module object is written as a call of [`RESTORE`], which exists only while
//! the file is loaded. A table or object reached twice is saved twice; a cycle is cut and
//! reported.

use std::collections::HashSet;
use std::fmt::Write as _;

use mlua::{Lua, Table, Value};

/// The function a preserved file calls to rebuild a module object: `(module, state)`.
pub const RESTORE: &str = "__blink_restore";

const SKIP: &[&str] = &[
    "_G",
    "_VERSION",
    "string",
    "table",
    "math",
    "os",
    "io",
    "coroutine",
];

fn string_literal(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

fn number_literal(out: &mut String, n: f64) {
    if n.is_nan() {
        out.push_str("(0/0)");
    } else if n.is_infinite() {
        out.push_str(if n > 0.0 { "(1/0)" } else { "(-1/0)" });
    } else {
        // Rust's shortest round-trip form; Lua reads it back to the same double.
        let _ = write!(out, "{n:?}");
    }
}

/// What a walk of the globals needs: the tables on the current path (cycles), the loaded
/// modules' tables (not data: the plugin's `require` makes them again), the cycles cut.
struct Walk {
    seen: HashSet<usize>,
    modules: HashSet<usize>,
    cut: Vec<String>,
}

/// Appends `value` as a Lua expression; false if it cannot be saved.
fn value_literal(out: &mut String, value: &Value, walk: &mut Walk, path: &str) -> bool {
    match value {
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Number(n) => number_literal(out, *n),
        Value::String(s) => string_literal(out, &s.as_bytes()),
        Value::Table(t) => {
            let id = t.to_pointer() as usize;
            if walk.modules.contains(&id) {
                return false;
            }
            if !walk.seen.insert(id) {
                walk.cut.push(path.to_owned());
                return false;
            }
            out.push('{');
            for pair in t.clone().pairs::<Value, Value>() {
                let Ok((k, v)) = pair else { continue };
                let mut key = String::new();
                if !matches!(
                    k,
                    Value::String(_) | Value::Integer(_) | Value::Number(_) | Value::Boolean(_)
                ) || !value_literal(&mut key, &k, walk, path)
                {
                    continue;
                }
                let mut item = String::new();
                if value_literal(&mut item, &v, walk, &format!("{path}[{key}]")) {
                    let _ = write!(out, "[{key}]={item},");
                }
            }
            out.push('}');
            walk.seen.remove(&id);
        }
        Value::UserData(object) => {
            let Some((module, state)) = super::modules::preserve_object(object) else {
                return false;
            };
            let _ = write!(out, "{RESTORE}(");
            string_literal(out, module.as_bytes());
            out.push(',');
            string_literal(out, state.as_bytes());
            out.push(')');
        }
        _ => return false,
    }
    true
}

/// The plugin's globals as Lua source, and the paths of any cycles that were cut.
pub fn save(lua: &Lua) -> mlua::Result<(String, Vec<String>)> {
    let globals: Table = lua.globals();
    let mut out = String::from("-- preserved by Blink; restored when the plugin starts\n");
    let mut walk = Walk {
        seen: HashSet::new(),
        modules: loaded_modules(lua),
        cut: Vec::new(),
    };
    let mut entries: Vec<(String, Value)> = Vec::new();
    for pair in globals.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Value::String(k) = k else { continue };
        let name = k.to_string_lossy().to_string();
        if SKIP.contains(&name.as_str()) {
            continue;
        }
        entries.push((name, v));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in entries {
        let mut item = String::new();
        if value_literal(&mut item, &value, &mut walk, &name) {
            out.push_str("_G[");
            string_literal(&mut out, name.as_bytes());
            let _ = writeln!(out, "] = {item}");
        }
    }
    Ok((out, walk.cut))
}

/// The tables `require` has handed out (host modules are globals too, as lua_sandbox's are).
fn loaded_modules(lua: &Lua) -> HashSet<usize> {
    let Ok(loaded) = lua.named_registry_value::<Table>("blink.loaded") else {
        return HashSet::new();
    };
    let mut modules = HashSet::new();
    // A module table's own tables (`sax.window`) are part of it.
    let mut pending: Vec<Table> = loaded
        .pairs::<Value, Value>()
        .filter_map(|pair| match pair {
            Ok((_, Value::Table(t))) => Some(t),
            _ => None,
        })
        .collect();
    while let Some(table) = pending.pop() {
        if modules.insert(table.to_pointer() as usize) {
            pending.extend(table.pairs::<Value, Value>().filter_map(|pair| match pair {
                Ok((_, Value::Table(t))) => Some(t),
                _ => None,
            }));
        }
    }
    modules
}
