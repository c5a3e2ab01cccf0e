//! The fast path of `inject_message` and `encode_message`: a message table encoded to Heka
//! protobuf straight from Lua's C API.
//!
//! Converting a table through mlua's safe API costs about 600 instructions per access (stack
//! checks, guards, reference handling), and building an owned [`Message`] first costs an
//! allocation per header and field value. The common shape of a message table — string headers,
//! numeric Timestamp/Severity/Pid, and `Fields` as a map of scalars or arrays of scalars — is read
//! here with raw `lua_rawget`/`lua_next` calls and written as protobuf while it is read, borrowing
//! the strings from Lua. Anything else (a `{value = …, value_type = …}` field, the list form, an
//! unusual type) returns `None`, and the caller uses the general converter ([`super::heka`]),
//! which also produces the error messages. Both paths produce the same bytes; a test checks that.
//!
//! The strings borrowed from Lua stay valid for the whole read: they are reachable from the table
//! (argument 1), nothing changes the table meanwhile, and the reader allocates nothing in Lua, so
//! no collection runs.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table};

use super::heka::Defaults;
use crate::message::encode::{key, put_bytes, put_varint};
use crate::varint::put_u64;

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

/// Header values Blink sets whatever the table says (analysis plugins' `restricted_headers`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    FromTable,
    Restricted,
}

/// Reusable buffers for [`encode`]: the message, and one field while it is being written (its
/// length prefix comes before it).
#[derive(Default)]
pub struct Scratch {
    pub message: Vec<u8>,
    field: Vec<u8>,
}

/// The encoded message in [`Scratch::message`], and its Timestamp (ns).
pub struct Encoded {
    pub timestamp: i64,
}

/// The string at `index`, borrowed from Lua.
///
/// # Safety
/// The value at `index` is a string, and it stays on the stack (so Lua keeps it alive and in
/// place) for as long as `'a`: callers use the slice before popping it.
unsafe fn borrowed<'a>(state: *mut lua_State, index: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: see the module comment: the string outlives the read.
    unsafe {
        let ptr = ffi::lua_tolstring(state, index, &mut len);
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Pushes `table[key]` and returns its Lua type.
///
/// # Safety
/// `table` is a table's stack index, there is room for one more stack slot, and with
/// `Keys::Upvalues(first)` the running C function's upvalues from `first` are the key strings.
/// A raw get never raises (no metamethods).
unsafe fn get(state: *mut lua_State, table: c_int, key: Key, keys: Keys) -> c_int {
    // SAFETY: per the contract.
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

/// An optional text header: nil → None, a string → its bytes; anything else declines.
///
/// # Safety
/// As [`get`]. The bytes are popped before return: they stay valid only because the table
/// still holds the string (it is a field of the table at `table`, which the caller keeps on the
/// stack and does not change while `'a` lasts).
unsafe fn text<'a>(
    state: *mut lua_State,
    table: c_int,
    key: Key,
    keys: Keys,
) -> Option<Option<&'a [u8]>> {
    // SAFETY: per the contract.
    unsafe {
        let out = match get(state, table, key, keys) {
            ffi::LUA_TNIL => Some(None),
            ffi::LUA_TSTRING => Some(Some(borrowed(state, -1))),
            _ => None,
        };
        ffi::lua_pop(state, 1);
        out
    }
}

/// An optional number: nil → None, a number → Some; anything else declines.
///
/// # Safety
/// As [`get`].
unsafe fn number(state: *mut lua_State, table: c_int, key: Key, keys: Keys) -> Option<Option<f64>> {
    // SAFETY: per the contract.
    unsafe {
        let out = match get(state, table, key, keys) {
            ffi::LUA_TNIL => Some(None),
            ffi::LUA_TNUMBER => Some(Some(ffi::lua_tonumber(state, -1))),
            _ => None,
        };
        ffi::lua_pop(state, 1);
        out
    }
}

/// Heka value types of the values a table can hold directly.
const STRING: u64 = 0;
const DOUBLE: u64 = 3;
const BOOL: u64 = 4;

/// Writes the values of the field whose value is on top of the stack (a scalar or an array of
/// scalars of one type), after its name, into `out`. Declines anything else.
///
/// # Safety
/// As [`get`], with the field's value on top of the stack and room for two more slots. Array
/// elements are copied into `out` while they are on the stack.
unsafe fn field_values(state: *mut lua_State, keys: Keys, out: &mut Vec<u8>) -> Option<()> {
    // SAFETY: per the contract; every push is popped before the next, so the stack never grows
    // by more than two.
    unsafe {
        let top = ffi::lua_gettop(state);
        match ffi::lua_type(state, top) {
            ffi::LUA_TSTRING => put_bytes(out, 4 + STRING, borrowed(state, top)),
            ffi::LUA_TNUMBER => {
                put_varint(out, 2, DOUBLE);
                put_u64(out, key(4 + DOUBLE, 1));
                out.extend_from_slice(&ffi::lua_tonumber(state, top).to_le_bytes());
            }
            ffi::LUA_TBOOLEAN => {
                put_varint(out, 2, BOOL);
                put_varint(out, 4 + BOOL, (ffi::lua_toboolean(state, top) != 0) as u64);
            }
            ffi::LUA_TTABLE => {
                let n = ffi::lua_objlen(state, top);
                let spec = get(state, top, Key::Value, keys) != ffi::LUA_TNIL;
                ffi::lua_pop(state, 1);
                if n == 0 || spec {
                    // An empty array or a {value = …} spec: the general path handles those.
                    return None;
                }
                let first = ffi::lua_rawgeti(state, top, 1);
                ffi::lua_pop(state, 1);
                // Strings are repeated entries; numbers and booleans one packed run, or a
                // single unpacked entry (as lua_sandbox writes them).
                match first {
                    ffi::LUA_TSTRING => {}
                    ffi::LUA_TNUMBER => {
                        put_varint(out, 2, DOUBLE);
                        if n == 1 {
                            put_u64(out, key(4 + DOUBLE, 1));
                        } else {
                            put_u64(out, key(4 + DOUBLE, 2));
                            put_u64(out, 8 * n as u64);
                        }
                    }
                    ffi::LUA_TBOOLEAN => {
                        put_varint(out, 2, BOOL);
                        put_u64(out, key(4 + BOOL, if n == 1 { 0 } else { 2 }));
                        if n > 1 {
                            put_u64(out, n as u64);
                        }
                    }
                    _ => return None,
                }
                for i in 1..=n {
                    let t = ffi::lua_rawgeti(state, top, i as ffi::lua_Integer);
                    let same = t == first;
                    if same {
                        match t {
                            ffi::LUA_TSTRING => put_bytes(out, 4 + STRING, borrowed(state, -1)),
                            ffi::LUA_TNUMBER => {
                                out.extend_from_slice(&ffi::lua_tonumber(state, -1).to_le_bytes())
                            }
                            _ => out.push((ffi::lua_toboolean(state, -1) != 0) as u8),
                        }
                    }
                    ffi::lua_pop(state, 1);
                    if !same {
                        return None;
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// Encodes the message table at stack index 1 into `scratch.message` (cleared first). `None`
/// means "use the general converter". Callers reset the stack top afterwards.
///
/// # Safety
/// `state` is a running Lua state with the message table at index 1; with
/// `Keys::Upvalues(first)` it runs inside a C function whose upvalues from `first` are the
/// key strings ([`KEY_NAMES`] order). Only raw gets and pushes are made, so no Lua error can
/// longjmp over the Rust values alive here.
pub unsafe fn encode(
    state: *mut lua_State,
    defaults: &Defaults,
    keys: Keys,
    headers: Headers,
    scratch: &mut Scratch,
) -> Option<Encoded> {
    const TABLE: c_int = 1;
    let Scratch {
        message: out,
        field,
    } = scratch;
    out.clear();
    let restricted = headers == Headers::Restricted;
    // SAFETY: per the contract; the stack is checked for 8 free slots first.
    unsafe {
        if ffi::lua_checkstack(state, 8) == 0 {
            return None;
        }
        // Fields are numbered Uuid 1, Timestamp 2, Type 3, Logger 4, Severity 5, Payload 6,
        // EnvVersion 7, Pid 8, Hostname 9, Fields 10; they are written in that order.
        // A restricted header is still checked, so a bad table fails the same either way.
        let uuid = match get(state, TABLE, Key::Uuid, keys) {
            ffi::LUA_TNIL => None,
            ffi::LUA_TSTRING => Some(<[u8; 16]>::try_from(borrowed(state, -1)).ok()?),
            _ => return None,
        };
        let uuid = uuid
            .filter(|_| !restricted)
            .unwrap_or_else(crate::message::new_uuid);
        ffi::lua_pop(state, 1);
        put_bytes(out, 1, &uuid);
        let timestamp = number(state, TABLE, Key::Timestamp, keys)?;
        let timestamp = match timestamp {
            Some(n) if !restricted => n as i64,
            _ => crate::time::now_nanos(),
        };
        put_varint(out, 2, timestamp as u64);
        if let Some(t) = text(state, TABLE, Key::Type, keys)? {
            put_bytes(out, 3, t);
        }
        let logger = text(state, TABLE, Key::Logger, keys)?;
        put_bytes(
            out,
            4,
            logger.filter(|_| !restricted).unwrap_or(&defaults.logger),
        );
        if let Some(s) = number(state, TABLE, Key::Severity, keys)? {
            put_varint(out, 5, s as i32 as i64 as u64);
        }
        if let Some(p) = text(state, TABLE, Key::Payload, keys)? {
            put_bytes(out, 6, p);
        }
        if let Some(e) = text(state, TABLE, Key::EnvVersion, keys)? {
            put_bytes(out, 7, e);
        }
        let pid = number(state, TABLE, Key::Pid, keys)?;
        let pid = pid
            .filter(|_| !restricted)
            .map_or(defaults.pid, |n| n as i32);
        put_varint(out, 8, pid as i64 as u64);
        let hostname = text(state, TABLE, Key::Hostname, keys)?;
        put_bytes(
            out,
            9,
            hostname
                .filter(|_| !restricted)
                .unwrap_or(&defaults.hostname),
        );
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
                    field.clear();
                    put_bytes(field, 1, borrowed(state, -2));
                    field_values(state, keys, field)?;
                    ffi::lua_pop(state, 1);
                    put_bytes(out, 10, field);
                }
            }
            _ => return None,
        }
        Some(Encoded { timestamp })
    }
}

/// The fast path from mlua: the table's encoding in `scratch.message`, or `None` when the
/// general converter must do it.
pub fn encode_table(
    lua: &Lua,
    table: &Table,
    defaults: &Defaults,
    scratch: &mut Scratch,
) -> Option<Encoded> {
    let mut out = None;
    // SAFETY: the closure only reads the table mlua pushed as argument 1, with raw (non-erroring
    // except on memory) API calls, inside the protected call exec_raw provides; the stack is
    // restored by exec_raw's guard.
    let done = unsafe {
        lua.exec_raw::<()>(table, |state| {
            out = encode(state, defaults, Keys::Literal, Headers::FromTable, scratch);
        })
    };
    done.ok()?;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, MessageView};
    use crate::sandbox::heka;

    fn defaults() -> Defaults {
        Defaults {
            logger: b"input.t".to_vec(),
            hostname: b"h".to_vec(),
            pid: 7,
        }
    }

    /// Both converters on the same table: the fast path's bytes (`None`: it declined) and the
    /// general converter's message.
    fn both(lua: &Lua, source: &str) -> (Option<Vec<u8>>, Result<Message, String>) {
        let table: Table = lua.load(source).eval().unwrap();
        let keys = heka::Keys::new(lua).unwrap();
        let mut scratch = Scratch::default();
        let fast =
            encode_table(lua, &table, &defaults(), &mut scratch).map(|_| scratch.message.clone());
        (fast, heka::message_from_table(&table, &defaults(), &keys))
    }

    #[test]
    fn fast_path_encodes_what_the_general_converter_builds() {
        let lua = Lua::new();
        let cases = [
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Type = "t"}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 1e18, Type = "bench", Logger = "gen", Payload = string.rep("x", 200),
                Severity = 3, Pid = 9, Hostname = "x", EnvVersion = "1"}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = -5, Severity = -1, Pid = -2}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {user = "alice"}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {n = 2.5}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {ok = true}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {no = false}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {names = {"a", "b"}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {nums = {1, 2.5, -3}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {one = {1}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {flags = {true, false, true}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {flag = {true}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {user = "alice", n = 2, ok = true, list = {"x"}}}"#,
            r#"{Uuid = "0123456789abcdef", Timestamp = 5, Fields = {}}"#,
        ];
        for case in cases {
            let (fast, general) = both(&lua, case);
            let (fast, general) = (fast.expect(case), general.unwrap());
            if general.fields.len() <= 1 {
                assert_eq!(fast, general.to_bytes(), "{case}");
            } else {
                // Both follow Lua's table order; compare fields as sets to not depend on it.
                let mut decoded = Message::from(&MessageView::parse(&fast).unwrap());
                let mut general = general;
                decoded.fields.sort_by(|a, b| a.name.cmp(&b.name));
                general.fields.sort_by(|a, b| a.name.cmp(&b.name));
                assert_eq!(decoded, general, "{case}");
                assert_eq!(fast.len(), general.encoded_len(), "{case}");
            }
        }
    }

    #[test]
    fn defaults_fill_the_headers_the_table_leaves_out() {
        let lua = Lua::new();
        let (fast, _) = both(&lua, r#"{Type = "t"}"#);
        let m = Message::from(&MessageView::parse(&fast.unwrap()).unwrap());
        assert_eq!(m.logger.as_deref(), Some(&b"input.t"[..]));
        assert_eq!(m.hostname.as_deref(), Some(&b"h"[..]));
        assert_eq!(m.pid, Some(7));
        assert!(m.timestamp > 0);
    }

    #[test]
    fn restricted_headers_are_blinks() {
        let lua = Lua::new();
        let table: Table = lua
            .load(r#"{Uuid = "0123456789abcdef", Timestamp = 5, Logger = "me", Hostname = "x", Pid = 1, Type = "t"}"#)
            .eval()
            .unwrap();
        let mut scratch = Scratch::default();
        // SAFETY: as in `encode_table`: the table is argument 1 of exec_raw's protected call.
        let encoded = unsafe {
            let mut out = None;
            lua.exec_raw::<()>(&table, |state| {
                out = encode(
                    state,
                    &defaults(),
                    Keys::Literal,
                    Headers::Restricted,
                    &mut scratch,
                );
            })
            .unwrap();
            out.unwrap()
        };
        let m = Message::from(&MessageView::parse(&scratch.message).unwrap());
        assert_ne!(&m.uuid, b"0123456789abcdef");
        assert_eq!(m.timestamp, encoded.timestamp);
        assert_ne!(m.timestamp, 5);
        assert_eq!(m.logger.as_deref(), Some(&b"input.t"[..]));
        assert_eq!(m.hostname.as_deref(), Some(&b"h"[..]));
        assert_eq!(m.pid, Some(7));
        assert_eq!(m.r#type.as_deref(), Some(&b"t"[..]));
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
            r#"{Fields = {a = {true, 1}}}"#,
            r#"{Fields = {[1.5] = "x"}}"#,
            r#"{Fields = "no"}"#,
        ] {
            assert!(both(&lua, case).0.is_none(), "{case}");
        }
    }
}
