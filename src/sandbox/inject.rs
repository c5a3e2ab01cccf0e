//! `inject_message` as a raw Lua C function, encoding the common shape of message table
//! straight into the queue.
//!
//! Injecting runs for every message an input produces, and mlua's callback path (argument
//! conversion, a protected call around the table read) cost more than the rest of the inject.
//! This C closure is the `inject_message` global itself: it encodes the table at argument 1 with
//! pre-interned keys held as upvalues (so no Lua allocation, and no Lua error, can happen while
//! Rust values are alive) and appends the bytes. For any other argument or table shape it calls
//! the general `inject_message` (an mlua function, also an upvalue), which returns an error
//! message or nil. Errors are raised as plain strings with the plugin's `file:line:`, after every
//! Rust value is gone.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua};

use super::host::{Host, SharedHost};
use super::table_encoder::{KEY_NAMES, Keys};
use crate::checkpoint::CheckpointValue;

const HOST: c_int = 1;
const GENERAL: c_int = 2;
const FIRST_KEY: c_int = 3;

/// How the fast path ended.
enum Outcome {
    Declined,
    Done,
    /// Failed; the message (at most 255 bytes) is in the caller's buffer.
    Failed(usize),
}

/// The checkpoint argument: a number or a string, else none.
///
/// # Safety
/// `state` is the running Lua state of a C function call with at least 2 stack slots in use.
unsafe fn checkpoint_arg(state: *mut lua_State) -> Option<CheckpointValue> {
    // SAFETY: per the contract; the string is copied into a `String` while index 2 holds it.
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

fn failed(error: &mut [u8; 255], text: String) -> Outcome {
    let text = format!("inject_message() {text}");
    let len = text.len().min(error.len());
    error[..len].copy_from_slice(&text.as_bytes()[..len]);
    Outcome::Failed(len)
}

/// Everything with a destructor lives and dies in here.
///
/// # Safety
/// `state` is the running state of [`fast_inject`], with the message table at index 1, the
/// checkpoint at 2, and the key strings as upvalues from `FIRST_KEY`. Nothing in here raises a
/// Lua error: every Lua call made is one that cannot fail (raw gets of interned keys, pushes
/// within the checked stack).
unsafe fn inject(state: *mut lua_State, host: &RefCell<Host>, error: &mut [u8; 255]) -> Outcome {
    let Ok(mut host) = host.try_borrow_mut() else {
        return Outcome::Declined;
    };
    let host = &mut *host;
    if let Err(e) = host.check_inject_budget() {
        return failed(error, e.to_string());
    }
    // SAFETY: the table is argument 1 (checked by the caller); keys come from upvalues.
    let encoded = unsafe { host.encode_table(state, Keys::Upvalues(FIRST_KEY)) };
    let Some(encoded) = encoded else {
        return Outcome::Declined;
    };
    // SAFETY: index 2 is the checkpoint argument (the caller set the top to 2).
    let checkpoint = unsafe { checkpoint_arg(state) };
    match host.inject_scratch(encoded.timestamp, checkpoint) {
        Ok(()) => Outcome::Done,
        Err(e) => failed(error, e.to_string()),
    }
}

/// The `inject_message` global.
///
/// # Safety
/// Called by Lua only, as the closure [`install`] made: upvalue `HOST` points at the sandbox's
/// `RefCell<Host>` (alive as long as the state), `GENERAL` is the general function, and the
/// key strings follow.
unsafe extern "C-unwind" fn fast_inject(state: *mut lua_State) -> c_int {
    // SAFETY: the host pointer is valid (above), and `inject` borrows it through the RefCell
    // (declining if it is already borrowed); every Rust value is dropped before `lua_call` or
    // `lua_error` can longjmp, since `inject` returns first and the error text is a stack array.
    unsafe {
        ffi::lua_settop(state, 2);
        let mut error = [0u8; 255];
        let outcome = if ffi::lua_type(state, 1) == ffi::LUA_TTABLE {
            let host =
                &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(HOST)).cast::<RefCell<Host>>());
            let outcome = inject(state, host, &mut error);
            ffi::lua_settop(state, 2);
            outcome
        } else {
            Outcome::Declined
        };
        match outcome {
            Outcome::Done => 0,
            Outcome::Declined => {
                // The general function returns nil or an error message.
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(GENERAL));
                ffi::lua_insert(state, 1);
                ffi::lua_call(state, 2, 1);
                if ffi::lua_isnil(state, -1) != 0 {
                    return 0;
                }
                // Level 1: the plugin's line that called inject_message.
                ffi::luaL_where(state, 1);
                ffi::lua_insert(state, -2);
                ffi::lua_concat(state, 2);
                ffi::lua_error(state)
            }
            Outcome::Failed(len) => {
                ffi::luaL_where(state, 1);
                ffi::lua_pushlstring(state, error.as_ptr().cast(), len);
                ffi::lua_concat(state, 2);
                ffi::lua_error(state)
            }
        }
    }
}

/// Replaces the `inject_message` global with the fast path, which falls back on `general`: the
/// raw mlua function behind the global (returning nil or an error message).
pub fn install(lua: &Lua, host: &SharedHost, general: Function) -> mlua::Result<()> {
    let ptr = Rc::as_ptr(host).cast_mut().cast::<c_void>();
    // SAFETY: the closure's first upvalue points at the host, which the sandbox keeps alive for
    // as long as the Lua state (see `Sandbox`); the second is the general function, the others
    // are the key strings.
    let fast: Function = unsafe {
        lua.exec_raw(general, |state| {
            ffi::lua_pushlightuserdata(state, ptr);
            ffi::lua_insert(state, 1);
            for key in KEY_NAMES {
                ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
            }
            ffi::lua_pushcclosure(state, fast_inject, 2 + KEY_NAMES.len() as c_int);
        })
    }?;
    lua.globals().raw_set("inject_message", fast)
}
