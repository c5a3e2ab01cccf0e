//! How Lua 5.1 names and prints values, as Hindsight's plugins (and their tests) expect.

use mlua::Value;

/// A value's Lua type name; Lua 5.1 has one number type, whatever mlua calls it.
pub fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// Lua 5.1's `%.14g`, how Hindsight's plugins print numbers.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if n == n.trunc() && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let exp = n.abs().log10().floor() as i32;
    if !(-4..14).contains(&exp) {
        let s = format!("{n:.13e}");
        let (mantissa, exponent) = s.split_once('e').expect("exponent form");
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let exponent: i32 = exponent.parse().expect("exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let s = format!("{n:.*}", (13 - exp).max(0) as usize);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn numbers_print_like_lua_5_1() {
        assert_eq!(format_number(12.0), "12");
        assert_eq!(format_number(-5.0), "-5");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(1.0 / 3.0), "0.33333333333333");
        assert_eq!(format_number(1e15), "1e+15");
        assert_eq!(format_number(9007199254740992.0), "9.007199254741e+15");
        assert_eq!(format_number(1.5e-5), "1.5e-05");
        assert_eq!(format_number(123456.789), "123456.789");
    }
}
