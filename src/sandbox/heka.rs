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
                _ => return Err("Fields list entry has no string `name`".into()),
            };
            out.push(field_from_spec(name, &entry, keys)?);
        }
        return Ok(out);
    }
    for pair in fields.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|e| e.to_string())?;
        let name = match name {
            Value::String(s) => s.as_bytes().to_vec(),
            other => {
                return Err(format!(
                    "Fields keys must be strings, not {}",
                    super::lua_values::lua_type(&other)
                ));
            }
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

/// One value or an array of values, typed by `value_type` or by the Lua types.
fn values_of(
    value: &Value,
    value_type: Option<ValueType>,
    name: &[u8],
) -> Result<FieldValues, String> {
    let items: Vec<Value> = match value {
        Value::Table(t) => t
            .sequence_values::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        v => vec![v.clone()],
    };
    let name = String::from_utf8_lossy(name);
    let Some(first) = items.first() else {
        return Err(format!("field '{name}' has an empty array"));
    };
    let value_type = value_type.unwrap_or(match first {
        Value::String(_) => ValueType::String,
        Value::Boolean(_) => ValueType::Bool,
        Value::Integer(_) | Value::Number(_) => ValueType::Double,
        other => {
            return Err(format!(
                "field '{name}' has an unsupported value of type {}",
                super::lua_values::lua_type(other)
            ));
        }
    });
    let what = format!("field '{name}'");
    Ok(match value_type {
        ValueType::String => FieldValues::String(
            items
                .iter()
                .map(|v| bytes_of(v, &what))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::Bytes => FieldValues::Bytes(
            items
                .iter()
                .map(|v| bytes_of(v, &what))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::Integer => FieldValues::Integer(
            items
                .iter()
                .map(|v| number_of(v, &what).map(|n| n as i64))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::Double => FieldValues::Double(
            items
                .iter()
                .map(|v| number_of(v, &what))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::Bool => FieldValues::Bool(
            items
                .iter()
                .map(|v| match v {
                    Value::Boolean(b) => Ok(*b),
                    other => Err(format!(
                        "{what} mixes booleans with {}",
                        super::lua_values::lua_type(other)
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
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
    t.raw_set("Severity", m.severity())?;
    if let Some(pid) = m.pid() {
        t.raw_set("Pid", pid)?;
    }
    if m.field_count() > 0 {
        let fields = lua.create_table_with_capacity(m.field_count(), 0)?;
        for (i, f) in m.fields().enumerate() {
            let entry = lua.create_table()?;
            entry.raw_set("name", lua.create_string(f.name())?)?;
            entry.raw_set("value_type", f.value_type() as u8)?;
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
