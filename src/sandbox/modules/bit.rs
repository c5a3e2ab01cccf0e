//! `bit`: bitwise operations on 32-bit integers, with the API of LuaBitOp (the `bit` module
//! Lua 5.1 code and lua_sandbox_extensions' modules use).
//!
//! Every argument is first made a 32-bit integer as LuaBitOp does: the number modulo 2^32,
//! rounded to the nearest integer, read as signed; results are signed too, so
//! `bit.tobit(0xffffffff) == -1`. Shift counts use their low five bits. Functions: `tobit`,
//! `tohex(x [, n])` (`n` hex digits, 8 by default; negative for upper case), `bnot`, `band`,
//! `bor`, `bxor` (one or more arguments), `lshift`, `rshift` (logical), `arshift`
//! (arithmetic), `rol`, `ror`, `bswap`.

use mlua::{Lua, Table, Value, Variadic};

/// `n` as LuaBitOp's 32-bit integer: adding 2^52 + 2^51 puts the integer part of `n` in the
/// low bits of the double's mantissa (rounding to nearest), whose low 32 bits are the answer.
pub fn tobit(n: f64) -> i32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

/// Argument `i` (from 1) of `function`, as a number.
fn number(function: &str, args: &[Value], i: usize) -> mlua::Result<f64> {
    match args.get(i - 1) {
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Number(n)) => Ok(*n),
        Some(Value::String(s)) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| bad_argument(function, i, "string")),
        other => Err(bad_argument(
            function,
            i,
            other.map_or("no value", |v| v.type_name()),
        )),
    }
}

fn bad_argument(function: &str, i: usize, got: &str) -> mlua::Error {
    mlua::Error::runtime(format!(
        "bad argument #{i} to '{function}' (number expected, got {got})"
    ))
}

fn int(function: &str, args: &[Value], i: usize) -> mlua::Result<i32> {
    number(function, args, i).map(tobit)
}

/// `tohex(x, n)`: the low `|n|` hex digits of `x` (at most 8), upper case when `n` < 0.
pub fn tohex(x: i32, n: i32) -> String {
    let digits = n.unsigned_abs().min(8) as usize;
    let text = if n < 0 {
        format!("{:08X}", x as u32)
    } else {
        format!("{:08x}", x as u32)
    };
    text[8 - digits..].to_owned()
}

pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let bit = lua.create_table()?;
    type Unary = fn(i32) -> i32;
    let unary: [(&str, Unary); 3] = [
        ("tobit", |x| x),
        ("bnot", |x| !x),
        ("bswap", |x| x.swap_bytes()),
    ];
    for (name, f) in unary {
        bit.raw_set(
            name,
            lua.create_function(move |_, args: Variadic<Value>| Ok(f(int(name, &args, 1)?)))?,
        )?;
    }
    type Fold = fn(i32, i32) -> i32;
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, f) in folds {
        bit.raw_set(
            name,
            lua.create_function(move |_, args: Variadic<Value>| {
                let mut acc = int(name, &args, 1)?;
                for i in 2..=args.len() {
                    acc = f(acc, int(name, &args, i)?);
                }
                Ok(acc)
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |x, n| ((x as u32) << n) as i32),
        ("rshift", |x, n| ((x as u32) >> n) as i32),
        ("arshift", |x, n| x >> n),
        ("rol", |x, n| (x as u32).rotate_left(n) as i32),
        ("ror", |x, n| (x as u32).rotate_right(n) as i32),
    ];
    for (name, f) in shifts {
        bit.raw_set(
            name,
            lua.create_function(move |_, args: Variadic<Value>| {
                let x = int(name, &args, 1)?;
                let n = int(name, &args, 2)? as u32 & 31;
                Ok(f(x, n))
            })?,
        )?;
    }
    bit.raw_set(
        "tohex",
        lua.create_function(|_, args: Variadic<Value>| {
            let x = int("tohex", &args, 1)?;
            let n = match args.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => int("tohex", &args, 2)?,
            };
            Ok(tohex(x, n))
        })?,
    )?;
    Ok(Some(bit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tobit_wraps_and_rounds_as_luabitop() {
        assert_eq!(tobit(0xffff_ffffu32 as f64), -1);
        assert_eq!(tobit(2f64.powi(32) + 1.0), 1);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(2f64.powi(31)), i32::MIN);
        assert_eq!(tobit(1.4), 1);
        assert_eq!(tobit(1.6), 2);
        assert_eq!(tobit(2.5), 2, "to nearest even");
        assert_eq!(tobit(-2.5), -2);
    }

    #[test]
    fn tohex_takes_digits_from_the_low_end() {
        assert_eq!(tohex(1, 8), "00000001");
        assert_eq!(tohex(-1, 8), "ffffffff");
        assert_eq!(tohex(0x1234_5678, 4), "5678");
        assert_eq!(tohex(0x1234_abcd, -4), "ABCD");
        assert_eq!(tohex(0x1234_5678, 20), "12345678");
    }
}
