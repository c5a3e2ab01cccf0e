//! `preserve_data` for module objects: a circular buffer, filter, sketch or SAX window held in a
//! global is saved with the plugin's other globals at a clean shutdown and rebuilt when it
//! starts again, as lua_sandbox's modules are.
//!
//! Each module that keeps state offers a `save` (the object's configuration and contents as
//! JSON) and a `restore` (a new object from them, its memory reserved as a new one's). The
//! preserved file names the module and holds the JSON as a string; [`restore`] is reached from
//! it only while the file is being loaded. A state that does not fit the object it claims to be
//! (a file edited by hand, or from another version) is an error naming the module and the part
//! at fault, and the plugin does not start, as with any other preserved global that fails.

use mlua::{AnyUserData, Lua};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ModuleEnv;

type Save = fn(&AnyUserData) -> Option<Value>;
type Restore = fn(&Lua, &ModuleEnv, &Value) -> mlua::Result<AnyUserData>;

/// The modules whose objects are preserved, by the name `require` knows them by.
const PRESERVED: &[(&str, Save, Restore)] = &[
    (
        "bloom_filter",
        super::bloom_filter::save,
        super::bloom_filter::restore,
    ),
    (
        "circular_buffer",
        super::circular_buffer::save,
        super::circular_buffer::restore,
    ),
    (
        "cuckoo_filter",
        super::cuckoo_filter::save,
        super::cuckoo_filter::restore,
    ),
    (
        "cuckoo_filter_expire",
        super::cuckoo_filter_expire::save,
        super::cuckoo_filter_expire::restore,
    ),
    (
        "hyperloglog",
        super::hyperloglog::save,
        super::hyperloglog::restore,
    ),
    ("sax", super::sax::save, super::sax::restore),
    (
        "streaming_algorithms.cm_sketch",
        super::cm_sketch::save,
        super::cm_sketch::restore,
    ),
    (
        "streaming_algorithms.p2",
        super::p2::save,
        super::p2::restore,
    ),
    (
        "streaming_algorithms.time_series",
        super::time_series::save,
        super::time_series::restore,
    ),
];

/// The module and saved state of `object`, if it is a module object that is preserved.
pub fn save(object: &AnyUserData) -> Option<(&'static str, String)> {
    PRESERVED
        .iter()
        .find_map(|(module, save, _)| save(object).map(|state| (*module, state.to_string())))
}

/// A new object of `module` from `state` (what [`save`] wrote).
pub fn restore(lua: &Lua, env: &ModuleEnv, module: &str, state: &str) -> mlua::Result<AnyUserData> {
    let Some((_, _, restore)) = PRESERVED.iter().find(|(name, _, _)| *name == module) else {
        return Err(mlua::Error::runtime(format!(
            "preserved data names module '{module}', which keeps no preserved objects"
        )));
    };
    // The text is already in Lua's memory; what parsing it builds is bounded like the object.
    if state.len() > env.external.available() {
        return Err(mlua::Error::runtime(format!(
            "preserved {module} state of {} bytes is more than the plugin's memory limit allows",
            state.len()
        )));
    }
    let value: Value = serde_json::from_str(state)
        .map_err(|e| mlua::Error::runtime(format!("preserved {module} state: {e}")))?;
    restore(lua, env, &value)
}

/// Field `name` of a saved state, or an error naming the module and the field.
pub fn field<T: DeserializeOwned>(state: &Value, module: &str, name: &str) -> mlua::Result<T> {
    state
        .get(name)
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| bad(module, name))
}

/// The error for a saved state whose `part` does not fit.
pub fn bad(module: &str, part: &str) -> mlua::Error {
    mlua::Error::runtime(format!(
        "preserved {module} state: invalid or missing '{part}'"
    ))
}

/// Numbers as JSON keeps them: NaN and the infinities (which JSON lacks) as strings.
pub fn numbers(values: &[f64]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|&v| {
                if v.is_finite() {
                    serde_json::json!(v)
                } else {
                    Value::String(format!("{v}"))
                }
            })
            .collect(),
    )
}

/// Numbers written by [`numbers`].
pub fn read_numbers(state: &Value, module: &str, name: &str) -> mlua::Result<Vec<f64>> {
    let Some(Value::Array(items)) = state.get(name) else {
        return Err(bad(module, name));
    };
    items
        .iter()
        .map(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        })
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| bad(module, name))
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::*;
    use crate::plugin::PluginKind;

    fn restore_text(env: &ModuleEnv, module: &str, state: &str) -> String {
        let lua = Lua::new();
        match restore(&lua, env, module, state) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_state_that_does_not_fit_names_the_module_and_the_part() {
        let env = ModuleEnv::for_tests(PluginKind::Analysis);
        let bits = serde_json::json!({"m": 128, "k": 3, "count": 1, "bits": [1, 2]}).to_string();
        assert_eq!(restore_text(&env, "bloom_filter", &bits), "ok");
        let wrong_k = bits.replace("\"k\":3", "\"k\":99");
        assert!(
            restore_text(&env, "bloom_filter", &wrong_k)
                .contains("bloom_filter state: invalid or missing 'k'")
        );
        let short = bits.replace("[1,2]", "[1]");
        assert!(restore_text(&env, "bloom_filter", &short).contains("'bits'"));
        assert!(
            restore_text(&env, "bloom_filter", "{not json")
                .contains("preserved bloom_filter state")
        );
        assert!(restore_text(&env, "lpeg", "{}").contains("keeps no preserved objects"));
        // A state larger than the module memory left is refused before it is parsed.
        let small = ModuleEnv {
            external: crate::sandbox::modules::ExternalMemory::new(16),
            ..ModuleEnv::for_tests(PluginKind::Analysis)
        };
        assert!(restore_text(&small, "bloom_filter", &bits).contains("memory limit"));
    }

    #[test]
    fn numbers_keep_nan_and_the_infinities() {
        let saved =
            serde_json::json!({ "v": numbers(&[1.5, f64::NAN, f64::INFINITY, -f64::INFINITY]) });
        let back = read_numbers(&saved, "m", "v").unwrap();
        assert_eq!(back[0], 1.5);
        assert!(back[1].is_nan());
        assert_eq!((back[2], back[3]), (f64::INFINITY, -f64::INFINITY));
    }
}
