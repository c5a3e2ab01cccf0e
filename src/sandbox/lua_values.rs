//! How Lua 5.1 names and prints values, as Hindsight's plugins (and their tests) expect.

use mlua::Value;

/// A value's Lua type name; Lua 5.1 has one number type, whatever mlua calls it.
pub fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// How lua_sandbox writes a number into output (`add_to_payload`, `output`, a circular
/// buffer's rows): `nan`, `inf`, `-inf`; outside the 32-bit integer range `%0.17g`; otherwise
/// the integer part and up to eight decimals (trailing zeros dropped, the last one rounded,
/// halves as lua_sandbox rounds them).
pub fn format_output_number(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d < i32::MIN as f64 || d > i32::MAX as f64 {
        return format_g17(d);
    }
    const MAGNITUDE: f64 = 100_000_000.0;
    let negative = d < 0.0;
    let d = d.abs();
    let mut number = d as u64;
    let scaled = (d - number as f64) * MAGNITUDE;
    let mut fraction = scaled as u64;
    let rest = scaled - fraction as f64;
    if rest > 0.5 {
        fraction += 1;
        if fraction >= MAGNITUDE as u64 {
            fraction = 0;
            number += 1;
        }
    } else if rest == 0.5 && (fraction == 0 || fraction & 1 == 1) {
        fraction += 1;
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&number.to_string());
    if fraction != 0 {
        let digits = format!("{fraction:08}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// C's `%0.17g`.
fn format_g17(d: f64) -> String {
    let exp = d.abs().log10().floor() as i32;
    if !(-4..17).contains(&exp) {
        let s = format!("{d:.16e}");
        let (mantissa, exponent) = s.split_once('e').expect("exponent form");
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let exponent: i32 = exponent.parse().expect("exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let s = format!("{d:.*}", (16 - exp).max(0) as usize);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
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

#[cfg(test)]
mod output_number_tests {
    use super::format_output_number as f;

    #[test]
    fn numbers_are_written_as_lua_sandbox_writes_output() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(1.0 / 3.0), "0.33333333");
        assert_eq!(f(1.05), "1.05");
        assert_eq!(f(0.1 + 0.2), "0.3");
        assert_eq!(f(0.999_999_999), "1");
        assert_eq!(f(f64::NAN), "nan");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(3e9), "3000000000");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1_700_000_000_123.0), "1700000000123");
    }
}
