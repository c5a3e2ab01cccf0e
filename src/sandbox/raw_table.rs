//! The fast path of `inject_message`: reading a message table through Lua's C API.
//!
//! Converting a table through mlua's safe API costs about 600 instructions per access (stack
//! checks, guards, reference handling); a message with three fields needs twenty or so. The
//! common shape of a message table — string headers, numeric Timestamp/Severity/Pid, and `Fields`
//! as a map of scalars or arrays of scalars — is read here with raw `lua_rawget`/`lua_next` calls
//! inside one protected call instead. Anything else (a `{value = …, value_type = …}` field, the
//! list form, an unusual type) returns `None`, and the caller uses the general converter, which
//! also produces the error messages. Both paths build the same [`Message`]; a test checks that.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table};

use super::heka::Defaults;
use crate::message::{Field, FieldValues, Message};

/// The table keys the reader looks up, in [`Key`] order.
pub const KEY_NAMES: [&[u8]; 11] = [
    b"Uuid",
    b"Timestamp",
    b"Type",
    b"Logger",
    b"Payload",
    b"EnvVersion",
    b"Hostname",
    b"Severity",
    b"Pid",
    b"Fields",
    b"value",
];

#[derive(Clone, Copy)]
enum Key {
    Uuid,
    Timestamp,
    Type,
    Logger,
    Payload,
    EnvVersion,
    Hostname,
    Severity,
    Pid,
    Fields,
    Value,
}

/// Where key strings come from: pushed as literals (may allocate, so only inside a protected
/// call), or from a C closure's upvalues starting at the given index (no allocation, so no Lua
/// error can unwind through the reader).
#[derive(Clone, Copy)]
pub enum Keys {
    Literal,
    Upvalues(c_int),
}

/// Reads the value pushed on top of the stack as bytes (strings only).
unsafe fn top_bytes(state: *mut lua_State) -> Vec<u8> {
    let mut len = 0usize;
    // SAFETY: the caller checked the value is a string; Lua keeps it alive while on the stack.
    let ptr = unsafe { ffi::lua_tolstring(state, -1, &mut len) };
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec()
}

/// Pushes `table[key]` and returns its Lua type.
unsafe fn get(state: *mut lua_State, table: c_int, key: Key, keys: Keys) -> c_int {
    unsafe {
        match keys {
            Keys::Literal => {
                let name = KEY_NAMES[key as usize];
                ffi::lua_pushlstring(state, name.as_ptr().cast(), name.len());
            }
            Keys::Upvalues(first) => {
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(first + key as c_int))
            }
        }
        ffi::lua_rawget(state, table)
    }
}

/// An optional text header: nil → None, a string → its bytes; anything else falls back.
unsafe fn text(
    state: *mut lua_State,
    table: c_int,
    key: Key,
    keys: Keys,
) -> Option<Option<Vec<u8>>> {
    unsafe {
        let t = get(state, table, key, keys);
        let out = match t {
            ffi::LUA_TNIL => Some(None),
            ffi::LUA_TSTRING => Some(Some(top_bytes(state))),
            _ => None,
        };
        ffi::lua_pop(state, 1);
        out
    }
}

/// An optional number: nil → Ok(None), a number → Some, anything else falls back.
unsafe fn number(state: *mut lua_State, table: c_int, key: Key, keys: Keys) -> Option<Option<f64>> {
    unsafe {
        let t = get(state, table, key, keys);
        let out = match t {
            ffi::LUA_TNIL => Some(None),
            ffi::LUA_TNUMBER => Some(Some(ffi::lua_tonumber(state, -1))),
            _ => None,
        };
        ffi::lua_pop(state, 1);
        out
    }
}

/// The scalar or array of scalars on top of the stack as field values.
unsafe fn values(state: *mut lua_State, keys: Keys) -> Option<FieldValues> {
    unsafe {
        let top = ffi::lua_gettop(state);
        match ffi::lua_type(state, top) {
            ffi::LUA_TSTRING => Some(FieldValues::String(vec![top_bytes(state)])),
            ffi::LUA_TNUMBER => Some(FieldValues::Double(vec![ffi::lua_tonumber(state, top)])),
            ffi::LUA_TBOOLEAN => Some(FieldValues::Bool(vec![ffi::lua_toboolean(state, top) != 0])),
            ffi::LUA_TTABLE => {
                let n = ffi::lua_objlen(state, top);
                if n == 0 || get(state, top, Key::Value, keys) != ffi::LUA_TNIL {
                    // An empty array or a {value = …} spec: the general path handles those.
                    ffi::lua_pop(state, 1);
                    return None;
                }
                ffi::lua_pop(state, 1);
                let first = ffi::lua_rawgeti(state, top, 1);
                ffi::lua_pop(state, 1);
                let mut out = match first {
                    ffi::LUA_TSTRING => FieldValues::String(Vec::with_capacity(n)),
                    ffi::LUA_TNUMBER => FieldValues::Double(Vec::with_capacity(n)),
                    ffi::LUA_TBOOLEAN => FieldValues::Bool(Vec::with_capacity(n)),
                    _ => return None,
                };
                for i in 1..=n {
                    let t = ffi::lua_rawgeti(state, top, i as ffi::lua_Integer);
                    let ok = match (&mut out, t) {
                        (FieldValues::String(v), ffi::LUA_TSTRING) => {
                            v.push(top_bytes(state));
                            true
                        }
                        (FieldValues::Double(v), ffi::LUA_TNUMBER) => {
                            v.push(ffi::lua_tonumber(state, -1));
                            true
                        }
                        (FieldValues::Bool(v), ffi::LUA_TBOOLEAN) => {
                            v.push(ffi::lua_toboolean(state, -1) != 0);
                            true
                        }
                        _ => false,
                    };
                    ffi::lua_pop(state, 1);
                    if !ok {
                        return None;
                    }
                }
                Some(out)
            }
            _ => None,
        }
    }
}

/// Reads the message table at stack index `TABLE`; `None` means "use the general converter".
/// Leaves the stack as it found it only on success; callers reset the top either way.
pub unsafe fn read(state: *mut lua_State, defaults: &Defaults, keys: Keys) -> Option<Message> {
    const TABLE: c_int = 1;
    unsafe {
        if ffi::lua_checkstack(state, 8) == 0 {
            return None;
        }
        let uuid = match get(state, TABLE, Key::Uuid, keys) {
            ffi::LUA_TNIL => crate::message::new_uuid(),
            ffi::LUA_TSTRING => {
                let bytes = top_bytes(state);
                <[u8; 16]>::try_from(bytes.as_slice()).ok()?
            }
            _ => return None,
        };
        ffi::lua_pop(state, 1);
        let timestamp = number(state, TABLE, Key::Timestamp, keys)?
            .map_or_else(crate::time::now_nanos, |n| n as i64);
        let mut m = Message::new(uuid, timestamp);
        m.r#type = text(state, TABLE, Key::Type, keys)?;
        m.logger = text(state, TABLE, Key::Logger, keys)?.or_else(|| Some(defaults.logger.clone()));
        m.payload = text(state, TABLE, Key::Payload, keys)?;
        m.env_version = text(state, TABLE, Key::EnvVersion, keys)?;
        m.hostname =
            text(state, TABLE, Key::Hostname, keys)?.or_else(|| Some(defaults.hostname.clone()));
        m.severity = number(state, TABLE, Key::Severity, keys)?.map(|n| n as i32);
        m.pid = Some(number(state, TABLE, Key::Pid, keys)?.map_or(defaults.pid, |n| n as i32));
        match get(state, TABLE, Key::Fields, keys) {
            ffi::LUA_TNIL => {}
            ffi::LUA_TTABLE => {
                let fields = ffi::lua_gettop(state);
                if ffi::lua_objlen(state, fields) > 0 {
                    return None; // the list form
                }
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, fields) != 0 {
                    // key at -2, value at -1
                    if ffi::lua_type(state, -2) != ffi::LUA_TSTRING {
                        return None;
                    }
                    let values = values(state, keys)?;
                    ffi::lua_pop(state, 1);
                    let name = top_bytes(state);
                    m.fields.push(Field {
                        name,
                        representation: None,
                        values,
                    });
                }
            }
            _ => return None,
        }
        Some(m)
    }
}

/// The fast path: the message, or `None` when the general converter must do it.
pub fn message_from_table(lua: &Lua, table: &Table, defaults: &Defaults) -> Option<Message> {
    let mut out = None;
    // SAFETY: the closure only reads the table mlua pushed as argument 1, with raw (non-erroring
    // except on memory) API calls, inside the protected call exec_raw provides; the stack is
    // restored by exec_raw's guard.
    let done = unsafe {
        lua.exec_raw::<()>(table, |state| {
            out = read(state, defaults, Keys::Literal);
        })
    };
    done.ok()?;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::heka;

    fn defaults() -> Defaults {
        Defaults {
            logger: b"input.t".to_vec(),
            hostname: b"h".to_vec(),
            pid: 7,
        }
    }

    /// Both converters on the same table; `None` from the fast path means it declined.
    fn both(lua: &Lua, source: &str) -> (Option<Message>, Result<Message, String>) {
        let table: Table = lua.load(source).eval().unwrap();
        let keys = heka::Keys::new(lua).unwrap();
        (
            message_from_table(lua, &table, &defaults()),
            heka::message_from_table(&table, &defaults(), &keys),
        )
    }

    #[test]
    fn fast_path_builds_what_the_general_converter_builds() {
        let lua = Lua::new();
        let cases = [
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Type = "t"}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 1e18, Type = "bench", Logger = "gen", Payload = string.rep("x", 200),
                Severity = 3, Pid = 9, Hostname = "x", EnvVersion = "1"}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {user = "alice", n = 2, ok = true}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {names = {"a", "b"}, nums = {1, 2.5}, flags = {true, false}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {}}"#,
        ];
        for case in cases {
            let (fast, general) = both(&lua, case);
            let (mut fast, mut general) = (fast.expect(case), general.unwrap());
            // Field order follows Lua's table iteration in both; compare as sets.
            fast.fields.sort_by(|a, b| a.name.cmp(&b.name));
            general.fields.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(fast, general, "{case}");
        }
    }

    #[test]
    fn unusual_shapes_go_to_the_general_converter() {
        let lua = Lua::new();
        for case in [
            r#"{Uuid = "27150de5-4208-442d-a59a-1d802aedce38"}"#,
            r#"{Timestamp = "soon"}"#,
            r#"{Type = 5}"#,
            r#"{Fields = {{name = "a", value = "b"}}}"#,
            r#"{Fields = {a = {value = 1, value_type = 2}}}"#,
            r#"{Fields = {a = {}}}"#,
            r#"{Fields = {a = {1, "x"}}}"#,
            r#"{Fields = {[1.5] = "x"}}"#,
            r#"{Fields = "no"}"#,
        ] {
            assert!(both(&lua, case).0.is_none(), "{case}");
        }
    }
}
