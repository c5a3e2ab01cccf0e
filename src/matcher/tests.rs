//! The matcher against a fixed message: expressions that must match, must not, or must not parse.

use super::*;
use crate::message::{Field, FieldValues, Message};
use crate::time::parse_rfc3339;

/// The message most tests run against (the shape of lua_sandbox's matcher test message).
fn message() -> Vec<u8> {
    let mut m = Message::new(*b"0123456789abcdef", 1_428_773_426_113_040_228);
    m.r#type = Some(b"TEST".to_vec());
    m.logger = Some(b"GoSpec".to_vec());
    m.severity = Some(6);
    m.payload = Some(b"Test Payload".to_vec());
    m.env_version = Some(b"0.8".to_vec());
    m.pid = Some(32157);
    m.hostname = Some(b"trink-x230".to_vec());
    let s = |v: &str| FieldValues::String(vec![v.as_bytes().to_vec()]);
    m.fields = vec![
        Field::new("foo", s("bar")),
        Field::new("number", FieldValues::Integer(vec![64])),
        Field::new("bytes", FieldValues::Bytes(vec![b"data".to_vec()])),
        Field::new("int", FieldValues::Integer(vec![999, 1024])),
        Field::new("double", FieldValues::Double(vec![99.9])),
        Field::new("bool", FieldValues::Bool(vec![true])),
        Field::new("foo", s("alternate")),
        Field::new("Payload", s("name=test;type=web;")),
        Field::new("zero", FieldValues::Integer(vec![0])),
        Field::new("string", s("43")),
        Field::new("with space", s("yes")),
        Field::new("flags", FieldValues::Bool(vec![false, true])),
        Field::new("utf8", s("Zürich")),
    ];
    m.to_bytes()
}

/// A message with only the required headers.
fn bare() -> Vec<u8> {
    Message::new([0; 16], 0).to_bytes()
}

const MATCH: &[&str] = &[
    "TRUE",
    "Timestamp > 1.428773420000e+18",
    "Timestamp < 1.428773426999e18",
    "Timestamp == 1428773426113040228",
    "Timestamp > '2015-04-11T17:30:26Z'",
    "Timestamp > '2015-04-11T17:30:26.112Z'",
    "Timestamp < '2015-04-11T17:30:26.114Z'",
    "Timestamp < \"2015-04-11T18:30:26.114+01:00\"",
    "Timestamp > '2015-04-11T12:30:26-05:00'",
    "Timestamp >= '2015-04-11T17:30:26Z'",
    "Timestamp != 0",
    "Timestamp > 0",
    "(Severity == 7 || Payload == 'Test Payload') && Type == 'TEST'",
    "EnvVersion == \"0.8\"",
    "EnvVersion == '0.8'",
    "EnvVersion != '0.9'",
    "EnvVersion > '0.7'",
    "EnvVersion >= '0.8'",
    "EnvVersion < '0.9'",
    "EnvVersion <= '0.8'",
    "Hostname != ''",
    "Hostname == 'trink-x230'",
    "Logger == 'GoSpec'",
    "Pid != 0",
    "Pid == 32157",
    "Pid > 32156.5",
    "Severity != 5",
    "Severity < 7",
    "Severity <= 7",
    "Severity <= 6",
    "Severity == 6",
    "Severity > 5",
    "Severity >= 5",
    "Severity >= 6",
    "Severity == 6.0",
    "Severity == 60e-1",
    "Severity > -1",
    "Severity < +7",
    "Type != 'test'",
    "Type == 'TEST' && Severity == 6",
    "Type == 'test' && Severity == 7 || Payload == 'Test Payload'",
    "Type == 'TEST'",
    "Type == 'foo' || Type == 'bar' || Type == 'TEST'",
    "Type=='TEST'&&Severity==6",
    "  Type == 'TEST'  ",
    "\tType\t==\t'TEST'\t",
    "((Type == 'TEST'))",
    "(Type == 'x' || (Severity == 6 && Logger == 'GoSpec'))",
    "FALSE || TRUE",
    "TRUE && TRUE",
    "Uuid == '0123456789abcdef'",
    "Uuid =~ '^0123'",
    "Fields[foo] == 'bar'",
    "Fields[foo][0] == 'bar'",
    "Fields[foo][0][0] == 'bar'",
    "Fields[foo][1] == 'alternate'",
    "Fields[foo][1][0] == 'alternate'",
    "Fields[foo] <= 'barx'",
    "Fields[foo] < 'barx'",
    "Fields[foo] >= 'bar'",
    "Fields[foo] > 'baq'",
    "Fields[foo] != 'bara'",
    "Fields[bytes] == 'data'",
    "Fields[bytes] =~ '^da'",
    "Fields[int] == 999",
    "Fields[int][0][1] == 1024",
    "Fields[int] < 1000",
    "Fields[number] == 64",
    "Fields[number] >= 6.4e1",
    "Fields[double] == 99.9",
    "Fields[double] > 99",
    "Fields[bool] == TRUE",
    "Fields[bool] != FALSE",
    "Fields[bool] == 1",
    "Fields[flags] == FALSE",
    "Fields[flags][0][1] == TRUE",
    "Fields[zero] == 0",
    "Fields[zero] == FALSE",
    "Fields[string] == '43'",
    "Fields[int] != NIL",
    "Fields[int][0][1] != NIL",
    "Fields[int][0][2] == NIL",
    "Fields[missing] == NIL",
    "Fields[foo][2] == NIL",
    "Fields[with space] == 'yes'",
    "Fields[utf8] == 'Zürich'",
    "Fields[utf8] =~ 'rich$'",
    "Type =~ 'TEST'",
    "Type !~ 'bogus'",
    "Type =~ 'TEST' && Payload =~ 'Payload'",
    "Fields[foo][1] =~ 'alt'",
    "Fields[Payload] =~ 'name=%w+'",
    "Fields[Payload] =~ 'type=(%a+);'",
    "Type =~ 'ST'",
    "Type =~ '^TE'",
    "Type =~ 'ST$'",
    "Type !~ '^te'",
    "Type !~ 'st$'",
    "Type =~ '^T.S.$'",
    "Type =~ '^[A-Z]+$'",
    "Type =~ '%u%u%u%u'",
    "Payload =~ 'Test%s'",
    "Payload =~ '^Test.*load$'",
    "Hostname =~ '%-x230$'",
    "Logger =~ 'Go'",
    "Fields[foo][255] == NIL",
    "Fields[foo][0][255] == NIL",
    "Type == \"TEST\" || Fields[missing] == 'x'",
    "Fields[missing] == 'x' || Type == 'TEST'",
    "Fields[missing] != NIL || Fields[foo] == 'bar'",
];

const NO_MATCH: &[&str] = &[
    "FALSE",
    "TRUE && FALSE",
    "FALSE || FALSE",
    "Timestamp == 1e9",
    "Timestamp > '2015-04-11T17:30:27Z'",
    "Timestamp < '2015-04-11T17:30:26Z'",
    "Timestamp > '2015-04-11T18:30:27+01:00'",
    "Type == 'test'&&(Severity==7||Payload=='Test Payload')",
    "EnvVersion == '0.9'",
    "EnvVersion != '0.8'",
    "EnvVersion > '0.9'",
    "EnvVersion >= '0.9'",
    "EnvVersion < '0.8'",
    "EnvVersion <= '0.7'",
    "Severity == 5",
    "Severity != 6",
    "Severity < 6",
    "Severity <= 5",
    "Severity > 6",
    "Severity >= 7",
    "Pid == 0",
    "Pid < 100",
    "Fields[foo] == 'ba'",
    "Fields[foo][1] == 'bar'",
    "Fields[foo][0][1] == 'bar'",
    "Fields[bool] == FALSE",
    "Fields[foo] > 'bara'",
    "Fields[foo] >= 'bara'",
    "Fields[foo] == 'bara'",
    "Fields[foo] == 0",
    "Fields[number] == '64'",
    "Fields[int] == 1024",
    "Fields[double] < 99.8",
    "Type =~ 'Test'",
    "Type !~ 'TEST'",
    "Payload =~ '^Payload'",
    "Type == \"te'st\"",
    "Type == 'te\"st'",
    "Fields[int] =~ '999'",
    "Fields[zero] == \"0\"",
    "Fields[string] == 43",
    "Fields[int] == NIL",
    "Fields[int][0][1] == NIL",
    "Fields[missing] != NIL",
    "Fields[missing] == 'x'",
    "Fields[missing] != 'x'",
    "Fields[missing] < 5",
    "Fields[missing] !~ 'x'",
    "Fields[foo][2] == 'bar'",
    "Type =~ '^te'",
    "Type =~ 'st$'",
    "Type !~ '^TE'",
    "Type !~ 'ST$'",
    "Type =~ '^[a-z]+$'",
    "Logger =~ '.' && Type =~ '^anything'",
    "Uuid == 'x'",
    "Fields[with space] == 'no'",
];

const MALFORMED: &[(&str, usize)] = &[
    ("", 1),
    ("   ", 4),
    ("bogus", 1),
    ("Type = 'test'", 6),
    ("Type == test", 9),
    ("Type == 'test' Severity == 6", 16),
    ("Pid == 'test='", 8),
    (
        "Type == 'test' && (Severity==7 || Payload == 'Test Payload'",
        19,
    ),
    ("(Type == 'x'", 1),
    ("Type == 'x')", 12),
    ("Invalid == 'bogus'", 1),
    ("type == 'TEST'", 1),
    ("Fields[]", 1),
    ("Fields[] == 1", 1),
    ("Fields[test][]", 13),
    ("Fields[test][a]", 13),
    ("Fields[test][0][]", 16),
    ("Fields[test][0][a]", 16),
    ("Fields[test][0][0][]", 19),
    ("Fields[test][xxxx", 13),
    ("Fields[test", 1),
    ("Fields[test] == ", 17),
    ("Fields[test] > NIL", 16),
    ("Fields[test] < TRUE", 16),
    ("Fields[test] == nil", 17),
    ("Fields[test] =~ 5", 17),
    ("Pid =~ '6'", 5),
    ("Pid !~ '6'", 5),
    ("Severity == 'x'", 13),
    ("Severity == 01", 14),
    ("Severity == 1.", 13),
    ("Type =~ 'test", 9),
    ("Type != 'test\"", 9),
    ("Pid =~ 6", 5),
    ("NIL", 1),
    ("Type == NIL", 9),
    ("Uuid == NIL", 9),
    ("TRUE FALSE", 6),
    ("TRUE &&", 8),
    ("&& TRUE", 1),
    ("|| TRUE", 1),
    ("TRUE & TRUE", 6),
    ("TRUE | TRUE", 6),
    ("Timestamp == '20150411T173026'", 14),
    ("Timestamp == '2015-13-11T17:30:26Z'", 14),
    ("Timestamp == '2015-04-11 17:30:26Z'", 14),
    ("Timestamp == 'now'", 14),
    ("Timestamp =~ '2015'", 11),
    ("Type =~ '[a'", 9),
    ("Type =~ 'abc%'", 9),
    ("Fields[test][256] == 1", 13),
    ("Fields[test][0][256] == 1", 16),
    ("()", 2),
];

fn check(expression: &str, message: &[u8]) -> bool {
    let matcher =
        Matcher::new(expression).unwrap_or_else(|e| panic!("{expression:?} should parse: {e}"));
    matcher.matches(&MessageView::parse(message).unwrap())
}

#[test]
fn the_table_covers_at_least_150_expressions() {
    assert!(MATCH.len() + NO_MATCH.len() + MALFORMED.len() >= 150);
}

#[test]
fn expressions_that_match() {
    let m = message();
    let failed: Vec<_> = MATCH.iter().filter(|e| !check(e, &m)).collect();
    assert!(failed.is_empty(), "should match: {failed:#?}");
}

#[test]
fn expressions_that_do_not_match() {
    let m = message();
    let failed: Vec<_> = NO_MATCH.iter().filter(|e| check(e, &m)).collect();
    assert!(failed.is_empty(), "should not match: {failed:#?}");
}

#[test]
fn malformed_expressions_are_refused_at_the_right_column() {
    let mut wrong = Vec::new();
    for &(expression, column) in MALFORMED {
        match Matcher::new(expression) {
            Ok(_) => wrong.push(format!("{expression:?} parsed")),
            Err(e) if e.column != column => wrong.push(format!(
                "{expression:?}: column {} not {column}: {e}",
                e.column
            )),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn absent_headers() {
    let m = bare();
    assert!(
        check("Type == ''", &m),
        "absent string header reads as empty"
    );
    assert!(check("Type != 'x'", &m));
    assert!(check("Severity == 7", &m), "default severity");
    assert!(!check("Pid == 0", &m), "absent Pid fails every test");
    assert!(!check("Pid != 0", &m));
    assert!(check("Fields[x] == NIL", &m));
}

#[test]
fn limits() {
    let tests = vec!["Type =~ '.'"; 128].join(" && ");
    assert!(Matcher::new(&tests).is_ok());
    let err = Matcher::new(&format!("{tests} && Type =~ '.'")).unwrap_err();
    assert!(err.message.contains("too many tests"), "{err}");
    let long = "x".repeat(255);
    assert!(Matcher::new(&format!("Type == '{long}'")).is_ok());
    let err = Matcher::new(&format!("Type == '{long}y'")).unwrap_err();
    assert!(err.message.contains("longer than 255"), "{err}");
    // Nesting is bounded before it can overflow the parser's stack (found by fuzzing).
    let nested = |n: usize| format!("{}TRUE{}", "(".repeat(n), ")".repeat(n));
    assert!(Matcher::new(&nested(64)).is_ok());
    let err = Matcher::new(&nested(65)).unwrap_err();
    assert!(err.message.contains("nested more than 64"), "{err}");
    assert!(Matcher::new(&"(".repeat(1_000_000)).is_err());
}

#[test]
fn errors_show_the_expression_and_column() {
    let err = Matcher::new("Type = 'test'").unwrap_err().to_string();
    assert_eq!(
        err,
        "message_matcher \"Type = 'test'\": column 6: expected an operator: == != < <= > >= =~ !~"
    );
}

#[test]
fn rfc3339_times() {
    assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(
        parse_rfc3339(b"2015-04-11T17:30:26Z"),
        Some(1_428_773_426e9)
    );
    assert_eq!(
        parse_rfc3339(b"2015-04-11T18:30:26+01:00"),
        Some(1_428_773_426e9)
    );
    assert_eq!(
        parse_rfc3339(b"2015-04-11T18:30:26+0100"),
        Some(1_428_773_426e9)
    );
    assert_eq!(
        parse_rfc3339(b"2000-02-29T00:00:00.5Z"),
        Some(951_782_400.5e9)
    );
    assert_eq!(parse_rfc3339(b"2015-04-11T17:30:26"), None);
    assert_eq!(parse_rfc3339(b"2015-04-11T17:30:26.Z"), None);
}
