//! The message an analysis or output plugin is looking at, and `read_message` over it as a raw
//! Lua C function.
//!
//! `read_message` runs once or more per message, so it bypasses mlua: a C closure whose upvalue
//! points at this sandbox's [`Current`], reading its arguments from the Lua stack and pushing the
//! answer straight from the message's bytes. Nothing with a destructor is alive on the Rust side
//! when it calls into Lua (a push can raise a memory error, which unwinds with `longjmp`), and
//! errors are plain Lua strings with the caller's `file:line:`, as lua_sandbox raises them.
//!
//! `read_message(name, fi, ai, true)` (zero copy) returns a reference instead of a copy, as
//! lua_sandbox does: an object that reads the field from whatever message is current each time
//! it is used (`tostring`, `add_to_payload`, `inject_payload`, a file's `write`, a Kafka
//! producer's `send`), so an encoder can hand back "the raw message" without copying it.

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use bytes::Bytes;
use mlua::Lua;
use mlua::ffi::{self, lua_State};

use crate::message::{MessageIndex, MessageView, Value, stream};

/// The current message and a scratch buffer for `read_message("framed")`.
#[derive(Default)]
pub struct Current {
    message: Option<(Bytes, MessageIndex)>,
    framed: Vec<u8>,
}

/// Shared between the sandbox (which sets the message) and the Lua closures (which read it);
/// everything runs on the sandbox's one thread, never both at once.
pub type SharedCurrent = Rc<UnsafeCell<Current>>;

pub fn new() -> SharedCurrent {
    Rc::new(UnsafeCell::new(Current::default()))
}

/// Replaces the current message.
pub fn set(current: &SharedCurrent, message: Option<(Bytes, MessageIndex)>) {
    // SAFETY: single-threaded, and no Lua code (the only other user) is running now.
    unsafe { (*current.get()).message = message };
}

/// Takes the current message out, leaving none.
pub fn take(current: &SharedCurrent) -> Option<Bytes> {
    // SAFETY: as `set`.
    unsafe { (*current.get()).message.take() }.map(|(bytes, _)| bytes)
}

/// Runs `f` on a view of the current message, if there is one.
pub fn with<R>(current: &SharedCurrent, f: impl FnOnce(&MessageView) -> R) -> Option<R> {
    // SAFETY: shared read on the sandbox's thread; see `set`.
    let message = unsafe { &(*current.get()).message };
    message
        .as_ref()
        .map(|(bytes, index)| f(&MessageView::with_index(bytes, index)))
}

/// What `read_message` pushes; byte strings point into the message or the scratch buffer.
enum Answer {
    Nil,
    Number(f64),
    Bool(bool),
    Bytes(*const u8, usize),
    Unknown,
}

fn answer_of(value: Option<Value>) -> Answer {
    match value {
        None => Answer::Nil,
        Some(Value::String(s) | Value::Bytes(s)) => Answer::Bytes(s.as_ptr(), s.len()),
        Some(Value::Integer(i)) => Answer::Number(i as f64),
        Some(Value::Double(d)) => Answer::Number(d),
        Some(Value::Bool(b)) => Answer::Bool(b),
    }
}

fn text(s: Option<&[u8]>) -> Answer {
    s.map_or(Answer::Nil, |s| Answer::Bytes(s.as_ptr(), s.len()))
}

impl Current {
    fn read(&mut self, name: &[u8], fi: usize, ai: usize) -> Answer {
        let Some((bytes, index)) = &self.message else {
            return Answer::Nil;
        };
        let m = MessageView::with_index(bytes, index);
        match name {
            b"Uuid" => Answer::Bytes(m.uuid().as_ptr(), 16),
            b"Type" => text(m.r#type()),
            b"Logger" => text(m.logger()),
            b"Payload" => text(m.payload()),
            b"EnvVersion" => text(m.env_version()),
            b"Hostname" => text(m.hostname()),
            b"Timestamp" => Answer::Number(m.timestamp() as f64),
            b"Severity" => Answer::Number(m.severity() as f64),
            b"Pid" => m.pid().map_or(Answer::Nil, |p| Answer::Number(p as f64)),
            b"raw" => Answer::Bytes(m.raw().as_ptr(), m.raw().len()),
            b"size" => Answer::Number(m.raw().len() as f64),
            b"framed" => {
                self.framed.clear();
                stream::frame(m.raw(), &mut self.framed);
                Answer::Bytes(self.framed.as_ptr(), self.framed.len())
            }
            _ => match name
                .strip_prefix(b"Fields[")
                .and_then(|rest| rest.strip_suffix(b"]"))
            {
                Some(field) => answer_of(m.field_value(field, fi, ai)),
                None => Answer::Unknown,
            },
        }
    }
}

/// `read_message(name, fi, ai)` of `message` as a Lua value (a stream reader's
/// `read_message`, which is not on the per-message path).
pub fn read_value(
    lua: &Lua,
    message: (Bytes, MessageIndex),
    name: &[u8],
    fi: usize,
    ai: usize,
) -> mlua::Result<mlua::Value> {
    let mut current = Current {
        message: Some(message),
        framed: Vec::new(),
    };
    Ok(match current.read(name, fi, ai) {
        Answer::Nil => mlua::Value::Nil,
        Answer::Number(n) => mlua::Value::Number(n),
        Answer::Bool(b) => mlua::Value::Boolean(b),
        // SAFETY: the pointer and length are of bytes inside `current` (the message or its
        // scratch buffer), alive until the end of this function.
        Answer::Bytes(p, len) => {
            mlua::Value::String(lua.create_string(unsafe { std::slice::from_raw_parts(p, len) })?)
        }
        Answer::Unknown => return Err(mlua::Error::runtime("read_message() invalid field name")),
    })
}

/// An optional index argument: a number ≥ 0, else 0 (nil or absent) or `None` (negative).
///
/// # Safety
/// `state` is the running Lua state of a C function call; `arg` may be any index (an absent
/// argument reads as none).
unsafe fn index_arg(state: *mut lua_State, arg: c_int) -> Option<usize> {
    // SAFETY: per the contract; lua_type and lua_tointeger accept any acceptable index.
    unsafe {
        if ffi::lua_type(state, arg) != ffi::LUA_TNUMBER {
            return Some(0);
        }
        usize::try_from(ffi::lua_tointeger(state, arg)).ok()
    }
}

/// Raises `read_message() <prefix><middle><suffix>` at the caller's position.
///
/// # Safety
/// `state` is the running Lua state of a C function call, with room for 4 more stack slots
/// (Lua guarantees LUA_MINSTACK = 20 to a C function), and no Rust value with a destructor is
/// alive in the caller's frames: `lua_error` longjmps over them.
unsafe fn raise(state: *mut lua_State, prefix: &str, middle: &[u8], suffix: &str) -> ! {
    // SAFETY: per the contract; the strings are copied by lua_pushlstring before the raise.
    unsafe {
        ffi::luaL_where(state, 1);
        ffi::lua_pushlstring(state, prefix.as_ptr().cast(), prefix.len());
        ffi::lua_pushlstring(state, middle.as_ptr().cast(), middle.len());
        ffi::lua_pushlstring(state, suffix.as_ptr().cast(), suffix.len());
        ffi::lua_concat(state, 4);
        ffi::lua_error(state)
    }
}

/// The fields a zero-copy reference may name (lua_sandbox's): byte strings only.
fn zero_copy_field(name: &[u8]) -> bool {
    matches!(
        name,
        b"Uuid"
            | b"Type"
            | b"Logger"
            | b"Payload"
            | b"EnvVersion"
            | b"Hostname"
            | b"raw"
            | b"framed"
    ) || (name.len() >= 8 && name.starts_with(b"Fields[") && name.ends_with(b"]"))
}

/// `read_message(name, field_index, array_index, zero_copy)`.
///
/// # Safety
/// Called by Lua only, as the closure [`install_read_message`] made: upvalue 1 is a pointer to
/// the sandbox's `UnsafeCell<Current>`, alive for as long as the state; upvalue 2 makes
/// zero-copy references.
unsafe extern "C-unwind" fn read_message(state: *mut lua_State) -> c_int {
    // SAFETY: the upvalue is valid (above) and nothing else touches `Current` while Lua runs on
    // this thread, so the `&mut` is unique; `name` is a Lua string kept alive by the stack
    // while it is read; `Answer::Bytes` points into the current message, which stays put until
    // `lua_pushlstring` has copied it; `raise` runs with no Rust destructor pending (the borrowed
    // slices own nothing).
    unsafe {
        let cell =
            ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<UnsafeCell<Current>>();
        let current = &mut *(*cell).get();
        let mut len = 0usize;
        let name = ffi::lua_tolstring(state, 1, &mut len);
        if name.is_null() {
            raise(
                state,
                "read_message() bad argument #1 (string expected)",
                b"",
                "",
            );
        }
        let name = std::slice::from_raw_parts(name.cast::<u8>(), len);
        let (Some(fi), Some(ai)) = (index_arg(state, 2), index_arg(state, 3)) else {
            ffi::lua_pushnil(state);
            return 1;
        };
        // Most calls pass one to three arguments: counting them is cheaper than reading a
        // fourth that is not there.
        if ffi::lua_gettop(state) >= 4 && ffi::lua_toboolean(state, 4) != 0 {
            if !zero_copy_field(name) {
                raise(
                    state,
                    "read_message() field: '",
                    name,
                    "' not supported/recognized for zero copy",
                );
            }
            // make_reference(name, fi, ai): Lua code, called with the arguments as given.
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
            ffi::lua_pushvalue(state, 1);
            ffi::lua_pushinteger(state, fi as ffi::lua_Integer);
            ffi::lua_pushinteger(state, ai as ffi::lua_Integer);
            ffi::lua_call(state, 3, 1);
            return 1;
        }
        match current.read(name, fi, ai) {
            Answer::Nil => ffi::lua_pushnil(state),
            Answer::Number(n) => ffi::lua_pushnumber(state, n),
            Answer::Bool(b) => ffi::lua_pushboolean(state, b as c_int),
            Answer::Bytes(ptr, len) => {
                ffi::lua_pushlstring(state, ptr.cast(), len);
            }
            Answer::Unknown => raise(
                state,
                "read_message() field: '",
                name,
                "' not supported/recognized",
            ),
        }
        1
    }
}

/// Zero-copy references: a table `{name, fi, ai}` whose metatable reads the field again on
/// each `tostring`. Returns the maker, a setter for the `read_message` it reads with, and the
/// metatable (which Rust code recognises references by).
const ZERO_COPY: &str = r#"
local setmetatable = setmetatable
local read
local mt = {__metatable = "read_message zero copy"}
mt.__tostring = function(ref) return read(ref[1], ref[2], ref[3]) end
return function(name, fi, ai) return setmetatable({name, fi, ai}, mt) end,
       function(f) read = f end,
       mt
"#;

/// The registry key of the zero-copy references' metatable.
pub const ZERO_COPY_METATABLE: &str = "blink.read_message_zc";

/// The text of `value` if it is a zero-copy reference: `Some(None)` when its field is absent
/// from the current message, `None` when `value` is no reference.
pub fn zero_copy_text(
    lua: &Lua,
    value: &mlua::Value,
) -> mlua::Result<Option<Option<mlua::LuaString>>> {
    let mlua::Value::Table(t) = value else {
        return Ok(None);
    };
    let Some(mt) = t.metatable() else {
        return Ok(None);
    };
    let ours: mlua::Table = lua.named_registry_value(ZERO_COPY_METATABLE)?;
    if mt != ours {
        return Ok(None);
    }
    let tostring: mlua::Function = ours.raw_get("__tostring")?;
    tostring
        .call::<Option<mlua::LuaString>>(t.clone())
        .map(Some)
}

/// Makes `read_message` a global of `lua` reading `current`.
pub fn install_read_message(lua: &Lua, current: &SharedCurrent) -> mlua::Result<()> {
    let (make, set_read, metatable): (mlua::Function, mlua::Function, mlua::Table) = lua
        .load(ZERO_COPY)
        .set_name("=[read_message zero copy]")
        .call(())?;
    lua.set_named_registry_value(ZERO_COPY_METATABLE, metatable)?;
    let ptr = Rc::as_ptr(current).cast_mut().cast::<c_void>();
    // SAFETY: the closure's upvalue points at `current`, which the sandbox keeps alive for as
    // long as the Lua state (the state is dropped first; see `Sandbox`); `make` is on the stack
    // (exec_raw pushed it) when it becomes upvalue 2.
    let read: mlua::Function = unsafe {
        lua.exec_raw(make, |state| {
            ffi::lua_pushlightuserdata(state, ptr);
            ffi::lua_pushvalue(state, -2);
            ffi::lua_pushcclosure(state, read_message, 2);
            ffi::lua_pushvalue(state, -1);
            ffi::lua_setfield(state, ffi::LUA_GLOBALSINDEX, c"read_message".as_ptr());
            ffi::lua_remove(state, -2); // `make`: the closure alone is returned
        })
    }?;
    set_read.call::<()>(read)
}
