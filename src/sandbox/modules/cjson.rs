//! `cjson`: JSON for plugins, with lua-cjson's `decode` and `encode`.
//!
//! Objects become tables with string keys (set in the text's order, as lua-cjson sets them),
//! arrays tables indexed from 1, numbers Lua numbers; JSON `null` becomes `cjson.null` (a
//! unique light value) inside arrays and is left out of objects. `encode` writes what
//! lua-cjson writes: a table with keys 1..n (n ≥ 1, nothing else) as an array, any other table
//! as an object in the table's own iteration order, numbers as Lua prints them (`%.14g`), `/`
//! escaped as `\/`; `cjson.null` and `nil` as `null`. Errors (bad JSON, a function to encode,
//! nesting past 1000) are raised with a message saying where, encoding errors in lua-cjson's
//! words (`Cannot serialise function: type not supported`).

use mlua::{LightUserData, Lua, Table, Value};

const MAX_DEPTH: usize = 1000;

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Opens the module (the same for every plugin kind).
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    module(lua).map(Some)
}

fn module(lua: &Lua) -> mlua::Result<Table> {
    let decode = lua.create_function(|lua, text: mlua::LuaString| {
        let bytes = text.as_bytes();
        let mut reader = serde_json::Deserializer::from_slice(&bytes);
        let decoded =
            serde::de::DeserializeSeed::deserialize(LuaSeed { lua, depth: 0 }, &mut reader)
                .and_then(|v| reader.end().map(|()| v))
                .map_err(|e| format!("cjson.decode: {e}"));
        decoded.map_err(mlua::Error::runtime)
    })?;
    let encode = lua.create_function(|lua, value: Value| {
        let mut out = Vec::new();
        encode_into(&mut out, &value, 0).map_err(mlua::Error::runtime)?;
        lua.create_string(out)
    })?;
    // Errors are plain strings at the caller's line, as lua-cjson raises them.
    let cjson = lua.create_table()?;
    cjson.raw_set("decode", super::plain_error::wrap(lua, decode)?)?;
    cjson.raw_set("encode", super::plain_error::wrap(lua, encode)?)?;
    cjson.raw_set("null", null())?;
    Ok(cjson)
}

/// Decodes one JSON value straight into Lua values: object members are set in the order the
/// text has them, as lua-cjson does (a table's iteration order, and so what `encode` writes
/// back, follows from it).
struct LuaSeed<'l> {
    lua: &'l Lua,
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for LuaSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for LuaSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Boolean(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        self.lua
            .create_string(s)
            .map(Value::String)
            .map_err(E::custom)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(null())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        use serde::de::Error;
        let t = self.nested()?;
        let mut i = 0;
        while let Some(v) = seq.next_element_seed(self.inner())? {
            i += 1;
            t.raw_set(i, v).map_err(A::Error::custom)?;
        }
        Ok(Value::Table(t))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        use serde::de::Error;
        let t = self.nested()?;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let v = map.next_value_seed(self.inner())?;
            // null members are left out (lua_sandbox's cjson).
            if !matches!(v, Value::LightUserData(p) if p.0.is_null()) {
                let key = self
                    .lua
                    .create_string(key.as_bytes())
                    .map_err(A::Error::custom)?;
                t.raw_set(key, v).map_err(A::Error::custom)?;
            }
        }
        Ok(Value::Table(t))
    }
}

impl LuaSeed<'_> {
    fn inner(&self) -> Self {
        LuaSeed {
            lua: self.lua,
            depth: self.depth + 1,
        }
    }

    fn nested<E: serde::de::Error>(&self) -> Result<Table, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("nested too deeply"));
        }
        self.lua.create_table().map_err(E::custom)
    }
}

/// lua-cjson's encoding: numbers as Lua prints them (`%.14g`), strings with `"`, `\\`, `/`
/// and control characters escaped, a table with only the keys 1..n as an array, any other as
/// an object whose members follow the table's own order.
fn encode_into(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("Cannot serialise, excessive nesting ({depth})"));
    }
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // Lua 5.1 numbers are doubles (mlua hands whole ones over as integers).
        Value::Integer(i) => {
            out.extend_from_slice(crate::sandbox::lua_values::format_number(*i as f64).as_bytes())
        }
        Value::Number(n) => {
            if !n.is_finite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
            out.extend_from_slice(crate::sandbox::lua_values::format_number(*n).as_bytes());
        }
        Value::String(s) => encode_string(out, &s.as_bytes()),
        Value::Table(t) => {
            let n = t.raw_len();
            let pairs: Vec<(Value, Value)> = t
                .pairs::<Value, Value>()
                .collect::<mlua::Result<_>>()
                .map_err(|e| e.to_string())?;
            if n > 0 && pairs.len() == n {
                out.push(b'[');
                for i in 1..=n {
                    if i > 1 {
                        out.push(b',');
                    }
                    let item = t.raw_get::<Value>(i).map_err(|e| e.to_string())?;
                    encode_into(out, &item, depth + 1)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match k {
                        Value::String(s) => encode_string(out, &s.as_bytes()),
                        Value::Integer(i) => encode_string(
                            out,
                            crate::sandbox::lua_values::format_number(*i as f64).as_bytes(),
                        ),
                        Value::Number(n) => encode_string(
                            out,
                            crate::sandbox::lua_values::format_number(*n).as_bytes(),
                        ),
                        _ => {
                            return Err(
                                "Cannot serialise table: table key must be a number or string"
                                    .into(),
                            );
                        }
                    }
                    out.push(b':');
                    encode_into(out, v, depth + 1)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    }
    Ok(())
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}
