//! `inject_message(table)` as a raw Lua C function, for the common shape of message table.
//!
//! Injecting runs for every message an input produces, and mlua's callback path (argument
//! conversion, a protected call around the table read) cost more than the rest of the inject.
//! This C closure reads the table at argument 1 with pre-interned keys held as upvalues (so no
//! Lua allocation, and no Lua error, can happen while Rust values are alive), builds the message,
//! and appends it. It declines — returns false — for any other argument or table shape, and the
//! Lua wrapper then calls the general `inject_message`. Errors are raised as plain strings with
//! the plugin's `file:line:`, after every Rust value is gone.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua};

use super::api::{Host, SharedHost};
use super::raw_table::{self, KEY_NAMES, Keys};
use crate::checkpoint::CheckpointValue;

const HOST: c_int = 1;
const FIRST_KEY: c_int = 2;

/// How the fast path ended.
enum Outcome {
    Declined,
    Done,
    /// Failed; the message (at most 255 bytes) is in the caller's buffer.
    Failed(usize),
}

/// The checkpoint argument: a number or a string, else none.
unsafe fn checkpoint_arg(state: *mut lua_State) -> Option<CheckpointValue> {
    unsafe {
        match ffi::lua_type(state, 2) {
            ffi::LUA_TNUMBER => Some(CheckpointValue::Number(ffi::lua_tonumber(state, 2))),
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let ptr = ffi::lua_tolstring(state, 2, &mut len);
                let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
                Some(CheckpointValue::String(
                    String::from_utf8_lossy(bytes).into_owned(),
                ))
            }
            _ => None,
        }
    }
}

/// Everything with a destructor lives and dies in here.
unsafe fn inject(state: *mut lua_State, host: &RefCell<Host>, error: &mut [u8; 255]) -> Outcome {
    let Ok(mut host) = host.try_borrow_mut() else {
        return Outcome::Declined;
    };
    // SAFETY: the table is argument 1 (checked by the caller); keys come from upvalues.
    let Some(message) =
        (unsafe { raw_table::read(state, host.defaults(), Keys::Upvalues(FIRST_KEY)) })
    else {
        return Outcome::Declined;
    };
    let checkpoint = unsafe { checkpoint_arg(state) };
    match host.inject_from_plugin(message, checkpoint) {
        Ok(()) => Outcome::Done,
        Err(e) => {
            let text = format!("inject_message() {e}");
            let len = text.len().min(error.len());
            error[..len].copy_from_slice(&text.as_bytes()[..len]);
            Outcome::Failed(len)
        }
    }
}

unsafe extern "C-unwind" fn fast_inject(state: *mut lua_State) -> c_int {
    unsafe {
        if ffi::lua_type(state, 1) != ffi::LUA_TTABLE {
            ffi::lua_pushboolean(state, 0);
            return 1;
        }
        let host =
            &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(HOST)).cast::<RefCell<Host>>());
        let top = ffi::lua_gettop(state);
        let mut error = [0u8; 255];
        let outcome = inject(state, host, &mut error);
        ffi::lua_settop(state, top);
        match outcome {
            Outcome::Declined => ffi::lua_pushboolean(state, 0),
            Outcome::Done => ffi::lua_pushboolean(state, 1),
            Outcome::Failed(len) => {
                // Level 2: the plugin's line, past the Lua wrapper that called us.
                ffi::luaL_where(state, 2);
                ffi::lua_pushlstring(state, error.as_ptr().cast(), len);
                ffi::lua_concat(state, 2);
                ffi::lua_error(state);
            }
        }
        1
    }
}

/// Puts the fast path in front of the general `inject_message` global.
pub fn install(lua: &Lua, host: &SharedHost) -> mlua::Result<()> {
    let ptr = Rc::as_ptr(host).cast_mut().cast::<c_void>();
    // SAFETY: the closure's first upvalue points at the host, which the sandbox keeps alive for
    // as long as the Lua state (see `Sandbox`); the others are the key strings.
    let fast: Function = unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_pushlightuserdata(state, ptr);
            for key in KEY_NAMES {
                ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
            }
            ffi::lua_pushcclosure(state, fast_inject, 1 + KEY_NAMES.len() as c_int);
        })
    }?;
    let general: Function = lua.globals().raw_get("inject_message")?;
    lua.load(
        r#"
        local fast, general = ...
        inject_message = function(message, checkpoint)
            if not fast(message, checkpoint) then return general(message, checkpoint) end
        end
        "#,
    )
    .set_name("=blink")
    .call::<()>((fast, general))
}
