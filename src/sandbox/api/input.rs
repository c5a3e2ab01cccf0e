//! The API of input plugins: `inject_message(table | protobuf string | stream reader | nil,
//! checkpoint)`, `create_stream_reader(name)` and `is_running()`.

use mlua::{Lua, Table, Value};

use super::stream_reader::StreamReader;
use super::{NoResult, api_error};
use crate::checkpoint::CheckpointValue;
use crate::message::{Message, MessageView};
use crate::sandbox::host::{InjectError, shared};

pub(super) fn install(lua: &Lua, g: &Table, no_result: &Table) -> mlua::Result<()> {
    no_result.raw_set(
        "inject_message",
        lua.create_function(
            |lua, (message, checkpoint): (Value, Value)| -> mlua::Result<NoResult> {
                let checkpoint = checkpoint_of(&checkpoint);
                let host = shared(lua);
                let mut host = host.borrow_mut();
                let result = match message {
                    Value::Table(t) => host
                        .message_of(&t)
                        .and_then(|m| host.inject_from_plugin(m, checkpoint)),
                    Value::String(s) => {
                        let bytes = s.as_bytes();
                        MessageView::parse(&bytes)
                            .map_err(|e| InjectError::Message(e.to_string()))
                            .and_then(|view| host.inject(&Message::from(&view), checkpoint))
                    }
                    Value::UserData(u) if u.is::<StreamReader>() => {
                        match u.borrow::<StreamReader>()?.current_bytes() {
                            Some(bytes) => MessageView::parse(&bytes)
                                .map_err(|e| InjectError::Message(e.to_string()))
                                .and_then(|view| host.inject(&Message::from(&view), checkpoint)),
                            None => Err(InjectError::Message(
                                "the stream reader has no message".into(),
                            )),
                        }
                    }
                    Value::Nil => match (checkpoint, host.appender.as_ref()) {
                        (Some(cp), Some(appender)) => {
                            appender.checkpoint(cp).map_err(InjectError::from)
                        }
                        _ => Ok(()),
                    },
                    other => Err(InjectError::Message(format!(
                        "takes a table, a string or nil, not a {}",
                        crate::sandbox::lua_values::lua_type(&other)
                    ))),
                };
                Ok(result.err().map(|e| api_error(lua, "inject_message", e)))
            },
        )?,
    )?;
    super::stream_reader::install(lua, g)?;
    g.raw_set(
        "is_running",
        lua.create_function(|lua, ()| Ok(shared(lua).borrow().is_running()))?,
    )?;
    Ok(())
}

fn checkpoint_of(value: &Value) -> Option<CheckpointValue> {
    match value {
        Value::Integer(i) => Some(CheckpointValue::Number(*i as f64)),
        Value::Number(n) => Some(CheckpointValue::Number(*n)),
        Value::String(s) => Some(CheckpointValue::String(s.to_string_lossy().to_string())),
        _ => None,
    }
}
