//! Codec tests: hand-written protobuf bytes for every field kind, strictness, and round trips.

use super::*;
use proptest::prelude::*;

const UUID: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// Uuid (tag 1) and Timestamp (tag 2) = 1, the smallest valid message.
fn header() -> Vec<u8> {
    let mut b = vec![0x0a, 16];
    b.extend_from_slice(&UUID);
    b.extend_from_slice(&[0x10, 0x01]);
    b
}

fn with_field(field: &[u8]) -> Vec<u8> {
    let mut b = header();
    b.push(0x52);
    b.push(field.len() as u8);
    b.extend_from_slice(field);
    b
}

#[test]
fn decodes_every_header_field() {
    let mut b = header();
    b.extend_from_slice(&[0x1a, 1, b'T', 0x22, 1, b'L', 0x28, 3, 0x32, 2, b'h', b'i']);
    b.extend_from_slice(&[0x3a, 3, b'1', b'.', b'0', 0x40, 42, 0x4a, 1, b'H']);
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.uuid(), &UUID);
    assert_eq!(m.timestamp(), 1);
    assert_eq!(m.r#type(), Some(&b"T"[..]));
    assert_eq!(m.logger(), Some(&b"L"[..]));
    assert_eq!(m.severity(), 3);
    assert_eq!(m.payload(), Some(&b"hi"[..]));
    assert_eq!(m.env_version(), Some(&b"1.0"[..]));
    assert_eq!(m.pid(), Some(42));
    assert_eq!(m.hostname(), Some(&b"H"[..]));
    assert_eq!(m.field_count(), 0);
}

#[test]
fn defaults_when_optional_fields_are_absent() {
    let b = header();
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.severity(), DEFAULT_SEVERITY);
    assert_eq!(m.severity_raw(), None);
    assert_eq!(m.pid(), None);
    assert_eq!(m.payload(), None);
}

#[test]
fn negative_numbers_use_ten_byte_varints() {
    let mut b = vec![0x0a, 16];
    b.extend_from_slice(&UUID);
    // Timestamp -1 and Severity -1 as protobuf writes them.
    b.push(0x10);
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    b.push(0x28);
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.timestamp(), -1);
    assert_eq!(m.severity(), -1);
    let owned = Message::from(&m);
    assert_eq!(owned.to_bytes(), b);
}

#[test]
fn string_field() {
    // name "u", value_string "alice"
    let b = with_field(&[0x0a, 1, b'u', 0x22, 5, b'a', b'l', b'i', b'c', b'e']);
    let m = MessageView::parse(&b).unwrap();
    let f = m.field(b"u", 0).unwrap();
    assert_eq!(f.value_type(), ValueType::String);
    assert_eq!(f.value(0), Some(Value::String(b"alice")));
    assert_eq!(f.value(1), None);
}

#[test]
fn bytes_field_with_representation() {
    let b = with_field(&[
        0x0a, 1, b'b', 0x10, 1, 0x1a, 2, b'm', b's', 0x2a, 2, 0x00, 0xff,
    ]);
    let m = MessageView::parse(&b).unwrap();
    let f = m.field(b"b", 0).unwrap();
    assert_eq!(f.value_type(), ValueType::Bytes);
    assert_eq!(f.representation(), Some(&b"ms"[..]));
    assert_eq!(f.value(0), Some(Value::Bytes(&[0x00, 0xff])));
}

#[test]
fn integer_field_unpacked_and_packed() {
    let single = with_field(&[0x0a, 1, b'i', 0x10, 2, 0x30, 7]);
    let m = MessageView::parse(&single).unwrap();
    assert_eq!(m.field(b"i", 0).unwrap().value(0), Some(Value::Integer(7)));

    let packed = with_field(&[0x0a, 1, b'i', 0x10, 2, 0x32, 4, 1, 2, 0xac, 0x02]);
    let m = MessageView::parse(&packed).unwrap();
    let f = m.field(b"i", 0).unwrap();
    assert_eq!(f.value_count(), 3);
    let values: Vec<_> = f.values().collect();
    assert_eq!(
        values,
        [Value::Integer(1), Value::Integer(2), Value::Integer(300)]
    );
}

#[test]
fn double_field_unpacked_and_packed() {
    let mut f = vec![0x0a, 1, b'd', 0x10, 3, 0x39];
    f.extend_from_slice(&0.25f64.to_le_bytes());
    let m_bytes = with_field(&f);
    let m = MessageView::parse(&m_bytes).unwrap();
    assert_eq!(
        m.field(b"d", 0).unwrap().value(0),
        Some(Value::Double(0.25))
    );

    let mut f = vec![0x0a, 1, b'd', 0x10, 3, 0x3a, 16];
    f.extend_from_slice(&1.5f64.to_le_bytes());
    f.extend_from_slice(&(-2.0f64).to_le_bytes());
    let m_bytes = with_field(&f);
    let m = MessageView::parse(&m_bytes).unwrap();
    let values: Vec<_> = m.field(b"d", 0).unwrap().values().collect();
    assert_eq!(values, [Value::Double(1.5), Value::Double(-2.0)]);
}

#[test]
fn bool_field_unpacked_and_packed() {
    let b = with_field(&[0x0a, 2, b'o', b'k', 0x10, 4, 0x40, 1]);
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.field(b"ok", 0).unwrap().value(0), Some(Value::Bool(true)));

    let b = with_field(&[0x0a, 1, b'f', 0x10, 4, 0x42, 3, 1, 0, 1]);
    let m = MessageView::parse(&b).unwrap();
    let values: Vec<_> = m.field(b"f", 0).unwrap().values().collect();
    assert_eq!(
        values,
        [Value::Bool(true), Value::Bool(false), Value::Bool(true)]
    );
}

#[test]
fn repeated_strings_and_repeated_names() {
    let mut b = with_field(&[0x0a, 1, b'a', 0x22, 1, b'x', 0x22, 1, b'y']);
    b.extend_from_slice(&[0x52, 6, 0x0a, 1, b'a', 0x22, 1, b'z']);
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.field_count(), 2);
    assert_eq!(
        m.field(b"a", 0).unwrap().value(1),
        Some(Value::String(b"y"))
    );
    assert_eq!(
        m.field(b"a", 1).unwrap().value(0),
        Some(Value::String(b"z"))
    );
    assert!(m.field(b"a", 2).is_none());
    assert!(m.field(b"b", 0).is_none());
}

#[test]
fn strict_rejections_name_the_problem() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0x10, 1], "missing required Uuid"),
        (
            vec![
                0x0a, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
            ],
            "missing required Timestamp",
        ),
        (vec![0x0a, 2, 1, 2, 0x10, 1], "Uuid is 2 bytes"),
        ([header(), vec![0x58, 1]].concat(), "unknown tag 11"),
        ([header(), vec![0x1a, 5, b'a']].concat(), "truncated"),
        ([header(), vec![0x18, 1]].concat(), "Type has wire type 0"),
        (with_field(&[0x22, 1, b'x']), "missing required Field.name"),
        (with_field(&[0x0a, 1, b'x', 0x10, 9]), "value_type 9"),
        (
            with_field(&[0x0a, 1, b'x', 0x10, 2, 0x22, 1, b'y']),
            "'x' is INTEGER but holds STRING",
        ),
        (with_field(&[0x0a, 1, b'x', 0x48, 1]), "unknown tag 9"),
        (
            with_field(&[0x0a, 1, b'x', 0x10, 3, 0x3a, 3, 0, 0, 0]),
            "not a multiple of 8",
        ),
        ([header(), vec![0x0b]].concat(), "wire type 3"),
    ];
    for (bytes, expected) in cases {
        let err = MessageView::parse(&bytes).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{err:?} should mention {expected:?}"
        );
    }
}

#[test]
fn error_offsets_point_into_nested_fields() {
    // header is 20 bytes; the field entry's key+len add 2; the bad tag is 3 bytes into the body.
    let b = with_field(&[0x0a, 1, b'x', 0x48, 1]);
    assert_eq!(
        MessageView::parse(&b).unwrap_err(),
        DecodeError::UnknownTag {
            tag: 9,
            wire_type: 0,
            at: 25
        }
    );
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn field_strategy() -> impl Strategy<Value = Field> {
    let values = prop_oneof![
        proptest::collection::vec(bytes_strategy(), 0..4).prop_map(FieldValues::String),
        proptest::collection::vec(bytes_strategy(), 0..4).prop_map(FieldValues::Bytes),
        proptest::collection::vec(any::<i64>(), 0..5).prop_map(FieldValues::Integer),
        proptest::collection::vec(
            any::<f64>().prop_filter("NaN never equals itself", |d| !d.is_nan()),
            0..5
        )
        .prop_map(FieldValues::Double),
        proptest::collection::vec(any::<bool>(), 0..5).prop_map(FieldValues::Bool),
    ];
    (
        bytes_strategy(),
        proptest::option::of(bytes_strategy()),
        values,
    )
        .prop_map(|(name, representation, values)| Field {
            name,
            representation,
            values,
        })
}

prop_compose! {
    fn message_strategy()(
        uuid: [u8; 16],
        timestamp: i64,
        r#type in proptest::option::of(bytes_strategy()),
        logger in proptest::option::of(bytes_strategy()),
        severity: Option<i32>,
        payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        env_version in proptest::option::of(bytes_strategy()),
        pid: Option<i32>,
        hostname in proptest::option::of(bytes_strategy()),
        fields in proptest::collection::vec(field_strategy(), 0..6),
    ) -> Message {
        Message { uuid, timestamp, r#type, logger, severity, payload, env_version, pid, hostname, fields }
    }
}

proptest! {
    #[test]
    fn encode_decode_round_trip(message in message_strategy()) {
        let bytes = message.to_bytes();
        prop_assert_eq!(bytes.len(), message.encoded_len());
        let view = MessageView::parse(&bytes).unwrap();
        prop_assert_eq!(Message::from(&view), message);
    }

    #[test]
    fn field_value_reads_what_field_reads(message in message_strategy()) {
        let bytes = message.to_bytes();
        let view = MessageView::parse(&bytes).unwrap();
        for field in &message.fields {
            for fi in 0..3 {
                for ai in 0..6 {
                    prop_assert_eq!(
                        view.field_value(&field.name, fi, ai),
                        view.field(&field.name, fi).and_then(|f| f.value(ai))
                    );
                }
            }
        }
        prop_assert_eq!(view.field_value(b"no such field name at all, surely", 0, 0), None);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(view) = MessageView::parse(&bytes) {
            // Whatever parses must be fully readable and re-encode to something that parses.
            let owned = Message::from(&view);
            prop_assert!(MessageView::parse(&owned.to_bytes()).is_ok());
        }
    }

    #[test]
    fn truncation_is_always_an_error(message in message_strategy(), cut in any::<prop::sample::Index>()) {
        let bytes = message.to_bytes();
        let cut = cut.index(bytes.len());
        // A strict prefix can still be a complete message only when it ends between top-level
        // entries after Uuid and Timestamp; anything else must be rejected, never misread.
        if let Ok(view) = MessageView::parse(&bytes[..cut]) {
            prop_assert_eq!(view.uuid(), &message.uuid);
        }
    }
}

#[test]
fn field_value_reads_fields_written_out_of_tag_order() {
    // value_integer 7 before value_type INTEGER; then the name last.
    let b = with_field(&[0x30, 7, 0x10, 2, 0x0a, 1, b'i']);
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.field_value(b"i", 0, 0), Some(Value::Integer(7)));
    assert_eq!(m.field_value(b"i", 0, 1), None);
    // Name first, then a packed double run before the value type.
    let mut field = vec![0x0a, 1, b'd', 0x3a, 16];
    field.extend_from_slice(&1.5f64.to_le_bytes());
    field.extend_from_slice(&2.5f64.to_le_bytes());
    field.extend_from_slice(&[0x10, 3]);
    let b = with_field(&field);
    let m = MessageView::parse(&b).unwrap();
    assert_eq!(m.field_value(b"d", 0, 1), Some(Value::Double(2.5)));
    assert_eq!(m.field_value(b"d", 0, 2), None);
}
