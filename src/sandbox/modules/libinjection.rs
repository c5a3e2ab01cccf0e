//! `libinjection`: SQL-injection and XSS detection with the Lua API lua_sandbox_extensions
//! generates for client9/libinjection (how `moz_security_webinj` flags request parameters):
//! `xss(s [, len])` → 1 or 0; `sqli_state()` → a state, `sqli_init(state, s [, len
//! [, flags]])`, `is_sqli(state)` → 1 or 0 (and `state.fingerprint`, `state.s`, `state.slen`,
//! `state.flags` readable), `sqli_fingerprint(state [, flags])` → the fingerprint;
//! `sqli(s [, len])` → 1 or 0 and the fingerprint; `version()`.
//!
//! The detection is the `libinjectionrs` crate, a Rust port of libinjection whose author tests
//! it against the C library's own test files and by differential fuzzing. The strings it reads
//! come from untrusted requests, so each call runs under `catch_unwind`: a fault in it ends that
//! call with an error, never Blink. Its work is linear in the input, paid from the plugin's
//! instruction limit like a pattern match.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use libinjectionrs::{SqliFlags, SqliState};
use mlua::{AnyUserData, Lua, MultiValue, Table, UserData, UserDataFields, Value};

/// The libinjection release the port follows.
const VERSION: &str = "3.10.0";

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// A state as `sqli_init` leaves it, and what `is_sqli` found.
#[derive(Default)]
struct State {
    input: Vec<u8>,
    flags: u32,
    fingerprint: String,
}

impl UserData for State {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("fingerprint", |_, s| Ok(s.fingerprint.clone()));
        fields.add_field_method_get("s", |lua, s| lua.create_string(&s.input));
        fields.add_field_method_get("slen", |_, s| Ok(s.input.len()));
        fields.add_field_method_get("flags", |_, s| Ok(s.flags));
    }
}

/// Runs the detector over `input` (paid from the budget), a fault in it an error.
fn detect<T>(
    steps: &Rc<dyn super::StepAccount>,
    lua: &Lua,
    input: &[u8],
    run: impl FnOnce() -> T,
) -> mlua::Result<T> {
    let cost = input.len() as u64 + 1;
    if steps.left() < cost {
        return Err(steps.exhausted(lua));
    }
    steps.spend(cost);
    catch_unwind(AssertUnwindSafe(run)).map_err(|_| {
        error("libinjection failed on this input (an internal fault; the input is not classified)")
    })
}

/// Argument `index` as a string, cut to `len` when a length follows it.
fn text_arg(args: &MultiValue, index: usize, function: &str) -> mlua::Result<Vec<u8>> {
    let bytes = match args.get(index - 1) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        other => {
            return Err(error(format!(
                "bad argument #{index} to '{function}' (string expected, got {})",
                other.map_or("no value", |v| v.type_name())
            )));
        }
    };
    let len = match args.get(index) {
        Some(Value::Integer(n)) => usize::try_from(*n).unwrap_or(0),
        Some(Value::Number(n)) if *n >= 0.0 => *n as usize,
        _ => bytes.len(),
    };
    Ok(bytes[..len.min(bytes.len())].to_vec())
}

fn state_arg(args: &MultiValue, function: &str) -> mlua::Result<AnyUserData> {
    match args.front() {
        Some(Value::UserData(ud)) if ud.is::<State>() => Ok(ud.clone()),
        other => Err(error(format!(
            "bad argument #1 to '{function}' (sqli state expected, got {})",
            other.map_or("no value", |v| v.type_name())
        ))),
    }
}

fn flags_arg(args: &MultiValue, index: usize) -> u32 {
    match args.get(index - 1) {
        Some(Value::Integer(n)) => *n as u32,
        Some(Value::Number(n)) => *n as u32,
        _ => 0,
    }
}

/// Whether `input` is SQL injection under `flags`, and its fingerprint.
fn sqli(input: &[u8], flags: u32) -> (bool, String) {
    let mut state = SqliState::new(input, SqliFlags::new(flags));
    let found = state.detect();
    let fingerprint = state.get_fingerprint().to_string();
    (found, fingerprint)
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let module = lua.create_table()?;
    let plain = |f| super::plain_error::wrap(lua, f);
    let steps = env.steps.clone();

    let budget = steps.clone();
    module.raw_set(
        "xss",
        plain(lua.create_function(move |lua, args: MultiValue| {
            let input = text_arg(&args, 1, "xss")?;
            let found = detect(&budget, lua, &input, || {
                libinjectionrs::detect_xss(&input).is_injection()
            })?;
            Ok(i32::from(found))
        })?)?,
    )?;
    let budget = steps.clone();
    module.raw_set(
        "sqli",
        plain(lua.create_function(move |lua, args: MultiValue| {
            let input = text_arg(&args, 1, "sqli")?;
            let (found, fingerprint) = detect(&budget, lua, &input, || sqli(&input, 0))?;
            Ok((i32::from(found), fingerprint))
        })?)?,
    )?;
    module.raw_set(
        "sqli_state",
        lua.create_function(|_, ()| Ok(State::default()))?,
    )?;
    module.raw_set(
        "sqli_init",
        plain(lua.create_function(|_, args: MultiValue| {
            let state = state_arg(&args, "sqli_init")?;
            let input = text_arg(&args, 2, "sqli_init")?;
            let mut state = state.borrow_mut::<State>()?;
            *state = State {
                input,
                flags: flags_arg(&args, 4),
                fingerprint: String::new(),
            };
            Ok(())
        })?)?,
    )?;
    let budget = steps.clone();
    module.raw_set(
        "is_sqli",
        plain(lua.create_function(move |lua, args: MultiValue| {
            let state = state_arg(&args, "is_sqli")?;
            let mut state = state.borrow_mut::<State>()?;
            let (input, flags) = (std::mem::take(&mut state.input), state.flags);
            let result = detect(&budget, lua, &input, || sqli(&input, flags));
            state.input = input;
            let (found, fingerprint) = result?;
            state.fingerprint = fingerprint;
            Ok(i32::from(found))
        })?)?,
    )?;
    let budget = steps;
    module.raw_set(
        "sqli_fingerprint",
        plain(lua.create_function(move |lua, args: MultiValue| {
            let state = state_arg(&args, "sqli_fingerprint")?;
            let mut state = state.borrow_mut::<State>()?;
            let flags = match args.get(1) {
                Some(Value::Integer(_) | Value::Number(_)) => flags_arg(&args, 2),
                _ => state.flags,
            };
            let input = std::mem::take(&mut state.input);
            let result = detect(&budget, lua, &input, || sqli(&input, flags).1);
            state.input = input;
            state.fingerprint = result?;
            Ok(state.fingerprint.clone())
        })?)?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok(VERSION))?)?;
    Ok(Some(module))
}

/// Fuzzing: both detectors over `data`, through the same guard as a plugin's call.
pub(crate) fn fuzz(data: &[u8]) {
    let lua = Lua::new();
    let steps: Rc<dyn super::StepAccount> = Rc::new(super::Unlimited);
    let _ = detect(&steps, &lua, data, || {
        libinjectionrs::detect_xss(data).is_injection()
    });
    for flags in [0, 1, 2, 4, 8, 16] {
        let _ = detect(&steps, &lua, data, || sqli(data, flags));
    }
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn flags_sql_injection_and_xss_as_the_original_does() {
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "libi");
        lua.load(
            r#"
            local sqli = "1 UNION SELECT * FROM TABLE"
            local state = libi.sqli_state()
            libi.sqli_init(state, sqli, #sqli, 0)
            assert(libi.is_sqli(state) == 1)
            assert(state.fingerprint == "1UEok", state.fingerprint)
            assert(state.slen == #sqli and state.s == sqli)

            local found, fingerprint = libi.sqli("' OR '1'='1' --")
            assert(found == 1 and fingerprint == "s&sos", fingerprint)

            libi.sqli_init(state, "hello world", 11, 0)
            assert(libi.is_sqli(state) == 0, "plain words are not SQL")
            libi.sqli_init(state, "1 UNION SELECT", 1, 0)
            assert(libi.is_sqli(state) == 0, "only the first len bytes are read")

            assert(libi.xss("');}</style><script>alert(1);</script>", 38) == 1)
            assert(libi.xss("<b>bold</b> and plain text") == 0)
            assert(type(libi.version()) == "string")

            assert(not pcall(libi.is_sqli, {}))
            assert(not pcall(libi.xss, nil))
            "#,
        )
        .exec()
        .unwrap();
    }
}
