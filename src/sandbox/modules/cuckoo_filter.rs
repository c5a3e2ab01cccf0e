//! `cuckoo_filter`: approximate set membership with deletion, with the API of
//! lua_sandbox_extensions' module: `cuckoo_filter.new(items)`, `cf:add(key)` (false if it was
//! there), `cf:query(key)`, `cf:delete(key)`, `cf:count()`, `cf:clear()`. Keys are strings or
//! numbers. Buckets of four 16-bit fingerprints (a false positive rate near 0.00012); the
//! bucket count is `items / 4` rounded up to a power of two.
//!
//! The table lives outside Lua's allocator, so it is counted in the plugin's module memory
//! ([`super::ExternalMemory`], bounded by its `memory_limit`) before it is made. The hash is Blink's own (FNV-1a with
//! a 64-bit finaliser), not xxHash: which keys share a fingerprint differs from the original,
//! the rates do not.

use mlua::{Lua, Table, UserData, UserDataMethods, Value};

pub(super) const BUCKET_SIZE: usize = 4;
/// Entries moved before an insert gives up (the table is then full).
pub(super) const MAX_KICKS: usize = 512;

/// A key's 64-bit hash: FNV-1a over its bytes (a number's as its IEEE bits), then a
/// finaliser so that every bit depends on every input bit.
pub(super) fn hash_key(key: &Value) -> mlua::Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match key {
        Value::String(s) => feed(&s.as_bytes()),
        Value::Integer(i) => feed(&(*i as f64).to_le_bytes()),
        Value::Number(n) => feed(&n.to_le_bytes()),
        other => {
            return Err(mlua::Error::runtime(format!(
                "bad argument #1 (key must be a string or number, got {})",
                other.type_name()
            )));
        }
    }
    Ok(mix(h))
}

/// splitmix64's finaliser.
pub(super) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Buckets for `items` (at least one bucket, a power of two), and the bytes they take.
pub(super) fn bucket_count(items: f64, entry_bytes: usize) -> mlua::Result<(usize, usize)> {
    // Past 2^40 items the size alone is beyond any memory limit.
    if !(items.is_finite() && (1.0..=(1u64 << 40) as f64).contains(&items)) {
        return Err(mlua::Error::runtime("items must be a positive number"));
    }
    let buckets = ((items / BUCKET_SIZE as f64).ceil().max(1.0) as usize).next_power_of_two();
    Ok((buckets, buckets * BUCKET_SIZE * entry_bytes))
}

/// The other bucket of a fingerprint (the partial-key cuckoo rule: its own inverse).
pub(super) fn alternate(index: usize, fingerprint: u32, buckets: usize) -> usize {
    index ^ (mix(fingerprint as u64) as usize & (buckets - 1))
}

/// A small deterministic generator for the entry an insert evicts.
pub(super) struct Xorshift(pub u64);

impl Xorshift {
    pub fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

struct CuckooFilter {
    /// Fingerprints, `BUCKET_SIZE` per bucket; 0 is an empty slot.
    slots: Vec<u16>,
    buckets: usize,
    count: usize,
    random: Xorshift,
    _memory: super::Reservation,
}

impl CuckooFilter {
    fn locate(&self, key: &Value) -> mlua::Result<(u16, usize, usize)> {
        let h = hash_key(key)?;
        let fp = ((h >> 48) as u16).max(1);
        let i1 = (h as usize) & (self.buckets - 1);
        Ok((fp, i1, alternate(i1, fp as u32, self.buckets)))
    }

    fn bucket(&mut self, i: usize) -> &mut [u16] {
        &mut self.slots[i * BUCKET_SIZE..(i + 1) * BUCKET_SIZE]
    }

    fn contains(&mut self, i: usize, fp: u16) -> bool {
        self.bucket(i).contains(&fp)
    }

    fn put(&mut self, i: usize, fp: u16) -> bool {
        match self.bucket(i).iter_mut().find(|s| **s == 0) {
            Some(slot) => {
                *slot = fp;
                true
            }
            None => false,
        }
    }

    fn add(&mut self, key: &Value) -> mlua::Result<bool> {
        let (mut fp, i1, i2) = self.locate(key)?;
        // Any equal fingerprint in either bucket is taken as the key itself.
        if self.contains(i1, fp) || self.contains(i2, fp) {
            return Ok(false);
        }
        if self.put(i1, fp) || self.put(i2, fp) {
            self.count += 1;
            return Ok(true);
        }
        let mut i = if self.random.next().is_multiple_of(2) {
            i1
        } else {
            i2
        };
        for _ in 0..MAX_KICKS {
            let slot = self.random.next() % BUCKET_SIZE;
            std::mem::swap(&mut self.bucket(i)[slot], &mut fp);
            i = alternate(i, fp as u32, self.buckets);
            if self.put(i, fp) {
                self.count += 1;
                return Ok(true);
            }
        }
        Err(mlua::Error::runtime("the cuckoo filter is full"))
    }

    fn delete(&mut self, key: &Value) -> mlua::Result<bool> {
        let (fp, i1, i2) = self.locate(key)?;
        for i in [i1, i2] {
            if let Some(slot) = self.bucket(i).iter_mut().find(|s| **s == fp) {
                *slot = 0;
                self.count -= 1;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl UserData for CuckooFilter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, cf, key: Value| cf.add(&key));
        methods.add_method_mut("delete", |_, cf, key: Value| cf.delete(&key));
        methods.add_method_mut("query", |_, cf, key: Value| {
            let (fp, i1, i2) = cf.locate(&key)?;
            Ok(cf.contains(i1, fp) || cf.contains(i2, fp))
        });
        methods.add_method("count", |_, cf, ()| Ok(cf.count as f64));
        methods.add_method_mut("clear", |_, cf, ()| {
            cf.slots.fill(0);
            cf.count = 0;
            Ok(())
        });
    }
}

/// `preserve_data`: the filter's buckets, count and fingerprints.
pub(super) fn save(object: &mlua::AnyUserData) -> Option<serde_json::Value> {
    let cf = object.borrow::<CuckooFilter>().ok()?;
    Some(serde_json::json!({"buckets": cf.buckets, "count": cf.count, "slots": cf.slots}))
}

/// `preserve_data`: a filter from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<mlua::AnyUserData> {
    use super::preserved::{bad, field};
    const MODULE: &str = "cuckoo_filter";
    let buckets: usize = field(state, MODULE, "buckets")?;
    let count: usize = field(state, MODULE, "count")?;
    let slots: Vec<u16> = field(state, MODULE, "slots")?;
    if !buckets.is_power_of_two() || slots.len() != buckets.saturating_mul(BUCKET_SIZE) {
        return Err(bad(MODULE, "slots"));
    }
    if count > slots.len() {
        return Err(bad(MODULE, "count"));
    }
    let memory = env.external.reserve(slots.len() * 2, "a cuckoo filter")?;
    lua.create_userdata(CuckooFilter {
        slots,
        buckets,
        count,
        random: Xorshift(0x9e37_79b9_7f4a_7c15),
        _memory: memory,
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(move |_, items: f64| {
            if items < 4.0 {
                return Err(mlua::Error::runtime(
                    "bad argument #1 to 'new' (items must be >= 4)",
                ));
            }
            let (buckets, bytes) = bucket_count(items, 2)?;
            let memory = external.reserve(bytes, "a cuckoo filter")?;
            Ok(CuckooFilter {
                slots: vec![0; buckets * BUCKET_SIZE],
                buckets,
                count: 0,
                random: Xorshift(0x9e37_79b9_7f4a_7c15),
                _memory: memory,
            })
        })?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok("1.0.1"))?)?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use crate::plugin::PluginKind;
    use crate::sandbox::modules::ModuleEnv;

    fn run(memory_limit: usize, code: &str) {
        let lua = Lua::new();
        let env = ModuleEnv {
            memory_limit,
            external: crate::sandbox::modules::ExternalMemory::new(memory_limit),
            ..ModuleEnv::for_tests(PluginKind::Analysis)
        };
        let m = super::open(&lua, &env).unwrap().unwrap();
        lua.globals().set("cuckoo_filter", m).unwrap();
        if let Err(e) = lua.load(code).exec() {
            panic!("{e}");
        }
    }

    #[test]
    fn membership_with_deletion() {
        run(
            0,
            r#"
            local cf = cuckoo_filter.new(1000)
            assert(cf:query("test") == false)
            assert(cf:add("test") == true and cf:add("test") == false, "a duplicate is not added")
            assert(cf:query("test") == true and cf:count() == 1)
            assert(cf:add(42) and cf:query(42) and not cf:query(43))
            assert(cf:delete("test") == true and cf:delete("test") == false and not cf:query("test"))
            local added = 0
            for i = 1, 800 do if cf:add("k" .. i) then added = added + 1 end end
            local found = 0
            for i = 1, 800 do if cf:query("k" .. i) then found = found + 1 end end
            assert(found == 800, "no false negatives")
            assert(added >= 798, "few duplicates by fingerprint: " .. added)
            cf:clear()
            assert(cf:count() == 0 and not cf:query("k1"))
            assert(not pcall(cf.add, cf, {}), "a table is not a key")
            assert(not pcall(cuckoo_filter.new, 2))
            assert(cuckoo_filter.version() == "1.0.1")
        "#,
        );
    }

    #[test]
    fn a_full_filter_says_so_and_a_huge_one_is_refused() {
        run(
            1 << 20,
            r#"
            local cf = cuckoo_filter.new(4)
            local ok, e
            for i = 1, 100 do
                ok, e = pcall(cf.add, cf, "key" .. i)
                if not ok then break end
            end
            assert(not ok and tostring(e):find("full"), tostring(e))
            ok, e = pcall(cuckoo_filter.new, 1e12)
            assert(not ok and tostring(e):find("memory limit"), tostring(e))
            -- Many filters each within the limit are not, together.
            local kept = {}
            ok, e = pcall(function() for i = 1, 100 do kept[i] = cuckoo_filter.new(100000) end end)
            assert(not ok and tostring(e):find("memory limit"), tostring(e))
        "#,
        );
    }
}
