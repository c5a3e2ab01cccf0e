//! Host modules: Lua modules written in Rust, loaded by `require` like lua_sandbox's.
//!
//! - `cjson`: JSON `decode`/`encode`, lua-cjson's call shape (every plugin type).
//! - `kafka`: consumers over Blink's own topics for input plugins (their position is the
//!   plugin's checkpoint), producers into them for output plugins.

mod cjson;
mod kafka;

use mlua::{Lua, Value};

use super::api::shared;
use crate::plugin::PluginKind;

/// The host module `name`, if there is one for this plugin.
pub fn load(lua: &Lua, name: &str) -> mlua::Result<Option<Value>> {
    match name {
        "cjson" => cjson::module(lua).map(|t| Some(Value::Table(t))),
        "kafka" => {
            let host = shared(lua);
            let host = host.borrow();
            match (&host.log, host.config.kind) {
                (Some(log), PluginKind::Input) => {
                    let consumer_host = kafka::ConsumerHost {
                        log: log.clone(),
                        plugin: host.config.name.clone(),
                        stats: host.stats.clone(),
                        max_value_bytes: host.inject_size_limit(),
                    };
                    kafka::module(lua, consumer_host).map(|t| Some(Value::Table(t)))
                }
                (Some(log), PluginKind::Output) => {
                    kafka::producer_module(lua, log.clone(), host.config.name.clone())
                        .map(|t| Some(Value::Table(t)))
                }
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}
