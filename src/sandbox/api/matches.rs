//! `message_matches(expression)` (Blink's): whether the current message matches a message
//! matcher expression, the language of a cfg's `message_matcher`. A detection's suppressions
//! can then be written as the operators who keep them already write matchers
//! (`Fields[src_ip] == "10.0.0.5" && Fields[user] =~ "^svc_"`), and a plugin can route within
//! what its own matcher let in. Analysis and output plugins (those with a current message).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use mlua::{Lua, Table};

use super::SharedCurrent;
use crate::matcher::Matcher;

/// The longest expression accepted: a cfg's matcher is a line, not a document.
const MAX_EXPRESSION: usize = 4096;
/// Compiled expressions kept per plugin (a plugin uses a handful; one that makes them up per
/// message compiles each time instead of growing the cache).
const MAX_CACHED: usize = 64;

pub(super) fn install(lua: &Lua, g: &Table, current: &SharedCurrent) -> mlua::Result<()> {
    let compiled: Rc<RefCell<HashMap<String, Rc<Matcher>>>> = Rc::default();
    let current = current.clone();
    let matches = lua.create_function(move |_, expression: mlua::LuaString| {
            let bytes = expression.as_bytes();
            if bytes.len() > MAX_EXPRESSION {
                return Err(mlua::Error::runtime(format!(
                    "bad argument #1 to 'message_matches' (an expression of at most {MAX_EXPRESSION} bytes)"
                )));
            }
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                mlua::Error::runtime("bad argument #1 to 'message_matches' (not UTF-8)")
            })?;
            let cached = compiled.borrow().get(text).cloned();
            let matcher = match cached {
                Some(m) => m,
                None => {
                    let m = Rc::new(Matcher::new(text).map_err(|e| {
                        mlua::Error::runtime(format!(
                            "message_matches: {text:?}: column {}: {}",
                            e.column, e.message
                        ))
                    })?);
                    let mut cache = compiled.borrow_mut();
                    if cache.len() < MAX_CACHED {
                        cache.insert(text.to_owned(), m.clone());
                    }
                    m
                }
            };
            Ok(super::super::current::with(&current, |view| matcher.matches(view)).unwrap_or(false))
    })?;
    // Errors as a C function's: a plain message at the caller's line.
    g.raw_set(
        "message_matches",
        super::super::modules::plain_error::wrap(lua, matches)?,
    )
}
