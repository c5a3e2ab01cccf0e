//! `hyperloglog`: distinct counts in 12 KiB, with lua_sandbox_extensions' API (which follows
//! Redis' HyperLogLog): `hyperloglog.new()`, `hll:add(key)` (true if the estimate may have
//! changed), `hll:count()`, `hll:merge(other)`, `hll:clear()`, `hyperloglog.count(a, b, …)` (of
//! the union), `tostring(hll)` and `hll:fromstring(s)`.
//!
//! As Redis does it, so counts and serialised sketches agree with Redis' and the original's:
//! 16384 six-bit registers indexed by the low 14 bits of MurmurHash64A (seed 0xadc83b19) of the
//! key (a number by its 8 IEEE bytes), the register holding the position of the first set bit
//! of the rest; the estimate is Ertl's improved estimator. `tostring` is Redis' dense encoding
//! (`HYLL`, the cached cardinality, the registers packed six bits each). The registers live in
//! the userdata itself, so Lua's memory limit counts them.

use mlua::{AnyUserData, Lua, MetaMethod, Table, UserData, UserDataMethods, Value, Variadic};

const P: u32 = 14;
const REGISTERS: usize = 1 << P;
/// Bits left for the run of zeros after the index (64 - 14).
const Q: u32 = 64 - P;
const HEADER: usize = 16;
const DENSE_BYTES: usize = REGISTERS * 6 / 8;

struct HyperLogLog {
    registers: [u8; REGISTERS],
}

/// MurmurHash64A (Austin Appleby's), as Redis hashes HyperLogLog keys.
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

fn key_bytes(key: &Value) -> mlua::Result<Vec<u8>> {
    Ok(match key {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Integer(i) => (*i as f64).to_le_bytes().to_vec(),
        Value::Number(n) => n.to_le_bytes().to_vec(),
        other => {
            return Err(mlua::Error::runtime(format!(
                "bad argument #1 (key must be a string or number, got {})",
                other.type_name()
            )));
        }
    })
}

/// Ertl's sigma and tau corrections.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

/// The estimate of a set of registers.
fn estimate(registers: &[u8; REGISTERS]) -> u64 {
    let m = REGISTERS as f64;
    let mut histogram = [0u32; Q as usize + 2];
    for &r in registers {
        histogram[r as usize] += 1;
    }
    let mut z = m * tau((m - histogram[Q as usize + 1] as f64) / m);
    for k in (1..=Q as usize).rev() {
        z += histogram[k] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    let alpha = 0.5 / std::f64::consts::LN_2;
    (alpha * m * m / z).round() as u64
}

impl HyperLogLog {
    fn add(&mut self, key: &Value) -> mlua::Result<bool> {
        let mut h = murmur64a(&key_bytes(key)?, 0xadc8_3b19);
        let index = (h as usize) & (REGISTERS - 1);
        h >>= P;
        h |= 1 << Q; // the run ends at Q at the latest
        let count = h.trailing_zeros() as u8 + 1;
        if count > self.registers[index] {
            self.registers[index] = count;
            return Ok(true);
        }
        Ok(false)
    }

    fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// Redis' dense representation.
    fn dense(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + DENSE_BYTES);
        out.extend_from_slice(b"HYLL");
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&estimate(&self.registers).to_le_bytes());
        let mut packed = vec![0u8; DENSE_BYTES];
        for (i, &r) in self.registers.iter().enumerate() {
            let bit = i * 6;
            let (byte, shift) = (bit / 8, bit % 8);
            packed[byte] |= r << shift;
            if shift > 2 {
                packed[byte + 1] |= r >> (8 - shift);
            }
        }
        out.extend(packed);
        out
    }

    fn load_dense(&mut self, data: &[u8]) -> mlua::Result<()> {
        if data.len() != HEADER + DENSE_BYTES || &data[..4] != b"HYLL" || data[4] != 0 {
            return Err(mlua::Error::runtime(
                "fromstring() needs a dense HyperLogLog (what tostring() gives)",
            ));
        }
        let packed = &data[HEADER..];
        for i in 0..REGISTERS {
            let bit = i * 6;
            let (byte, shift) = (bit / 8, bit % 8);
            let mut r = packed[byte] >> shift;
            if shift > 2 {
                r |= packed[byte + 1] << (8 - shift);
            }
            self.registers[i] = r & 0x3f;
        }
        Ok(())
    }
}

impl UserData for HyperLogLog {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, hll, key: Value| hll.add(&key));
        methods.add_method("count", |_, hll, ()| Ok(estimate(&hll.registers) as f64));
        methods.add_function("merge", |_, (ud, other): (AnyUserData, AnyUserData)| {
            let other = other.borrow::<HyperLogLog>()?.registers;
            ud.borrow_mut::<HyperLogLog>()?
                .merge(&HyperLogLog { registers: other });
            Ok(ud)
        });
        methods.add_method_mut("clear", |_, hll, ()| {
            hll.registers = [0; REGISTERS];
            Ok(())
        });
        methods.add_method_mut("fromstring", |_, hll, data: mlua::LuaString| {
            hll.load_dense(&data.as_bytes())
        });
        methods.add_meta_method(MetaMethod::ToString, |lua, hll, ()| {
            lua.create_string(hll.dense())
        });
    }
}

/// `preserve_data`: the registers, as `tostring` writes them (base64).
pub(super) fn save(object: &AnyUserData) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let hll = object.borrow::<HyperLogLog>().ok()?;
    let dense = base64::engine::general_purpose::STANDARD.encode(hll.dense());
    Some(serde_json::json!({ "dense": dense }))
}

/// `preserve_data`: a sketch from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    _env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<AnyUserData> {
    use base64::Engine as _;
    const MODULE: &str = "hyperloglog";
    let text: String = super::preserved::field(state, MODULE, "dense")?;
    let dense = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| super::preserved::bad(MODULE, "dense"))?;
    let mut hll = HyperLogLog {
        registers: [0; REGISTERS],
    };
    hll.load_dense(&dense)?;
    lua.create_userdata(hll)
}

/// Opens the module.
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(|_, ()| {
            Ok(HyperLogLog {
                registers: [0; REGISTERS],
            })
        })?,
    )?;
    module.raw_set(
        "count",
        lua.create_function(|_, sketches: Variadic<AnyUserData>| {
            let mut union = [0u8; REGISTERS];
            for s in sketches.iter() {
                let s = s.borrow::<HyperLogLog>()?;
                for (a, b) in union.iter_mut().zip(s.registers.iter()) {
                    *a = (*a).max(*b);
                }
            }
            Ok(estimate(&union) as f64)
        })?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok("0.1.0"))?)?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn murmur64a_reads_every_byte() {
        assert_eq!(
            super::murmur64a(b"", 0),
            0,
            "nothing hashes to zero with seed zero"
        );
        // Each length class (whole words, a tail, both) and each byte position matters.
        let base = super::murmur64a(b"0123456789abc", 1);
        for i in 0..13 {
            let mut k = *b"0123456789abc";
            k[i] ^= 1;
            assert_ne!(super::murmur64a(&k, 1), base, "byte {i}");
        }
        assert_ne!(super::murmur64a(b"abc", 1), super::murmur64a(b"abc", 2));
    }

    #[test]
    fn counts_are_close_and_exact_when_small() {
        let lua =
            crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "hyperloglog");
        lua.load(
            r#"
            local hll = hyperloglog.new()
            assert(hll:count() == 0)
            assert(hll:add("test") == true and hll:count() == 1)
            assert(hll:add("test") == false, "nothing changes")
            for i = 1, 99 do hll:add(i) end
            assert(hll:count() == 100, hll:count())
            local big = hyperloglog.new()
            for i = 1, 100000 do big:add("key" .. i) end
            local n = big:count()
            assert(math.abs(n - 100000) < 2000, n)
            local other = hyperloglog.new()
            for i = 50001, 150000 do other:add("key" .. i) end
            local union = hyperloglog.count(big, other)
            assert(math.abs(union - 150000) < 3000, union)
            assert(big:count() == n, "count() of several does not change them")
            local copy = hyperloglog.new()
            copy:fromstring(tostring(big))
            assert(copy:count() == n and #tostring(big) == 16 + 12288)
            assert(big:merge(other) == big and big:count() == union)
            big:clear()
            assert(big:count() == 0)
            assert(not pcall(copy.fromstring, copy, "nonsense"))
        "#,
        )
        .exec()
        .unwrap();
    }
}
