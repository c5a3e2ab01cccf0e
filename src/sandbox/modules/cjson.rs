//! `cjson`: JSON for plugins, with lua-cjson's `decode` and `encode`.
//!
//! Objects become tables with string keys, arrays tables indexed from 1, numbers Lua numbers;
//! JSON `null` becomes `cjson.null` (a unique light value) inside arrays and is left out of
//! objects. `encode` writes a table with keys 1..n (n ≥ 1, nothing else) as an array, any other
//! table as an object (keys as strings), `cjson.null` and `nil` as `null`. Errors (bad JSON, a
//! function to encode, nesting past 1000) are raised with a message saying where.

use mlua::{LightUserData, Lua, Table, Value};

const MAX_DEPTH: usize = 1000;

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Raw functions return `(value, nil)` or `(nil, message)`; the Lua wrappers raise the message
/// as a plain string at the caller's line, as lua-cjson does (an error raised from Rust would
/// carry a traceback into every `pcall`).
const WRAPPERS: &str = r#"
local raw_decode, raw_encode, null = ...
local function decode(text)
    local v, err = raw_decode(text)
    if err then error(err, 2) end
    return v
end
local function encode(value)
    local v, err = raw_encode(value)
    if err then error(err, 2) end
    return v
end
return {decode = decode, encode = encode, null = null}
"#;

/// Opens the module (the same for every plugin kind).
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    module(lua).map(Some)
}

fn module(lua: &Lua) -> mlua::Result<Table> {
    let decode = lua.create_function(|lua, text: mlua::LuaString| {
        let decoded = serde_json::from_slice::<serde_json::Value>(&text.as_bytes())
            .map_err(|e| format!("cjson.decode: {e}"))
            .and_then(|json| to_lua(lua, &json, 0).map_err(|e| e.to_string()));
        Ok(match decoded {
            Ok(v) => (v, None),
            Err(e) => (Value::Nil, Some(e)),
        })
    })?;
    let encode = lua.create_function(|lua, value: Value| {
        Ok(match to_json(&value, 0) {
            Ok(json) => (Value::String(lua.create_string(json.to_string())?), None),
            Err(e) => (Value::Nil, Some(e)),
        })
    })?;
    lua.load(WRAPPERS)
        .set_name("=cjson")
        .call((decode, encode, null()))
}

fn to_lua(lua: &Lua, json: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("cjson.decode: nested too deeply"));
    }
    Ok(match json {
        serde_json::Value::Null => null(),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(members) => {
            let t = lua.create_table_with_capacity(0, members.len())?;
            for (k, v) in members {
                if !v.is_null() {
                    t.raw_set(k.as_str(), to_lua(lua, v, depth + 1)?)?;
                }
            }
            Value::Table(t)
        }
    })
}

fn to_json(value: &Value, depth: usize) -> Result<serde_json::Value, String> {
    if depth > MAX_DEPTH {
        return Err("cjson.encode: nested too deeply (a cycle?)".into());
    }
    Ok(match value {
        Value::Nil => serde_json::Value::Null,
        Value::LightUserData(p) if p.0.is_null() => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| format!("cjson.encode: cannot encode {n}"))?
            }
        }
        Value::String(s) => serde_json::Value::String(s.to_string_lossy()),
        Value::Table(t) => {
            let n = t.raw_len();
            let pairs: Vec<(Value, Value)> = t
                .pairs::<Value, Value>()
                .collect::<mlua::Result<_>>()
                .map_err(|e| e.to_string())?;
            if n > 0 && pairs.len() == n {
                let mut items = Vec::with_capacity(n);
                for i in 1..=n {
                    let item = t.raw_get::<Value>(i).map_err(|e| e.to_string())?;
                    items.push(to_json(&item, depth + 1)?);
                }
                serde_json::Value::Array(items)
            } else {
                let mut object = serde_json::Map::new();
                for (k, v) in pairs {
                    let key = match &k {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => crate::sandbox::lua_values::format_number(*n),
                        other => {
                            return Err(format!(
                                "cjson.encode: a {} cannot be an object key",
                                other.type_name()
                            ));
                        }
                    };
                    object.insert(key, to_json(&v, depth + 1)?);
                }
                serde_json::Value::Object(object)
            }
        }
        other => {
            return Err(format!(
                "cjson.encode: cannot encode a {}",
                other.type_name()
            ));
        }
    })
}
