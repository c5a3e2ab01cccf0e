//! `bloom_filter`: approximate set membership, with the API of lua_sandbox_extensions' module:
//! `bloom_filter.new(items, probability)`, `bf:add(key)` (false if it was, probably, there
//! already), `bf:query(key)`, `bf:count()`, `bf:clear()`. Keys are strings or numbers.
//!
//! The textbook sizing: `m = -n ln p / (ln 2)²` bits and `k = (m / n) ln 2` hashes, made from
//! two halves of one 64-bit hash (Kirsch and Mitzenmacher's double hashing; Blink's hash, as
//! the cuckoo filters). The bits are counted in the plugin's module memory.

use mlua::{AnyUserData, Lua, Table, UserData, UserDataMethods, Value};
use serde_json::json;

use super::preserved::{bad, field};

use super::cuckoo_filter::hash_key;

struct BloomFilter {
    bits: Vec<u64>,
    /// Bits in the filter and hashes per key.
    m: u64,
    k: u32,
    count: u64,
    _memory: super::Reservation,
}

impl BloomFilter {
    fn positions(&self, key: &Value) -> mlua::Result<impl Iterator<Item = u64> + '_> {
        let h = hash_key(key)?;
        let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
        Ok((0..self.k as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.m))
    }

    fn test(&self, position: u64) -> bool {
        self.bits[(position / 64) as usize] & (1 << (position % 64)) != 0
    }
}

impl UserData for BloomFilter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, bf, key: Value| {
            let positions: Vec<u64> = bf.positions(&key)?.collect();
            let mut added = false;
            for p in positions {
                if !bf.test(p) {
                    bf.bits[(p / 64) as usize] |= 1 << (p % 64);
                    added = true;
                }
            }
            if added {
                bf.count += 1;
            }
            Ok(added)
        });
        methods.add_method("query", |_, bf, key: Value| {
            Ok(bf.positions(&key)?.all(|p| bf.test(p)))
        });
        methods.add_method("count", |_, bf, ()| Ok(bf.count as f64));
        methods.add_method_mut("clear", |_, bf, ()| {
            bf.bits.fill(0);
            bf.count = 0;
            Ok(())
        });
    }
}

/// `preserve_data`: the filter's size, hashes, count and bits.
pub(super) fn save(object: &AnyUserData) -> Option<serde_json::Value> {
    let bf = object.borrow::<BloomFilter>().ok()?;
    Some(json!({"m": bf.m, "k": bf.k, "count": bf.count, "bits": bf.bits}))
}

/// `preserve_data`: a filter from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<AnyUserData> {
    const MODULE: &str = "bloom_filter";
    let m: u64 = field(state, MODULE, "m")?;
    let k: u32 = field(state, MODULE, "k")?;
    let bits: Vec<u64> = field(state, MODULE, "bits")?;
    if m == 0 || !m.is_multiple_of(64) || m > 1 << 40 || bits.len() as u64 != m / 64 {
        return Err(bad(MODULE, "bits"));
    }
    if !(1..=32).contains(&k) {
        return Err(bad(MODULE, "k"));
    }
    let memory = env.external.reserve(bits.len() * 8, "a bloom filter")?;
    lua.create_userdata(BloomFilter {
        bits,
        m,
        k,
        count: field(state, MODULE, "count")?,
        _memory: memory,
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(move |_, (items, probability): (f64, f64)| {
            if !(items > 1.0 && items.is_finite()) {
                return Err(mlua::Error::runtime(
                    "bad argument #1 to 'new' (items must be > 1)",
                ));
            }
            if !(probability > 0.0 && probability < 1.0) {
                return Err(mlua::Error::runtime(
                    "bad argument #2 to 'new' (probability must be between 0 and 1)",
                ));
            }
            let ln2 = std::f64::consts::LN_2;
            let m = (-items * probability.ln() / (ln2 * ln2)).ceil().max(64.0);
            if m > (1u64 << 40) as f64 {
                return Err(mlua::Error::runtime(
                    "bad argument to 'new' (the filter is too large)",
                ));
            }
            let k = ((m / items) * ln2).round().clamp(1.0, 32.0) as u32;
            let words = (m as u64).div_ceil(64);
            let memory = external.reserve(words as usize * 8, "a bloom filter")?;
            Ok(BloomFilter {
                bits: vec![0; words as usize],
                m: words * 64,
                k,
                count: 0,
                _memory: memory,
            })
        })?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok("1.0.0"))?)?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn membership_with_the_asked_error_rate() {
        let lua =
            crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "bloom_filter");
        lua.load(
            r#"
            local bf = bloom_filter.new(1000, 0.01)
            assert(bf:query("test") == false)
            assert(bf:add("test") == true and bf:add("test") == false and bf:query("test"))
            assert(bf:count() == 1)
            for i = 1, 1000 do bf:add(i) end
            for i = 1, 1000 do assert(bf:query(i), "no false negatives") end
            local false_positives = 0
            for i = 1001, 11000 do if bf:query(i) then false_positives = false_positives + 1 end end
            assert(false_positives < 200, false_positives)
            bf:clear()
            assert(bf:count() == 0 and not bf:query(1))
            assert(not pcall(bloom_filter.new, 1, 0.5) and not pcall(bloom_filter.new, 10, 1))
            assert(not pcall(bf.add, bf, {}))
        "#,
        )
        .exec()
        .unwrap();
    }
}
