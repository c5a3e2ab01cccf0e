//! `streaming_algorithms.cm_sketch`: a count-min sketch (Cormode and Muthukrishnan), with the
//! API of the streaming_algorithms module Hindsight's security analyses use (heavy hitters,
//! error rates): `cm_sketch.new(epsilon, delta)`; `cms:update(key [, n])` → the key's estimated
//! count (a negative `n` removes), `cms:point_query(key)`, `cms:item_count()`,
//! `cms:unique_count()`, `cms:clear()`.
//!
//! `ceil(e / epsilon)` counters per row and `ceil(ln(1 / delta))` rows: an estimate exceeds the
//! true count by at most `epsilon × items` with probability `1 - delta`. The unique count is
//! kept as keys' estimates rise from zero and fall back to it. Each row hashes the key with its
//! own seed (Blink's hash, as the other filters). The counters are counted in the plugin's
//! module memory (bounded by its `memory_limit`).

use mlua::{Lua, Table, UserData, UserDataMethods, Value};

use super::cuckoo_filter::{hash_key, mix};

/// Counters at most (16 M: 64 MiB), whatever epsilon and delta ask.
const MAX_COUNTERS: f64 = (1u64 << 24) as f64;

struct CmSketch {
    width: usize,
    depth: usize,
    counters: Vec<u32>,
    items: u64,
    unique: u64,
    _memory: super::Reservation,
}

impl CmSketch {
    /// The counter of `key` in each row.
    fn cells(&self, key: &Value) -> mlua::Result<Vec<usize>> {
        let h = hash_key(key)?;
        Ok((0..self.depth)
            .map(|row| {
                row * self.width
                    + (mix(h ^ (row as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) as usize
                        % self.width)
            })
            .collect())
    }

    fn estimate(&self, cells: &[usize]) -> u32 {
        cells.iter().map(|&c| self.counters[c]).min().unwrap_or(0)
    }

    fn update(&mut self, key: &Value, n: f64) -> mlua::Result<u32> {
        if !n.is_finite() || n.fract() != 0.0 {
            return Err(mlua::Error::runtime("n must be a whole number"));
        }
        let cells = self.cells(key)?;
        let before = self.estimate(&cells);
        if n >= 0.0 {
            let n = n.min(u32::MAX as f64) as u32;
            for &c in &cells {
                self.counters[c] = self.counters[c].saturating_add(n);
            }
            self.items = self.items.saturating_add(n as u64);
        } else {
            // Never below zero: what is removed is at most what the key holds.
            let n = ((-n).min(u32::MAX as f64) as u32).min(before);
            for &c in &cells {
                self.counters[c] = self.counters[c].saturating_sub(n);
            }
            self.items = self.items.saturating_sub(n as u64);
        }
        let after = self.estimate(&cells);
        if before == 0 && after > 0 {
            self.unique += 1;
        } else if before > 0 && after == 0 {
            self.unique = self.unique.saturating_sub(1);
        }
        Ok(after)
    }
}

impl UserData for CmSketch {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("update", |_, cms, (key, n): (Value, Option<f64>)| {
            cms.update(&key, n.unwrap_or(1.0)).map(|c| c as f64)
        });
        methods.add_method("point_query", |_, cms, key: Value| {
            Ok(cms.estimate(&cms.cells(&key)?) as f64)
        });
        methods.add_method("item_count", |_, cms, ()| Ok(cms.items as f64));
        methods.add_method("unique_count", |_, cms, ()| Ok(cms.unique as f64));
        methods.add_method_mut("clear", |_, cms, ()| {
            cms.counters.fill(0);
            cms.items = 0;
            cms.unique = 0;
            Ok(())
        });
    }
}

/// `preserve_data`: the sketch's shape, counters and counts.
pub(super) fn save(object: &mlua::AnyUserData) -> Option<serde_json::Value> {
    let s = object.borrow::<CmSketch>().ok()?;
    Some(serde_json::json!({
        "width": s.width, "depth": s.depth, "counters": s.counters,
        "items": s.items, "unique": s.unique,
    }))
}

/// `preserve_data`: a sketch from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<mlua::AnyUserData> {
    use super::preserved::{bad, field};
    const MODULE: &str = "streaming_algorithms.cm_sketch";
    let width: usize = field(state, MODULE, "width")?;
    let depth: usize = field(state, MODULE, "depth")?;
    let counters: Vec<u32> = field(state, MODULE, "counters")?;
    if width == 0 || depth == 0 || counters.len() != width.saturating_mul(depth) {
        return Err(bad(MODULE, "counters"));
    }
    let memory = env
        .external
        .reserve(counters.len() * 4, "a count-min sketch")?;
    lua.create_userdata(CmSketch {
        width,
        depth,
        counters,
        items: field(state, MODULE, "items")?,
        unique: field(state, MODULE, "unique")?,
        _memory: memory,
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(move |_, (epsilon, delta): (f64, f64)| {
            if !(epsilon > 0.0 && epsilon < 1.0 && delta > 0.0 && delta < 1.0) {
                return Err(mlua::Error::runtime(
                    "bad argument to 'new' (epsilon and delta must be between 0 and 1)",
                ));
            }
            let width = (std::f64::consts::E / epsilon).ceil();
            let depth = (1.0 / delta).ln().ceil().max(1.0);
            if width * depth > MAX_COUNTERS {
                return Err(mlua::Error::runtime(format!(
                    "a sketch of epsilon {epsilon} and delta {delta} needs {} counters, more than \
                     {MAX_COUNTERS}",
                    width * depth
                )));
            }
            let (width, depth) = (width as usize, depth as usize);
            let memory = external.reserve(width * depth * 4, "a count-min sketch")?;
            Ok(CmSketch {
                width,
                depth,
                counters: vec![0; width * depth],
                items: 0,
                unique: 0,
                _memory: memory,
            })
        })?,
    )?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn counts_items_and_uniques() {
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "cm_sketch");
        lua.load(
            r#"
            local cms = cm_sketch.new(0.01, 0.01)
            for i = 1, 100 do cms:update(i) end
            assert(cms:point_query(1) == 1 and cms:point_query("absent") <= 1)
            assert(cms:update("a") == 1 and cms:update("a") == 2 and cms:update("c", 3) == 3)
            assert(cms:item_count() == 105 and cms:unique_count() == 102)
            assert(cms:update("c", -1) == 2 and cms:update("c", -5) == 0, "never below zero")
            assert(cms:unique_count() == 101 and cms:item_count() == 102)
            cms:clear()
            assert(cms:item_count() == 0 and cms:unique_count() == 0 and cms:point_query(1) == 0)
            assert(not pcall(cm_sketch.new, 0, 0.5) and not pcall(cm_sketch.new, 1e-9, 0.5))
            -- The guarantee: no estimate below the truth, few above it.
            local big = cm_sketch.new(0.001, 0.01)
            for i = 1, 5000 do big:update(i % 500) end
            local over = 0
            for k = 0, 499 do
                local e = big:point_query(k)
                assert(e >= 10)
                if e > 10 then over = over + 1 end
            end
            assert(over < 50, over)
        "#,
        )
        .exec()
        .unwrap();
    }
}
