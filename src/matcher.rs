//! Hindsight's message matcher: which messages a plugin sees.
//!
//! An expression such as `Type == "auth" && Fields[user] =~ "^adm"` is parsed once into a small
//! tree and then evaluated against each message's protobuf bytes through [`MessageView`]: header
//! values are compared in place, `Fields[name][fi][ai]` walks the fields without decoding the
//! rest, and nothing is allocated per message.
//!
//! The grammar and its semantics are lua_sandbox's (Hindsight 0.16): string headers (Type,
//! Logger, Hostname, EnvVersion, Payload, Uuid) compare with `== != < <= > >=` or match Lua
//! patterns with `=~ !~`; Severity and Pid compare with numbers; Timestamp with a number (ns) or a
//! quoted RFC 3339 time; fields with strings, numbers, `TRUE`/`FALSE`, or `NIL` for existence.
//! `&&` binds tighter than `||`; at most 128 tests; strings at most 255 bytes; indexes 0–255.
//! A field of the wrong type, or missing, makes a test false (except `== NIL`). An absent string
//! header reads as the empty string, as in lua_sandbox; an absent Pid fails every comparison.
//! Errors name the column where parsing stopped.

use crate::message::{MessageView, Value};

/// Why an expression is not a valid matcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message_matcher {expression:?}: column {column}: {message}")]
pub struct MatcherError {
    pub expression: String,
    /// 1-based column where the problem was found.
    pub column: usize,
    pub message: String,
}

/// Parentheses nested at most.
const MAX_NESTING: usize = 64;

const MAX_TESTS: usize = 128;
const MAX_STRING: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Rel {
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Rel::Eq => ord == Equal,
            Rel::Ne => ord != Equal,
            Rel::Lt => ord == Less,
            Rel::Le => ord != Greater,
            Rel::Gt => ord == Greater,
            Rel::Ge => ord != Less,
        }
    }

    fn numbers(self, a: f64, b: f64) -> bool {
        match self {
            Rel::Eq => a == b,
            Rel::Ne => a != b,
            Rel::Lt => a < b,
            Rel::Le => a <= b,
            Rel::Gt => a > b,
            Rel::Ge => a >= b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Type,
    Logger,
    Hostname,
    EnvVersion,
    Payload,
    Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumericHeader {
    Severity,
    Pid,
    Timestamp,
}

#[derive(Debug, Clone)]
enum StringOp {
    Compare(Rel, Vec<u8>),
    /// A Lua pattern (checked when parsed); `true` for `=~`, `false` for `!~`.
    Pattern(Pattern<'static>, bool),
}

impl StringOp {
    fn test(&self, value: &[u8]) -> bool {
        match self {
            StringOp::Compare(rel, expected) => rel.holds(value.cmp(expected)),
            StringOp::Pattern(pattern, positive) => pattern.is_match(value) == *positive,
        }
    }
}

#[derive(Debug, Clone)]
struct FieldRef {
    name: Vec<u8>,
    fi: usize,
    ai: usize,
}

impl FieldRef {
    fn value<'a>(&self, m: &MessageView<'a>) -> Option<Value<'a>> {
        m.field_value(&self.name, self.fi, self.ai)
    }
}

#[derive(Debug, Clone)]
enum Test {
    Const(bool),
    Header(Header, StringOp),
    Numeric(NumericHeader, Rel, f64),
    FieldString(FieldRef, StringOp),
    FieldNumber(FieldRef, Rel, f64),
    /// `== NIL` when `exists` is false, `!= NIL` when true.
    FieldExists(FieldRef, bool),
}

#[derive(Debug, Clone)]
enum Node {
    Test(Test),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

/// A compiled message matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: Node,
    expression: String,
}

impl Matcher {
    /// Parses an expression.
    pub fn new(expression: &str) -> Result<Self, MatcherError> {
        let mut parser = Parser {
            src: expression.as_bytes(),
            pos: 0,
            tests: 0,
            depth: 0,
            expression,
        };
        parser.skip_space();
        let root = parser.ored()?;
        if parser.pos < parser.src.len() {
            return Err(parser.error("expected `&&`, `||` or the end of the expression"));
        }
        Ok(Matcher {
            root,
            expression: expression.to_owned(),
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the message matches.
    pub fn matches(&self, m: &MessageView) -> bool {
        eval(&self.root, m)
    }
}

fn eval(node: &Node, m: &MessageView) -> bool {
    match node {
        Node::Test(test) => eval_test(test, m),
        Node::And(a, b) => eval(a, m) && eval(b, m),
        Node::Or(a, b) => eval(a, m) || eval(b, m),
    }
}

fn eval_test(test: &Test, m: &MessageView) -> bool {
    match test {
        Test::Const(b) => *b,
        Test::Header(header, op) => {
            let value: &[u8] = match header {
                Header::Type => m.r#type().unwrap_or_default(),
                Header::Logger => m.logger().unwrap_or_default(),
                Header::Hostname => m.hostname().unwrap_or_default(),
                Header::EnvVersion => m.env_version().unwrap_or_default(),
                Header::Payload => m.payload().unwrap_or_default(),
                Header::Uuid => m.uuid(),
            };
            op.test(value)
        }
        Test::Numeric(header, rel, expected) => {
            let value = match header {
                NumericHeader::Severity => m.severity() as f64,
                NumericHeader::Pid => match m.pid() {
                    Some(pid) => pid as f64,
                    None => return false,
                },
                NumericHeader::Timestamp => m.timestamp() as f64,
            };
            rel.numbers(value, *expected)
        }
        Test::FieldString(field, op) => match field.value(m) {
            Some(Value::String(s) | Value::Bytes(s)) => op.test(s),
            _ => false,
        },
        Test::FieldNumber(field, rel, expected) => match field.value(m) {
            Some(v @ (Value::Integer(_) | Value::Double(_) | Value::Bool(_))) => {
                rel.numbers(v.as_f64(), *expected)
            }
            _ => false,
        },
        Test::FieldExists(field, exists) => field.value(m).is_some() == *exists,
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    tests: usize,
    /// Parentheses open around the position: the parser recurses into each, so their depth
    /// is bounded (a hundred thousand `(` overflowed the stack).
    depth: usize,
    expression: &'a str,
}

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> MatcherError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> MatcherError {
        // Columns count characters, so a multi-byte character before the error counts once.
        let column = String::from_utf8_lossy(&self.src[..pos.min(self.src.len())])
            .chars()
            .count()
            + 1;
        MatcherError {
            expression: self.expression.to_owned(),
            column,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        while matches!(self.src.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.src[self.pos..].starts_with(token.as_bytes()) {
            self.pos += token.len();
            self.skip_space();
            true
        } else {
            false
        }
    }

    fn ored(&mut self) -> Result<Node, MatcherError> {
        let mut node = self.anded()?;
        while self.eat("||") {
            node = Node::Or(Box::new(node), Box::new(self.anded()?));
        }
        Ok(node)
    }

    fn anded(&mut self) -> Result<Node, MatcherError> {
        let mut node = self.expr()?;
        while self.eat("&&") {
            node = Node::And(Box::new(node), Box::new(self.expr()?));
        }
        Ok(node)
    }

    fn expr(&mut self) -> Result<Node, MatcherError> {
        let open = self.pos;
        if self.eat("(") {
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(self.error_at(
                    open,
                    format!("parentheses nested more than {MAX_NESTING} deep"),
                ));
            }
            let node = self.ored()?;
            self.depth -= 1;
            if !self.eat(")") {
                return Err(self.error_at(open, "this parenthesis is never closed"));
            }
            return Ok(node);
        }
        self.tests += 1;
        if self.tests > MAX_TESTS {
            return Err(self.error(format!("too many tests: at most {MAX_TESTS}")));
        }
        let test = self.test()?;
        self.skip_space();
        Ok(Node::Test(test))
    }

    fn word(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self
            .src
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn test(&mut self) -> Result<Test, MatcherError> {
        let start = self.pos;
        if self.src[self.pos..].starts_with(b"Fields[") {
            return self.field_test();
        }
        let word = self.word();
        let header = match word {
            b"TRUE" => return Ok(Test::Const(true)),
            b"FALSE" => return Ok(Test::Const(false)),
            b"Type" => Header::Type,
            b"Logger" => Header::Logger,
            b"Hostname" => Header::Hostname,
            b"EnvVersion" => Header::EnvVersion,
            b"Payload" => Header::Payload,
            b"Uuid" => Header::Uuid,
            b"Severity" | b"Pid" | b"Timestamp" => return self.numeric_test(word),
            b"" => {
                return Err(self.error_at(
                    start,
                    "expected a test such as `Type == \"x\"`, `TRUE` or `(`",
                ));
            }
            other => {
                return Err(self.error_at(
                    start,
                    format!(
                        "unknown variable `{}`: use Type, Logger, Hostname, EnvVersion, Payload, Uuid, Severity, Pid, Timestamp or Fields[name]",
                        String::from_utf8_lossy(other)
                    ),
                ));
            }
        };
        self.skip_space();
        let op = self.string_op()?;
        Ok(Test::Header(header, op))
    }

    /// `== != < <= > >=` followed by a string, or `=~ !~` followed by a pattern.
    fn string_op(&mut self) -> Result<StringOp, MatcherError> {
        if self.eat("=~") {
            return self.pattern(true);
        }
        if self.eat("!~") {
            return self.pattern(false);
        }
        let rel = self.relational()?;
        let at = self.pos;
        match self.string()? {
            Some(s) => Ok(StringOp::Compare(rel, s)),
            None => Err(self.error_at(at, "expected a quoted string")),
        }
    }

    fn pattern(&mut self, positive: bool) -> Result<StringOp, MatcherError> {
        let at = self.pos;
        let Some(pattern) = self.string()? else {
            return Err(self.error_at(at, "expected a quoted Lua pattern"));
        };
        match Pattern::new(&pattern) {
            Ok(pattern) => Ok(StringOp::Pattern(pattern, positive)),
            Err(e) => Err(self.error_at(at, format!("bad Lua pattern: {e}"))),
        }
    }

    fn relational(&mut self) -> Result<Rel, MatcherError> {
        for (token, rel) in [
            ("==", Rel::Eq),
            ("!=", Rel::Ne),
            (">=", Rel::Ge),
            (">", Rel::Gt),
            ("<=", Rel::Le),
            ("<", Rel::Lt),
        ] {
            if self.eat(token) {
                return Ok(rel);
            }
        }
        Err(self.error("expected an operator: == != < <= > >= =~ !~"))
    }

    /// A `"…"` or `'…'` string with `\"`/`\'` escapes, or `None` if there is no quote here.
    fn string(&mut self) -> Result<Option<Vec<u8>>, MatcherError> {
        let start = self.pos;
        let Some(&quote @ (b'"' | b'\'')) = self.src.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.src.get(self.pos) {
                None => return Err(self.error_at(start, "this string is never closed")),
                Some(&b'\\') if matches!(self.src.get(self.pos + 1), Some(b'"' | b'\'')) => {
                    out.push(self.src[self.pos + 1]);
                    self.pos += 2;
                }
                Some(&c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        if out.len() > MAX_STRING {
            return Err(self.error_at(
                start,
                format!("string of {} bytes is longer than {MAX_STRING}", out.len()),
            ));
        }
        self.skip_space();
        Ok(Some(out))
    }

    /// `[+-]? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<f64> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.src.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos - s
        };
        if matches!(self.src.get(self.pos), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        match self.src.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => {
                self.pos = start;
                return None;
            }
        }
        if self.src.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                self.pos = start;
                return None;
            }
        }
        if matches!(self.src.get(self.pos), Some(b'e' | b'E')) {
            let before = self.pos;
            self.pos += 1;
            if matches!(self.src.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                self.pos = before;
            }
        }
        let text = std::str::from_utf8(&self.src[start..self.pos]).ok()?;
        let value = text.parse().ok();
        self.skip_space();
        value
    }

    fn numeric_test(&mut self, word: &[u8]) -> Result<Test, MatcherError> {
        let header = match word {
            b"Severity" => NumericHeader::Severity,
            b"Pid" => NumericHeader::Pid,
            _ => NumericHeader::Timestamp,
        };
        self.skip_space();
        let rel = self.relational()?;
        let at = self.pos;
        if let Some(value) = self.number() {
            return Ok(Test::Numeric(header, rel, value));
        }
        if header == NumericHeader::Timestamp
            && let Some(text) = self.string()?
        {
            let ns = crate::time::parse_rfc3339(&text).ok_or_else(|| {
                self.error_at(
                    at,
                    "expected an RFC 3339 time such as '2015-04-11T17:30:26Z'",
                )
            })?;
            return Ok(Test::Numeric(header, rel, ns));
        }
        let what = if header == NumericHeader::Timestamp {
            "a number or a quoted RFC 3339 time"
        } else {
            "a number"
        };
        Err(self.error_at(
            at,
            format!("{} is compared with {what}", String::from_utf8_lossy(word)),
        ))
    }

    fn index(&mut self) -> Result<usize, MatcherError> {
        let start = self.pos;
        if self.src.get(self.pos) != Some(&b'[') {
            return Ok(0);
        }
        self.pos += 1;
        let digits_at = self.pos;
        while self.src.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        let digits = &self.src[digits_at..self.pos];
        if digits.is_empty() || self.src.get(self.pos) != Some(&b']') {
            return Err(self.error_at(start, "an index is a number from 0 to 255 in brackets"));
        }
        self.pos += 1;
        let value: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(usize::MAX);
        if value > 255 {
            return Err(self.error_at(start, "an index is a number from 0 to 255 in brackets"));
        }
        Ok(value)
    }

    fn field_test(&mut self) -> Result<Test, MatcherError> {
        let start = self.pos;
        self.pos += b"Fields[".len();
        let name_start = self.pos;
        while self.src.get(self.pos).is_some_and(|&b| b != b']') {
            self.pos += 1;
        }
        if self.pos >= self.src.len() {
            return Err(self.error_at(start, "`Fields[` is never closed with `]`"));
        }
        let name = self.src[name_start..self.pos].to_vec();
        if name.is_empty() {
            return Err(self.error_at(start, "a field needs a name: Fields[name]"));
        }
        self.pos += 1;
        let fi = self.index()?;
        let ai = self.index()?;
        if self.src.get(self.pos) == Some(&b'[') {
            return Err(self.error("a field takes at most two indexes: Fields[name][field][array]"));
        }
        self.skip_space();
        let field = FieldRef { name, fi, ai };
        if self.eat("=~") {
            return Ok(Test::FieldString(field, self.pattern(true)?));
        }
        if self.eat("!~") {
            return Ok(Test::FieldString(field, self.pattern(false)?));
        }
        let rel = self.relational()?;
        let at = self.pos;
        if let Some(s) = self.string()? {
            return Ok(Test::FieldString(field, StringOp::Compare(rel, s)));
        }
        if let Some(n) = self.number() {
            return Ok(Test::FieldNumber(field, rel, n));
        }
        let word = self.word();
        let constant = match word {
            b"TRUE" => Some(Test::FieldNumber(field.clone(), rel, 1.0)),
            b"FALSE" => Some(Test::FieldNumber(field.clone(), rel, 0.0)),
            b"NIL" => Some(Test::FieldExists(field.clone(), rel == Rel::Ne)),
            _ => None,
        };
        match constant {
            Some(test) if matches!(rel, Rel::Eq | Rel::Ne) => {
                self.skip_space();
                Ok(test)
            }
            Some(_) => {
                Err(self.error_at(at, "TRUE, FALSE and NIL are compared with == or != only"))
            }
            None => {
                Err(self.error_at(at, "expected a quoted string, a number, TRUE, FALSE or NIL"))
            }
        }
    }
}

pub(crate) mod pattern;
#[cfg(test)]
mod tests;

use pattern::Pattern;
