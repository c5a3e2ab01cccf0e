//! How `blink cat` shows messages and records: Hindsight's text layout or one JSON object a line.
//!
//! The text layout of a Heka message is `lsb_heka_cat`'s, so output can be compared with what
//! Hindsight's own tools print. JSON uses the Heka names as keys; absent optional headers are
//! left out, Fields map names to a value (or an array for repeated values), BYTES values are
//! base64, and text that is not UTF-8 is shown with U+FFFD replacements.

use std::fmt::Write as _;

use base64::Engine as _;
use blink::log::batch::Record;
use blink::message::{MessageView, Value, format_uuid};
use blink::time::format_rfc3339_nanos;
use serde_json::{Map, Value as Json, json};

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn or_nil(bytes: Option<&[u8]>) -> std::borrow::Cow<'_, str> {
    bytes.map_or("<nil>".into(), lossy)
}

/// Bytes as `lsb_heka_cat` shows a BYTES value: printable ASCII as is, the rest `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn text_value(value: Value) -> String {
    match value {
        Value::String(s) => lossy(s).into_owned(),
        Value::Bytes(b) => escaped(b),
        Value::Integer(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}

/// A message in `lsb_heka_cat`'s layout, ending with a blank line.
pub fn message_text(m: &MessageView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, ":Uuid: {}", format_uuid(m.uuid()));
    let _ = writeln!(out, ":Timestamp: {}", format_rfc3339_nanos(m.timestamp()));
    let _ = writeln!(out, ":Type: {}", or_nil(m.r#type()));
    let _ = writeln!(out, ":Logger: {}", or_nil(m.logger()));
    let _ = writeln!(out, ":Severity: {}", m.severity());
    let _ = writeln!(out, ":Payload: {}", or_nil(m.payload()));
    let _ = writeln!(out, ":EnvVersion: {}", or_nil(m.env_version()));
    let _ = writeln!(
        out,
        ":Pid: {}",
        m.pid().map_or("<nil>".into(), |p| p.to_string())
    );
    let _ = writeln!(out, ":Hostname: {}", or_nil(m.hostname()));
    out.push_str(":Fields:\n");
    for field in m.fields() {
        let values: Vec<String> = field.values().map(text_value).collect();
        let _ = writeln!(
            out,
            "    | name: {} type: {} representation: {} value: {}",
            lossy(field.name()),
            field.value_type() as u8,
            or_nil(field.representation()),
            values.join("|")
        );
    }
    out.push('\n');
    out
}

fn json_value(value: Value) -> Json {
    match value {
        Value::String(s) => Json::String(lossy(s).into_owned()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Integer(i) => json!(i),
        Value::Double(d) => json!(d),
        Value::Bool(b) => json!(b),
    }
}

/// A message as one JSON object keyed by the Heka names.
pub fn message_json(m: &MessageView) -> Json {
    let mut obj = Map::new();
    obj.insert("Uuid".into(), json!(format_uuid(m.uuid())));
    obj.insert("Timestamp".into(), json!(m.timestamp()));
    let text = |obj: &mut Map<String, Json>, key: &str, v: Option<&[u8]>| {
        if let Some(v) = v {
            obj.insert(key.into(), json!(lossy(v)));
        }
    };
    text(&mut obj, "Type", m.r#type());
    text(&mut obj, "Logger", m.logger());
    obj.insert("Severity".into(), json!(m.severity()));
    text(&mut obj, "Payload", m.payload());
    text(&mut obj, "EnvVersion", m.env_version());
    if let Some(pid) = m.pid() {
        obj.insert("Pid".into(), json!(pid));
    }
    text(&mut obj, "Hostname", m.hostname());
    // name → the value of each field of that name, in order.
    let mut occurrences: Map<String, Json> = Map::new();
    for field in m.fields() {
        let mut values: Vec<Json> = field.values().map(json_value).collect();
        let value = if values.len() == 1 {
            values.pop().expect("one value")
        } else {
            Json::Array(values)
        };
        let name = lossy(field.name()).into_owned();
        match occurrences.get_mut(&name) {
            Some(Json::Array(seen)) => seen.push(value),
            _ => {
                occurrences.insert(name, Json::Array(vec![value]));
            }
        }
    }
    // A name used once maps to its value; a name used several times to the array of them.
    let fields: Map<String, Json> = occurrences
        .into_iter()
        .map(|(name, seen)| match seen {
            Json::Array(mut seen) if seen.len() == 1 => (name, seen.pop().expect("one")),
            other => (name, other),
        })
        .collect();
    obj.insert("Fields".into(), Json::Object(fields));
    Json::Object(obj)
}

/// A plain (non-Heka) record as text: offset, timestamp, key and value, tab-separated.
pub fn record_text(partition: u32, r: &Record) -> String {
    let show = |b: &Option<bytes::Bytes>| b.as_ref().map_or("<null>".into(), |b| escaped(b));
    format!(
        "{partition}\t{}\t{}\t{}\t{}\n",
        r.offset,
        r.timestamp,
        show(&r.key),
        show(&r.value)
    )
}

/// A plain record as JSON; key, value and header values are text when UTF-8, else base64.
pub fn record_json(partition: u32, r: &Record) -> Json {
    let bytes = |b: Option<&[u8]>| match b {
        None => Json::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
        },
    };
    let headers: Vec<Json> = r
        .headers()
        .map(|(k, v)| json!([lossy(k), bytes(v)]))
        .collect();
    json!({
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": bytes(r.key.as_deref()),
        "value": bytes(r.value.as_deref()),
        "headers": headers,
    })
}
