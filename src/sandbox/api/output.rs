//! The API of output plugins: `encode_message`, `update_checkpoint` and
//! `create_message_matcher`.

use mlua::{Lua, Table, UserData, UserDataMethods, Value};

use super::{api_error, one};
use crate::matcher::Matcher;
use crate::message::stream;
use crate::sandbox::current::SharedCurrent;
use crate::sandbox::host::shared;
use crate::sandbox::table_encoder;

/// A compiled matcher a plugin holds (`create_message_matcher`), with the current message.
struct LuaMatcher(Matcher, SharedCurrent);

impl UserData for LuaMatcher {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("eval", |_, this, ()| {
            Ok(crate::sandbox::current::with(&this.1, |m| this.0.matches(m)).unwrap_or(false))
        });
    }
}

pub(super) fn install(
    lua: &Lua,
    g: &Table,
    one_result: &Table,
    current: &SharedCurrent,
) -> mlua::Result<()> {
    let current = current.clone();
    one_result.raw_set(
        "encode_message",
        lua.create_function(|lua, (t, framed): (Table, Option<bool>)| {
            let host = shared(lua);
            let mut host = host.borrow_mut();
            let host = &mut *host;
            let fast = table_encoder::encode_table(lua, &t, &host.defaults, &mut host.scratch)
                .map(|_| host.scratch.message.clone());
            let encoded = fast.map_or_else(|| host.message_of(&t).map(|m| m.to_bytes()), Ok);
            let encoded = encoded.map(|bytes| {
                if framed.unwrap_or(false) {
                    let mut out = Vec::with_capacity(bytes.len() + 16);
                    stream::frame(&bytes, &mut out);
                    out
                } else {
                    bytes
                }
            });
            one(match encoded {
                Ok(bytes) => lua
                    .create_string(bytes)
                    .map(Value::String)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(api_error(lua, "encode_message", e)),
            })
        })?,
    )?;
    g.raw_set(
        "update_checkpoint",
        lua.create_function(|lua, (sequence, failures): (Option<f64>, Option<f64>)| {
            shared(lua).borrow_mut().confirm(
                sequence.unwrap_or(0.0) as u64,
                failures.unwrap_or(0.0) as u64,
            );
            Ok(())
        })?,
    )?;
    one_result.raw_set(
        "create_message_matcher",
        lua.create_function(move |lua, expression: String| {
            one(match Matcher::new(&expression) {
                Ok(m) => lua
                    .create_userdata(LuaMatcher(m, current.clone()))
                    .map(Value::UserData)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(api_error(lua, "create_message_matcher", e)),
            })
        })?,
    )?;
    Ok(())
}
