//! A JSON document as an arena of nodes: values are addressed by index, so a plugin holds
//! plain handles into it (lightuserdata in Lua), members keep their order, and a value can be
//! detached from its parent without moving anything.

use std::fmt::Write as _;

/// How deep a document may nest (RapidJSON's parser has no limit; Blink's stack does).
pub const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    /// Written without a fraction or exponent (RapidJSON's Int/Uint/Int64/Uint64).
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<usize>),
    Object(Vec<(String, usize)>),
}

#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Set on a node once it has been removed from its parent: iterators over it end.
    pub detached: Vec<bool>,
    /// About what the tree holds on the heap, and what it may (while it is being built).
    pub bytes: usize,
    limit: usize,
}

/// What one node costs besides its text.
const NODE_BYTES: usize = std::mem::size_of::<Node>() + 1;

impl Tree {
    pub fn root() -> usize {
        0
    }

    pub fn null() -> Tree {
        Tree {
            nodes: vec![Node::Null],
            detached: vec![false],
            bytes: NODE_BYTES,
            limit: usize::MAX,
        }
    }

    fn push(&mut self, node: Node) -> usize {
        self.bytes += NODE_BYTES
            + match &node {
                Node::Str(s) => s.len(),
                _ => 0,
            };
        self.nodes.push(node);
        self.detached.push(false);
        self.nodes.len() - 1
    }

    /// Adds `n` bytes held by a container (its slots, its keys).
    fn hold(&mut self, n: usize) {
        self.bytes += n;
    }

    fn over_limit(&self) -> bool {
        self.bytes > self.limit
    }

    /// Parses `text` into a tree of at most `limit` bytes; the error is RapidJSON's shape:
    /// `failed to parse offset:N message`.
    pub fn parse(text: &[u8], limit: usize) -> Result<Tree, String> {
        let mut tree = Tree {
            limit,
            ..Tree::default()
        };
        let mut reader = serde_json::Deserializer::from_slice(text);
        let result = serde::de::DeserializeSeed::deserialize(
            Seed {
                tree: &mut tree,
                depth: 0,
            },
            &mut reader,
        )
        .and_then(|root| reader.end().map(|()| root));
        match result {
            // The first node made is the outermost value's.
            Ok(root) => {
                debug_assert_eq!(root, Tree::root());
                Ok(tree)
            }
            Err(e) => Err(format!(
                "failed to parse offset:{} {}",
                offset_of(text, e.line(), e.column()),
                message_of(&e)
            )),
        }
    }

    /// The child of `node` under `key`: an object member (first of that name) or an array
    /// element (0-based).
    pub fn child(&self, node: usize, key: &Key) -> Option<usize> {
        match (&self.nodes[node], key) {
            (Node::Object(members), Key::Name(name)) => members
                .iter()
                .find(|(k, _)| k.as_bytes() == name.as_slice())
                .map(|(_, i)| *i),
            (Node::Array(items), Key::Index(i)) => items.get(*i).copied(),
            _ => None,
        }
    }

    /// Removes the child of `parent` under `key` from it; the removed node.
    pub fn detach(&mut self, parent: usize, key: &Key) -> Option<usize> {
        let removed = match (&mut self.nodes[parent], key) {
            (Node::Object(members), Key::Name(name)) => {
                let at = members
                    .iter()
                    .position(|(k, _)| k.as_bytes() == name.as_slice())?;
                members.remove(at).1
            }
            (Node::Array(items), Key::Index(i)) if *i < items.len() => items.remove(*i),
            _ => return None,
        };
        self.detached[removed] = true;
        Some(removed)
    }

    /// A new tree holding a copy of `node` and what it contains.
    pub fn copy_out(&self, node: usize) -> Tree {
        let mut out = Tree {
            limit: usize::MAX,
            ..Tree::default()
        };
        out.copy_from(self, node);
        out
    }

    fn copy_from(&mut self, from: &Tree, node: usize) -> usize {
        let at = self.push(Node::Null);
        let copied = match &from.nodes[node] {
            Node::Str(s) => {
                self.hold(s.len());
                Node::Str(s.clone())
            }
            Node::Array(items) => {
                Node::Array(items.iter().map(|&i| self.copy_from(from, i)).collect())
            }
            Node::Object(members) => Node::Object(
                members
                    .iter()
                    .map(|(k, i)| (k.clone(), self.copy_from(from, *i)))
                    .collect(),
            ),
            other => other.clone(),
        };
        self.nodes[at] = copied;
        at
    }

    /// `node` as compact JSON text, as RapidJSON's writer makes it.
    pub fn write(&self, node: usize, out: &mut String) {
        match &self.nodes[node] {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Node::UInt(u) => {
                let _ = write!(out, "{u}");
            }
            Node::Float(f) => write_float(*f, out),
            Node::Str(s) => write_string(s, out),
            Node::Array(items) => {
                out.push('[');
                for (n, &i) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    self.write(i, out);
                }
                out.push(']');
            }
            Node::Object(members) => {
                out.push('{');
                for (n, (k, i)) in members.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    self.write(*i, out);
                }
                out.push('}');
            }
        }
    }
}

/// An object key or an array index, as `find` and `remove` take them.
pub enum Key {
    Name(Vec<u8>),
    Index(usize),
}

pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        // RapidJSON refuses to write these; null keeps the text valid JSON.
        out.push_str("null");
        return;
    }
    match serde_json::Number::from_f64(f) {
        // Shortest round-trip digits; RapidJSON writes the exponent without a '+'.
        Some(n) => out.push_str(&n.to_string().replace("e+", "e")),
        None => out.push_str("null"),
    }
}

/// The byte offset of `line`:`column` (1-based) in `text`.
fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let mut at = 0;
    for _ in 1..line {
        match text[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at += p + 1,
            None => break,
        }
    }
    (at + column).min(text.len())
}

/// RapidJSON's words for what went wrong (plugins and their tests compare them), from
/// serde_json's; anything without a counterpart keeps serde_json's text.
fn message_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = match text.rfind(" at line ") {
        Some(p) => &text[..p],
        None => &text[..],
    };
    match what {
        "EOF while parsing a value" | "expected value" | "expected ident" | "invalid number" => {
            "Invalid value."
        }
        "EOF while parsing an object" | "key must be a string" => {
            "Missing a name for object member."
        }
        "expected `:`" => "Missing a colon after a name of object member.",
        "expected `,` or `}`" => "Missing a comma or '}' after an object member.",
        "EOF while parsing a list" | "expected `,` or `]`" => {
            "Missing a comma or ']' after an array element."
        }
        "EOF while parsing a string" => "Missing a closing quotation mark in string.",
        "invalid escape" => "Invalid escape character in string.",
        "invalid unicode code point" | "lone leading surrogate in hex escape" => {
            "The surrogate pair in string is invalid."
        }
        "trailing characters" => "The document root must not be followed by other values.",
        "number out of range" => "Number too big to be stored in double.",
        other => return other.to_string(),
    }
    .to_string()
}

struct Seed<'t> {
    tree: &'t mut Tree,
    depth: usize,
}

impl Seed<'_> {
    fn check<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.tree.over_limit() {
            return Err(E::custom(
                "the document is larger than the plugin's memory limit allows",
            ));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Seed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(self.tree.push(Node::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<usize, E> {
        Ok(self.tree.push(Node::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<usize, E> {
        Ok(self.tree.push(Node::Int(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<usize, E> {
        Ok(self.tree.push(match i64::try_from(n) {
            Ok(i) => Node::Int(i),
            Err(_) => Node::UInt(n),
        }))
    }
    fn visit_f64<E>(self, n: f64) -> Result<usize, E> {
        Ok(self.tree.push(Node::Float(n)))
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<usize, E> {
        let at = self.tree.push(Node::Str(s.to_owned()));
        self.check()?;
        Ok(at)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deeply"));
        }
        let at = self.tree.push(Node::Null);
        let mut items = Vec::new();
        while let Some(i) = seq.next_element_seed(Seed {
            tree: &mut *self.tree,
            depth,
        })? {
            items.push(i);
            self.tree.hold(std::mem::size_of::<usize>());
        }
        self.tree.nodes[at] = Node::Array(items);
        Seed {
            tree: &mut *self.tree,
            depth,
        }
        .check()?;
        Ok(at)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deeply"));
        }
        let at = self.tree.push(Node::Null);
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            self.tree
                .hold(key.len() + std::mem::size_of::<(String, usize)>());
            let value = map.next_value_seed(Seed {
                tree: &mut *self.tree,
                depth,
            })?;
            members.push((key, value));
        }
        self.tree.nodes[at] = Node::Object(members);
        Seed {
            tree: &mut *self.tree,
            depth,
        }
        .check()?;
        Ok(at)
    }
}
