//! Host functions whose errors read as a C module's do: a plain string, prefixed with the
//! plugin's line that made the call (`luaL_error`'s `chunk:line:`).
//!
//! mlua raises a Rust function's error as a userdata carrying a traceback, which a plugin's
//! `pcall` would hand over as is. [`wrap`] puts a small C function in front that calls the Rust
//! one protected and re-raises its message as a string, with the position of the calling Lua
//! function. Being a C function, it keeps the caller's frame even when the call is a tail call
//! (`return g:match(s)`), as LPeg's own functions do; and it costs no Lua call.

use std::ffi::c_int;

use mlua::{Function, Lua, ffi};

/// `f` behind the plain-error C function.
pub fn wrap(lua: &Lua, f: Function) -> mlua::Result<Function> {
    // SAFETY: `f` is pushed by mlua; the closure replaces it with one C closure holding it as
    // its upvalue, which mlua then returns.
    unsafe {
        lua.exec_raw::<Function>(f, |state| {
            ffi::lua_pushcclosure(state, call_plain, 1);
        })
    }
}

/// Calls upvalue 1 with the arguments; on error raises the plain message at the caller's line.
unsafe extern "C-unwind" fn call_plain(state: *mut ffi::lua_State) -> c_int {
    // SAFETY (whole function): standard Lua C API use on the running state. No Rust value
    // that owns memory is alive when `lua_error` jumps out.
    unsafe {
        let nargs = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        if ffi::lua_pcall(state, nargs, ffi::LUA_MULTRET, 0) == 0 {
            return ffi::lua_gettop(state);
        }
        ffi::lua_checkstack(state, 3);
        if ffi::lua_type(state, -1) != ffi::LUA_TSTRING
            && ffi::luaL_callmeta(state, -1, c"__tostring".as_ptr()) == 0
        {
            ffi::lua_pushstring(state, c"(error object is not a string)".as_ptr());
        }
        let mut len = 0usize;
        let text = ffi::lua_tolstring(state, -1, &mut len);
        let (start, end) = if text.is_null() {
            (0, 0)
        } else {
            plain_span(std::slice::from_raw_parts(text.cast::<u8>(), len))
        };
        ffi::luaL_where(state, 1);
        ffi::lua_pushlstring(state, text.add(start).cast(), end - start);
        ffi::lua_concat(state, 2);
        ffi::lua_error(state)
    }
}

/// The part of mlua's error text that is the message: without `callback error: ` and
/// `runtime error: ` in front and the stack traceback after.
fn plain_span(text: &[u8]) -> (usize, usize) {
    let mut start = 0;
    loop {
        let rest = &text[start..];
        if let Some(p) = [&b"callback error: "[..], b"runtime error: "]
            .iter()
            .find(|p| rest.starts_with(p))
        {
            start += p.len();
        } else {
            break;
        }
    }
    let marker = b"\nstack traceback:";
    let end = text[start..]
        .windows(marker.len())
        .position(|w| w == marker)
        .map_or(text.len(), |p| start + p);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_plain_strings_at_the_calling_line_even_from_a_tail_call() {
        let lua = Lua::new();
        let raw = lua
            .create_function(|_, fail: bool| {
                if fail {
                    Err::<i32, _>(mlua::Error::runtime("bad input"))
                } else {
                    Ok(7)
                }
            })
            .unwrap();
        lua.globals().set("f", wrap(&lua, raw).unwrap()).unwrap();
        lua.load(
            r#"
            assert(f(false) == 7)
            local ok, e = pcall(function()
                local x = f(true)
                return x
            end)
            assert(e == "t:4: bad input", e)
            ok, e = pcall(function()
                return f(true)
            end)
            assert(e == "t:9: bad input", "a tail call keeps the caller: " .. e)
            ok, e = pcall(f, true)
            assert(e == "bad input", "called from C: no position, as luaL_error")
        "#,
        )
        .set_name("=t")
        .exec()
        .unwrap();
    }

    #[test]
    fn the_message_is_cut_out_of_mluas_text() {
        let text = b"callback error: runtime error: no\nstack traceback:\n\t[C]: in ?";
        let (s, e) = plain_span(text);
        assert_eq!(&text[s..e], b"no");
        assert_eq!(plain_span(b"plain"), (0, 5));
    }
}
