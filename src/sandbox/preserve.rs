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
use std::ffi::c_int;
use std::fmt::Write as _;

use mlua::{Lua, Table, Value, ffi};

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
    let plain = |b: u8| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\';
    let mut rest = bytes;
    while !rest.is_empty() {
        // Runs of printable bytes are copied whole; the others escaped one by one.
        let run = rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len());
        out.push_str(std::str::from_utf8(&rest[..run]).expect("printable ASCII"));
        let Some(&b) = rest.get(run) else { break };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
        rest = &rest[run + 1..];
    }
    out.push('"');
}

fn number_literal(out: &mut String, n: f64) {
    if n.is_nan() {
        out.push_str("(0/0)");
    } else if n.is_infinite() {
        out.push_str(if n > 0.0 { "(1/0)" } else { "(-1/0)" });
    } else if n.fract() == 0.0 && n.abs() < 9.0e18 {
        // A whole number (a count, a timestamp in ns) as an integer: exact (every double this
        // large is an integer, which Lua reads back to the same double) and cheaper to write.
        let _ = write!(out, "{}", n as i64);
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

/// Appends `value` as a Lua expression; false (and `out` as it was) if it cannot be saved.
/// `path` names the value (`x[1]["a"]`) for the report of a cycle; it is one string grown and
/// cut back as the walk goes, as `out` is: a snapshot of a large state allocates little.
fn value_literal(out: &mut String, value: &Value, walk: &mut Walk, path: &mut String) -> bool {
    match value {
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Number(n) => number_literal(out, *n),
        Value::String(s) => string_literal(out, &s.as_bytes()),
        Value::Table(t) => {
            if let Some(saved) = raw_table_literal(t, out, walk, path) {
                return saved;
            }
            let id = t.to_pointer() as usize;
            if walk.modules.contains(&id) {
                return false;
            }
            if !walk.seen.insert(id) {
                walk.cut.push(path.clone());
                return false;
            }
            out.push('{');
            for pair in t.clone().pairs::<Value, Value>() {
                let Ok((k, v)) = pair else { continue };
                if !matches!(
                    k,
                    Value::String(_) | Value::Integer(_) | Value::Number(_) | Value::Boolean(_)
                ) {
                    continue;
                }
                let (item, path_len) = (out.len(), path.len());
                out.push('[');
                if !value_literal(out, &k, walk, path) {
                    out.truncate(item);
                    continue;
                }
                out.push(']');
                path.push_str(&out[item..]);
                out.push('=');
                if value_literal(out, &v, walk, path) {
                    out.push(',');
                } else {
                    out.truncate(item);
                }
                path.truncate(path_len);
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

/// How deep the raw walk follows tables before it leaves the table to the general walk: the
/// Lua stack it needs (two slots a level) is reserved before it starts.
const RAW_DEPTH: usize = 64;

/// `table` as a Lua table constructor, walked with raw Lua API calls (a checkpointed
/// detection's windows are saved every second: the general walk's per-value mlua handles cost
/// it ten times as much). `None`, with `out` and `path` as they were, if the table holds a
/// userdata (a module object, which only the general walk can save) or nests too deep.
fn raw_table_literal(
    table: &Table,
    out: &mut String,
    walk: &mut Walk,
    path: &mut String,
) -> Option<bool> {
    let lua = table.weak_lua().try_upgrade()?;
    let (start, path_start, cut_start) = (out.len(), path.len(), walk.cut.len());
    let mut result = None;
    // SAFETY: inside the protected call exec_raw provides, with table at index 1: the stack is
    // grown once, first, while this frame owns nothing (the only call that may raise); the
    // walk then only reads (lua_next, lua_type, lua_to*, which do not allocate: no string is
    // converted in place) within that room, and exec_raw's guard restores the stack.
    let done = unsafe {
        lua.exec_raw::<()>(table, |state| {
            if ffi::lua_checkstack(state, (2 * RAW_DEPTH + 8) as c_int) == 0 {
                return;
            }
            result = raw_value(state, 1, out, walk, path, 0);
        })
    };
    if done.is_err() || result.is_none() {
        out.truncate(start);
        path.truncate(path_start);
        walk.cut.truncate(cut_start);
        return None;
    }
    result
}

/// The value at absolute stack index `at` (see [`raw_table_literal`]); `Some(false)`: it cannot
/// be saved (`out` as it was), `None`: the general walk must do the whole table.
///
/// # Safety
/// As [`raw_table_literal`]: inside exec_raw, with `2 * (RAW_DEPTH - depth)` free stack slots.
unsafe fn raw_value(
    state: *mut ffi::lua_State,
    at: c_int,
    out: &mut String,
    walk: &mut Walk,
    path: &mut String,
    depth: usize,
) -> Option<bool> {
    // SAFETY: per this function's contract.
    unsafe {
        match ffi::lua_type(state, at) {
            ffi::LUA_TBOOLEAN => {
                out.push_str(if ffi::lua_toboolean(state, at) != 0 {
                    "true"
                } else {
                    "false"
                });
            }
            ffi::LUA_TNUMBER => number_literal(out, ffi::lua_tonumber(state, at)),
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let text = ffi::lua_tolstring(state, at, &mut len);
                string_literal(out, std::slice::from_raw_parts(text.cast::<u8>(), len));
            }
            ffi::LUA_TTABLE => {
                if depth >= RAW_DEPTH {
                    return None;
                }
                let id = ffi::lua_topointer(state, at) as usize;
                if walk.modules.contains(&id) {
                    return Some(false);
                }
                if !walk.seen.insert(id) {
                    walk.cut.push(path.clone());
                    return Some(false);
                }
                out.push('{');
                let mut complete = true;
                ffi::lua_pushnil(state);
                while complete && ffi::lua_next(state, at) != 0 {
                    // key at -2, value at -1
                    let top = ffi::lua_gettop(state);
                    let key_type = ffi::lua_type(state, top - 1);
                    if matches!(
                        key_type,
                        ffi::LUA_TSTRING | ffi::LUA_TNUMBER | ffi::LUA_TBOOLEAN
                    ) {
                        let (item, path_len) = (out.len(), path.len());
                        out.push('[');
                        complete = raw_value(state, top - 1, out, walk, path, depth + 1).is_some();
                        out.push(']');
                        path.push_str(&out[item..]);
                        out.push('=');
                        match raw_value(state, top, out, walk, path, depth + 1) {
                            Some(true) => out.push(','),
                            Some(false) => out.truncate(item),
                            None => complete = false,
                        }
                        path.truncate(path_len);
                    }
                    ffi::lua_settop(state, top - 1);
                }
                // Off the path whether or not the walk finished (the general walk that takes
                // over after an abandoned raw walk relies on it).
                walk.seen.remove(&id);
                if !complete {
                    return None;
                }
                out.push('}');
            }
            ffi::LUA_TUSERDATA => return None,
            _ => return Some(false),
        }
        Some(true)
    }
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
    let mut path = String::new();
    for (name, value) in entries {
        let item = out.len();
        out.push_str("_G[");
        string_literal(&mut out, name.as_bytes());
        out.push_str("] = ");
        path.clear();
        path.push_str(&name);
        if value_literal(&mut out, &value, &mut walk, &mut path) {
            out.push('\n');
        } else {
            out.truncate(item);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with the globals a sandbox has (no `package`, which holds `_G` in a cycle).
    fn plain() -> Lua {
        let lua = Lua::new();
        lua.globals().raw_remove("package").unwrap();
        lua
    }

    /// Saves the globals `code` sets, loads the result into a fresh state and returns it with
    /// the source and the cycles cut.
    fn round_trip(code: &str) -> (Lua, String, Vec<String>) {
        let lua = plain();
        lua.load(code).exec().unwrap();
        let (source, cut) = save(&lua).unwrap();
        let back = Lua::new();
        back.load(&source).exec().unwrap();
        (back, source, cut)
    }

    #[test]
    fn nested_data_comes_back_as_it_was() {
        let (back, _, cut) = round_trip(
            r#"windows = {["10.0.0.1"] = {1.5e18, 1.5e18, 3, 3, "rule/10.0.0.1/1", "a \"q\"\n\0", "high"},
                          other = {x = {y = {z = true}}, [2] = false, [0.5] = -1/0}}
               label = "plain"; n = 0/0"#,
        );
        assert!(cut.is_empty());
        let check: bool = back
            .load(
                r#"local w = windows["10.0.0.1"]
                return w[1] == 1.5e18 and w[3] == 3 and w[6] == "a \"q\"\n\0" and #w == 7
                   and windows.other.x.y.z == true and windows.other[2] == false
                   and windows.other[0.5] == -1/0 and label == "plain" and n ~= n"#,
            )
            .eval()
            .unwrap();
        assert!(check);
    }

    #[test]
    fn cycles_are_cut_and_named_and_foreign_userdata_is_left_out() {
        let lua = plain();
        lua.load("t = {name = 'top', inner = {}}; t.inner.back = t; t.inner.keep = 1")
            .exec()
            .unwrap();
        // A userdata no module saves, beside data, under a table with a cycle to an ancestor:
        // the raw walk hands that table to the general walk, which must still see the cycle.
        let ud = lua.create_any_userdata(7u8).unwrap();
        let inner: Table = lua.load("return t.inner").eval().unwrap();
        let holder = lua.create_table().unwrap();
        holder.set("object", ud).unwrap();
        holder
            .set("up", lua.globals().get::<Table>("t").unwrap())
            .unwrap();
        holder.set("kept", "yes").unwrap();
        inner.set("holder", holder).unwrap();
        let (source, mut cut) = save(&lua).unwrap();
        cut.sort();
        assert_eq!(
            cut,
            ["t[\"inner\"][\"back\"]", "t[\"inner\"][\"holder\"][\"up\"]"],
            "{source}"
        );
        let back = Lua::new();
        back.load(&source).exec().unwrap();
        let check: bool = back
            .load(
                "return t.name == 'top' and t.inner.keep == 1 and t.inner.back == nil
                   and t.inner.holder.kept == 'yes' and t.inner.holder.object == nil",
            )
            .eval()
            .unwrap();
        assert!(check, "{source}");
    }

    #[test]
    fn tables_nested_deeper_than_the_raw_walk_are_saved_whole() {
        let (back, _, cut) = round_trip(
            "deep = {} local t = deep for i = 1, 100 do t.next = {i = i} t = t.next end",
        );
        assert!(cut.is_empty());
        let depth: i64 = back
            .load("local n, t = 0, deep while t.next do n = n + 1 t = t.next end return n")
            .eval()
            .unwrap();
        assert_eq!(depth, 100);
    }
}
