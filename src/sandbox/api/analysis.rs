//! The API of analysis plugins: `inject_message(table)`, `add_to_payload` and `inject_payload`,
//! each spending one of the call's injects.

use mlua::{Lua, MultiValue, Table, Value};

use super::{NoResult, api_error, append_values};
use crate::message::{Field, FieldValues, Message};
use crate::sandbox::host::{restrict_headers, shared};

pub(super) fn install(lua: &Lua, no_result: &Table) -> mlua::Result<()> {
    no_result.raw_set(
        "inject_message",
        lua.create_function(|lua, message: Value| -> mlua::Result<NoResult> {
            let Value::Table(t) = message else {
                return Ok(Some(api_error(lua, "inject_message", "takes a table")));
            };
            let host = shared(lua);
            let mut host = host.borrow_mut();
            if host.inject_budget == 0 {
                let error = host.inject_count_error();
                return Ok(Some(api_error(lua, "inject_message", error)));
            }
            let result = host
                .message_of(&t)
                .and_then(|m| host.inject_from_plugin(m, None));
            Ok(result.err().map(|e| api_error(lua, "inject_message", e)))
        })?,
    )?;
    no_result.raw_set(
        "add_to_payload",
        lua.create_function(|lua, values: MultiValue| -> mlua::Result<NoResult> {
            let host = shared(lua);
            let mut host = host.borrow_mut();
            if let Err(e) = append_values(lua, &mut host.payload, &values) {
                return Ok(Some(api_error(lua, "add_to_payload", e)));
            }
            if host.payload.len() > host.config.output_cap() {
                host.payload.clear();
                return Ok(Some("output_limit exceeded".into()));
            }
            Ok(None)
        })?,
    )?;
    no_result.raw_set(
        "inject_payload",
        lua.create_function(
            |lua,
             (payload_type, payload_name, rest): (Option<String>, Option<String>, MultiValue)|
             -> mlua::Result<NoResult> {
                let host = shared(lua);
                let mut host = host.borrow_mut();
                if host.inject_budget == 0 {
                    let error = host.inject_count_error();
                    return Ok(Some(api_error(lua, "inject_payload", error)));
                }
                let mut payload = std::mem::take(&mut host.payload);
                if let Err(e) = append_values(lua, &mut payload, &rest) {
                    return Ok(Some(api_error(lua, "inject_payload", e)));
                }
                let mut m = Message::new(crate::message::new_uuid(), crate::time::now_nanos());
                m.r#type = Some(b"inject_payload".to_vec());
                m.payload = Some(payload);
                let text = |s: Option<String>, default: &str| {
                    FieldValues::String(vec![s.unwrap_or_else(|| default.into()).into_bytes()])
                };
                m.fields = vec![
                    Field::new("payload_type", text(payload_type, "txt")),
                    Field::new("payload_name", text(payload_name, "")),
                ];
                if host.config.restricted_headers {
                    restrict_headers(&mut m, &host.defaults);
                }
                let result = host.inject(&m, None);
                Ok(result.err().map(|e| api_error(lua, "inject_payload", e)))
            },
        )?,
    )?;
    Ok(())
}
