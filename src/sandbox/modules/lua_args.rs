//! Argument checks that C modules make with `luaL_check*`, for host modules that take their
//! arguments loosely (a variable count, or a value of several types) and must word their errors
//! as the original does.

use mlua::{Lua, Value};

/// Argument `index` of `function` as an integer, as `luaL_checkint` takes it: a number
/// (truncated) or a string that reads as one; otherwise "number expected, got …".
pub fn check_integer(
    lua: &Lua,
    value: Option<&Value>,
    index: usize,
    function: &str,
) -> mlua::Result<i64> {
    let number = match value {
        Some(Value::Integer(i)) => Some(*i as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(v @ Value::String(_)) => lua.coerce_number(v.clone())?,
        _ => None,
    };
    match number {
        Some(n) if n.is_finite() => Ok(n as i64),
        _ => Err(mlua::Error::runtime(format!(
            "bad argument #{index} to '{function}' (number expected, got {})",
            value.map_or("no value", |v| v.type_name())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_checkint_reads_them() {
        let lua = Lua::new();
        let s = Value::String(lua.create_string(" 12 ").unwrap());
        assert_eq!(check_integer(&lua, Some(&s), 1, "f").unwrap(), 12);
        assert_eq!(
            check_integer(&lua, Some(&Value::Number(7.9)), 1, "f").unwrap(),
            7
        );
        let e = check_integer(&lua, None, 2, "f").unwrap_err().to_string();
        assert!(
            e.contains("bad argument #2 to 'f' (number expected, got no value)"),
            "{e}"
        );
        let t = Value::Table(lua.create_table().unwrap());
        assert!(check_integer(&lua, Some(&t), 1, "f").is_err());
    }
}
