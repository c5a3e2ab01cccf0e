//! Heka messages between Lua and Rust: the tables plugins inject, encode and decode.
//!
//! Tables follow lua_sandbox: header keys `Uuid Timestamp Type Logger Severity Payload EnvVersion
//! Pid Hostname`, and `Fields` either as a map `{name = value}` (string → STRING, number → DOUBLE,
//! boolean → BOOL, an array of one of those → repeated values, or `{value = …, value_type = n,
//! representation = "…"}`), or as a list of `{name = …, value = …, value_type = …,
//! representation = …}`, the form `decode_message` returns.

use mlua::{Lua, LuaString, Table, Value};

use crate::message::{Field, FieldValues, Message, MessageView, Value as HekaValue, ValueType};

/// Table keys as Lua strings made once, so reading a message table does not intern its key
/// names again for every inject.
pub struct Keys {
    uuid: LuaString,
    timestamp: LuaString,
    r#type: LuaString,
    logger: LuaString,
    severity: LuaString,
    payload: LuaString,
    env_version: LuaString,
    pid: LuaString,
    hostname: LuaString,
    fields: LuaString,
    name: LuaString,
    value: LuaString,
    value_type: LuaString,
    representation: LuaString,
}

impl Keys {
    pub fn new(lua: &Lua) -> mlua::Result<Self> {
        Ok(Keys {
            uuid: lua.create_string("Uuid")?,
            timestamp: lua.create_string("Timestamp")?,
            r#type: lua.create_string("Type")?,
            logger: lua.create_string("Logger")?,
            severity: lua.create_string("Severity")?,
            payload: lua.create_string("Payload")?,
            env_version: lua.create_string("EnvVersion")?,
            pid: lua.create_string("Pid")?,
            hostname: lua.create_string("Hostname")?,
            fields: lua.create_string("Fields")?,
            name: lua.create_string("name")?,
            value: lua.create_string("value")?,
            value_type: lua.create_string("value_type")?,
            representation: lua.create_string("representation")?,
        })
    }
}

/// Headers a plugin does not set itself.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub logger: Vec<u8>,
    pub hostname: Vec<u8>,
    pub pid: i32,
}

fn bytes_of(value: &Value, what: &str) -> Result<Vec<u8>, String> {
    match value {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Integer(i) => Ok(i.to_string().into_bytes()),
        Value::Number(n) => Ok(super::lua_values::format_number(*n).into_bytes()),
        other => Err(format!(
            "{what} must be a string, not {}",
            super::lua_values::lua_type(other)
        )),
    }
}

fn number_of(value: &Value, what: &str) -> Result<f64, String> {
    match value {
        Value::Integer(i) => Ok(*i as f64),
        Value::Number(n) => Ok(*n),
        Value::String(s) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("{what} must be a number")),
        other => Err(format!(
            "{what} must be a number, not {}",
            super::lua_values::lua_type(other)
        )),
    }
}

/// Builds a message from a plugin's table; missing identity headers come from `defaults`.
pub fn message_from_table(
    table: &Table,
    defaults: &Defaults,
    keys: &Keys,
) -> Result<Message, String> {
    let get = |key: &LuaString| table.raw_get::<Value>(key).map_err(|e| e.to_string());
    let uuid = match get(&keys.uuid)? {
        Value::Nil => crate::message::new_uuid(),
        Value::String(s) => {
            parse_uuid(&s.as_bytes()).ok_or("Uuid must be 16 bytes or 36 characters of text")?
        }
        other => {
            return Err(format!(
                "Uuid must be a string, not {}",
                super::lua_values::lua_type(&other)
            ));
        }
    };
    let timestamp = match get(&keys.timestamp)? {
        Value::Nil => crate::time::now_nanos(),
        v => number_of(&v, "Timestamp")? as i64,
    };
    let mut m = Message::new(uuid, timestamp);
    let text = |key: &LuaString, what: &str| -> Result<Option<Vec<u8>>, String> {
        match get(key)? {
            Value::Nil => Ok(None),
            v => bytes_of(&v, what).map(Some),
        }
    };
    m.r#type = text(&keys.r#type, "Type")?;
    m.logger = text(&keys.logger, "Logger")?.or_else(|| Some(defaults.logger.clone()));
    m.payload = text(&keys.payload, "Payload")?;
    m.env_version = text(&keys.env_version, "EnvVersion")?;
    m.hostname = text(&keys.hostname, "Hostname")?.or_else(|| Some(defaults.hostname.clone()));
    m.severity = match get(&keys.severity)? {
        Value::Nil => None,
        v => Some(number_of(&v, "Severity")? as i32),
    };
    m.pid = match get(&keys.pid)? {
        Value::Nil => Some(defaults.pid),
        v => Some(number_of(&v, "Pid")? as i32),
    };
    match get(&keys.fields)? {
        Value::Nil => {}
        Value::Table(fields) => m.fields = fields_from_table(&fields, keys)?,
        other => {
            return Err(format!(
                "Fields must be a table, not {}",
                super::lua_values::lua_type(&other)
            ));
        }
    }
    Ok(m)
}

fn parse_uuid(bytes: &[u8]) -> Option<[u8; 16]> {
    if let Ok(raw) = <[u8; 16]>::try_from(bytes) {
        return Some(raw);
    }
    if bytes.len() != 36 {
        return None;
    }
    let hex: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

fn fields_from_table(fields: &Table, keys: &Keys) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    if fields.raw_len() > 0 {
        // The list form: {{name = …, value = …, value_type = …, representation = …}, …}
        for entry in fields.sequence_values::<Value>() {
            let Value::Table(entry) = entry.map_err(|e| e.to_string())? else {
                return Err("Fields list entries must be tables".into());
            };
            let name = match entry
                .raw_get::<Value>(&keys.name)
                .map_err(|e| e.to_string())?
            {
                Value::String(s) => s.as_bytes().to_vec(),
                _ => return Err("field name must be a string".into()),
            };
            out.push(field_from_spec(name, &entry, keys)?);
        }
        return Ok(out);
    }
    for pair in fields.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|e| e.to_string())?;
        let name = match name {
            Value::String(s) => s.as_bytes().to_vec(),
            _ => return Err("field name must be a string".into()),
        };
        let field = match &value {
            Value::Table(t)
                if t.raw_get::<Value>(&keys.value).map_err(|e| e.to_string())? != Value::Nil =>
            {
                field_from_spec(name, t, keys)?
            }
            _ => Field {
                values: values_of(&value, None, &name)?,
                name,
                representation: None,
            },
        };
        out.push(field);
    }
    Ok(out)
}

/// A field written as `{value = …, value_type = n, representation = "…"}`.
fn field_from_spec(name: Vec<u8>, spec: &Table, keys: &Keys) -> Result<Field, String> {
    let get = |key: &LuaString| spec.raw_get::<Value>(key).map_err(|e| e.to_string());
    let value_type = match get(&keys.value_type)? {
        Value::Nil => None,
        v => {
            let n = number_of(&v, "value_type")? as u64;
            Some(ValueType::from_wire(n).ok_or_else(|| {
                format!(
                    "field '{}': value_type {n} is not 0-4",
                    String::from_utf8_lossy(&name)
                )
            })?)
        }
    };
    let representation = match get(&keys.representation)? {
        Value::Nil => None,
        v => Some(bytes_of(&v, "representation")?),
    };
    let values = values_of(&get(&keys.value)?, value_type, &name)?;
    Ok(Field {
        name,
        representation,
        values,
    })
}

/// The Lua types a field's values may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    String,
    Number,
    Bool,
}

fn scalar(value: &Value) -> Option<Scalar> {
    match value {
        Value::String(_) => Some(Scalar::String),
        Value::Integer(_) | Value::Number(_) => Some(Scalar::Number),
        Value::Boolean(_) => Some(Scalar::Bool),
        _ => None,
    }
}

/// One value or an array of values, typed by `value_type` or by the Lua types, with
/// lua_sandbox's rules and words: every element of an array has the first one's type, a string
/// is STRING or BYTES, a number DOUBLE or INTEGER, a boolean BOOL.
fn values_of(
    value: &Value,
    value_type: Option<ValueType>,
    _name: &[u8],
) -> Result<FieldValues, String> {
    let (value, written) = as_text(value)?;
    let value = &value;
    // A userdata's text is BYTES, as lua_sandbox writes what an output function makes.
    let value_type = value_type.or(written.then_some(ValueType::Bytes));
    let (items, array): (Vec<Value>, bool) = match value {
        Value::Table(t) => (
            t.sequence_values::<Value>()
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
            true,
        ),
        v => (vec![v.clone()], false),
    };
    let type_name = |v: &Value| super::lua_values::lua_type(v);
    let Some(first) = items.first() else {
        return Err("unsupported type: nil".into());
    };
    let Some(kind) = scalar(first) else {
        return Err(if array {
            format!("unsupported array type: {}", type_name(first))
        } else {
            format!("unsupported type: {}", type_name(first))
        });
    };
    if items.iter().any(|v| scalar(v) != Some(kind)) {
        return Err("array has mixed types".into());
    }
    let value_type = match (kind, value_type) {
        (Scalar::String, None) => ValueType::String,
        (Scalar::String, Some(t @ (ValueType::String | ValueType::Bytes))) => t,
        (Scalar::Number, None) => ValueType::Double,
        (Scalar::Number, Some(t @ (ValueType::Integer | ValueType::Double))) => t,
        (Scalar::Bool, None | Some(ValueType::Bool)) => ValueType::Bool,
        (kind, Some(t)) => {
            let kind = match kind {
                Scalar::String => "string",
                Scalar::Number => "numeric",
                Scalar::Bool => "boolean",
            };
            return Err(format!("invalid {kind} value_type: {}", t as u8));
        }
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.as_bytes().to_vec(),
        _ => unreachable!("checked: every value is a string"),
    };
    let number = |v: &Value| match v {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        _ => unreachable!("checked: every value is a number"),
    };
    Ok(match value_type {
        ValueType::String => FieldValues::String(items.iter().map(text).collect()),
        ValueType::Bytes => FieldValues::Bytes(items.iter().map(text).collect()),
        ValueType::Integer => {
            FieldValues::Integer(items.iter().map(|v| number(v) as i64).collect())
        }
        ValueType::Double => FieldValues::Double(items.iter().map(number).collect()),
        ValueType::Bool => FieldValues::Bool(
            items
                .iter()
                .map(|v| matches!(v, Value::Boolean(true)))
                .collect(),
        ),
    })
}

/// A userdata that writes itself as text (an rjson document) as that text: its `__tostring`,
/// as lua_sandbox asks a module's output function for it; true if it was one.
fn as_text(value: &Value) -> Result<(Value, bool), String> {
    if let Value::UserData(u) = value
        && let Ok(metatable) = u.metatable()
        && let Ok(to_string) = metatable.get::<mlua::Function>(mlua::MetaMethod::ToString)
    {
        let text = to_string
            .call::<Value>(u.clone())
            .map_err(|e| e.to_string())?;
        return Ok((text, true));
    }
    Ok((value.clone(), false))
}

fn heka_value(lua: &Lua, value: HekaValue) -> mlua::Result<Value> {
    Ok(match value {
        HekaValue::String(s) | HekaValue::Bytes(s) => Value::String(lua.create_string(s)?),
        HekaValue::Integer(i) => Value::Number(i as f64),
        HekaValue::Double(d) => Value::Number(d),
        HekaValue::Bool(b) => Value::Boolean(b),
    })
}

/// The table `decode_message` returns.
pub fn message_to_table(lua: &Lua, m: &MessageView) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("Uuid", lua.create_string(m.uuid())?)?;
    t.raw_set("Timestamp", m.timestamp() as f64)?;
    let text = |key: &str, v: Option<&[u8]>| -> mlua::Result<()> {
        if let Some(v) = v {
            t.raw_set(key, lua.create_string(v)?)?;
        }
        Ok(())
    };
    text("Type", m.r#type())?;
    text("Logger", m.logger())?;
    text("Payload", m.payload())?;
    text("EnvVersion", m.env_version())?;
    text("Hostname", m.hostname())?;
    if let Some(severity) = m.severity_raw() {
        t.raw_set("Severity", severity)?;
    }
    if let Some(pid) = m.pid() {
        t.raw_set("Pid", pid)?;
    }
    if m.field_count() > 0 {
        let fields = lua.create_table_with_capacity(m.field_count(), 0)?;
        for (i, f) in m.fields().enumerate() {
            let entry = lua.create_table()?;
            entry.raw_set("name", lua.create_string(f.name())?)?;
            // As lua_sandbox decodes: a field that does not state its type (Heka writes none
            // for strings) has no value_type.
            if f.value_type() != crate::message::ValueType::String {
                entry.raw_set("value_type", f.value_type() as u8)?;
            }
            if let Some(r) = f.representation() {
                entry.raw_set("representation", lua.create_string(r)?)?;
            }
            let values = lua.create_table_with_capacity(f.value_count(), 0)?;
            for (j, v) in f.values().enumerate() {
                values.raw_set(j + 1, heka_value(lua, v)?)?;
            }
            entry.raw_set("value", values)?;
            fields.raw_set(i + 1, entry)?;
        }
        t.raw_set("Fields", fields)?;
    }
    Ok(t)
}
