//! `require`: Lua's standard libraries a plugin kind may use, host modules, and module files
//! from the configured Lua directories.

use mlua::{Lua, Table, Value};

use super::api_error;
use crate::sandbox::host::shared;
use crate::sandbox::modules;

/// `require(name)`: a standard library the plugin kind may use, or a module file from the
/// configured Lua directories. Names are `[A-Za-z0-9_.]`; dots separate directories.
pub(super) fn require(lua: &Lua, name: &str) -> Result<Value, String> {
    let fail = |detail: String| api_error(lua, "require", detail);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(fail(format!("invalid module name '{name}'")));
    }
    let lua_err = |e: mlua::Error| fail(crate::plugin::lua_error_text(&e));
    let loaded: Table = lua.named_registry_value("blink.loaded").map_err(lua_err)?;
    if let Some(v) = loaded.raw_get::<Option<Value>>(name).map_err(lua_err)? {
        return Ok(v);
    }
    if matches!(
        name,
        "string" | "table" | "math" | "os" | "io" | "coroutine"
    ) {
        let libs: Table = lua.named_registry_value("blink.libs").map_err(lua_err)?;
        return match libs.raw_get::<Option<Table>>(name).map_err(lua_err)? {
            Some(lib) => {
                lua.globals().raw_set(name, lib.clone()).map_err(lua_err)?;
                loaded.raw_set(name, lib.clone()).map_err(lua_err)?;
                Ok(Value::Table(lib))
            }
            None => Err(fail(format!(
                "module '{name}' is not available to this plugin type"
            ))),
        };
    }
    if let Some(module) = modules::find(name) {
        let host = shared(lua);
        let env = host.borrow().module_env(&host);
        if !module.kinds.contains(&env.kind) {
            return Err(fail(format!(
                "module '{name}' is not available to this plugin type"
            )));
        }
        if let Some(table) = (module.open)(lua, &env).map_err(lua_err)? {
            // As lua_sandbox's modules do, the module is also a global of its name.
            lua.globals()
                .raw_set(name, table.clone())
                .map_err(lua_err)?;
            loaded.raw_set(name, table.clone()).map_err(lua_err)?;
            return Ok(Value::Table(table));
        }
    }
    let relative = format!("{}.lua", name.replace('.', "/"));
    let paths = shared(lua).borrow().lua_paths.clone();
    for dir in &paths {
        let path = dir.join(&relative);
        let Ok(source) = std::fs::read(&path) else {
            continue;
        };
        let chunk = lua
            .load(source)
            // Named by its path, as Lua's own loader names a module: errors say which file
            // (Lua keeps the last 56 characters of a long one).
            .set_name(format!("@{}", path.display()))
            .set_mode(mlua::chunk::ChunkMode::Text);
        let value = match chunk.call::<Value>(name).map_err(lua_err)? {
            Value::Nil => Value::Boolean(true),
            v => v,
        };
        loaded.raw_set(name, value.clone()).map_err(lua_err)?;
        return Ok(value);
    }
    let searched: Vec<String> = paths
        .iter()
        .map(|d| d.join(&relative).display().to_string())
        .collect();
    Err(fail(format!(
        "module '{name}' not found; searched {}",
        searched.join(", ")
    )))
}
