//! JSON Schema (draft 4, the version RapidJSON validates) over [`Tree`] documents, reporting
//! the first violation as rjson does: `SchemaURI: #/properties/x Keyword: type DocumentURI:
//! #/x`, with RapidJSON's JSON report beside it.
//!
//! Values are checked in document order and a container's own keywords after its members
//! (`required` once the object has been read), as RapidJSON's streaming validator meets them,
//! so the violation named is the one it names. `format` is not checked (RapidJSON does not);
//! `$ref` resolves within the schema (`#`, `#/definitions/…`); `pattern` is a regular
//! expression of the `regex` crate (ECMAScript's without look-around and back references).

use std::collections::HashMap;

use regex::Regex;

use super::tree::{Key, Node, Tree, write_string};

/// Schemas nest at most this deep, references included (a `$ref` loop ends here).
const MAX_SCHEMA_DEPTH: usize = 200;

pub struct Schema {
    tree: Tree,
    /// Every `pattern` and `patternProperties` key, compiled.
    patterns: HashMap<String, Regex>,
}

/// The first violation found.
pub struct Violation {
    pub schema: String,
    pub keyword: &'static str,
    pub document: String,
    /// The members of the report's entry before its references (`"actual":…,`).
    detail: String,
}

impl Violation {
    pub fn message(&self) -> String {
        format!(
            "SchemaURI: {} Keyword: {} DocumentURI: {}",
            self.schema, self.keyword, self.document
        )
    }

    /// RapidJSON's error report for it.
    pub fn report(&self) -> String {
        let mut out = format!("{{\"{}\":{{{}", self.keyword, self.detail);
        out.push_str("\"instanceRef\":");
        write_string(&self.document, &mut out);
        out.push_str(",\"schemaRef\":");
        write_string(&self.schema, &mut out);
        out.push_str("}}");
        out
    }
}

impl Schema {
    /// Compiles `text`; the error says what is wrong with it.
    pub fn parse(text: &[u8], limit: usize) -> Result<Schema, String> {
        let tree = Tree::parse(text, limit)?;
        let mut patterns = HashMap::new();
        collect_patterns(&tree, Tree::root(), &mut patterns, 0)?;
        Ok(Schema { tree, patterns })
    }

    /// About what the schema holds on the heap.
    pub fn bytes(&self) -> usize {
        self.tree.bytes + self.patterns.keys().map(|p| p.len() * 8).sum::<usize>()
    }

    /// Checks `node` of `doc`.
    pub fn validate(&self, doc: &Tree, node: usize) -> Result<(), Violation> {
        let mut v = Validator {
            schema: self,
            doc,
            depth: 0,
        };
        v.check(node, Tree::root(), "#".into(), "#".into())
    }

    fn member(&self, schema: usize, name: &str) -> Option<usize> {
        self.tree
            .child(schema, &Key::Name(name.as_bytes().to_vec()))
    }

    /// The schema a `$ref` names (a JSON pointer into this schema).
    fn resolve(&self, reference: &str) -> Option<(usize, String)> {
        let pointer = reference.strip_prefix('#')?;
        let mut at = Tree::root();
        for part in pointer.split('/').skip(1) {
            let part = part.replace("~1", "/").replace("~0", "~");
            at = match &self.tree.nodes[at] {
                Node::Array(_) => self.tree.child(at, &Key::Index(part.parse().ok()?))?,
                _ => self.tree.child(at, &Key::Name(part.into_bytes()))?,
            };
        }
        Some((at, format!("#{pointer}")))
    }
}

fn collect_patterns(
    tree: &Tree,
    node: usize,
    out: &mut HashMap<String, Regex>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err("the schema nests too deeply".into());
    }
    let compile = |p: &str, out: &mut HashMap<String, Regex>| -> Result<(), String> {
        if !out.contains_key(p) {
            let re = Regex::new(p).map_err(|e| format!("invalid pattern {p:?}: {e}"))?;
            out.insert(p.to_owned(), re);
        }
        Ok(())
    };
    match &tree.nodes[node] {
        Node::Object(members) => {
            for (k, v) in members {
                if k == "pattern"
                    && let Node::Str(p) = &tree.nodes[*v]
                {
                    compile(p, out)?;
                }
                if k == "patternProperties"
                    && let Node::Object(props) = &tree.nodes[*v]
                {
                    for (p, _) in props {
                        compile(p, out)?;
                    }
                }
                collect_patterns(tree, *v, out, depth + 1)?;
            }
        }
        Node::Array(items) => {
            for &i in items {
                collect_patterns(tree, i, out, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

struct Validator<'a> {
    schema: &'a Schema,
    doc: &'a Tree,
    depth: usize,
}

fn type_name(node: &Node) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Bool(_) => "boolean",
        Node::Int(_) | Node::UInt(_) => "integer",
        Node::Float(_) => "number",
        Node::Str(_) => "string",
        Node::Array(_) => "array",
        Node::Object(_) => "object",
    }
}

fn number_of(node: &Node) -> Option<f64> {
    match node {
        Node::Int(i) => Some(*i as f64),
        Node::UInt(u) => Some(*u as f64),
        Node::Float(f) => Some(*f),
        _ => None,
    }
}

fn pointer_step(base: &str, step: &str) -> String {
    format!("{base}/{}", step.replace('~', "~0").replace('/', "~1"))
}

impl Validator<'_> {
    fn fail(
        &self,
        schema_ptr: &str,
        keyword: &'static str,
        doc_ptr: &str,
        detail: String,
    ) -> Result<(), Violation> {
        Err(Violation {
            schema: schema_ptr.to_owned(),
            keyword,
            document: doc_ptr.to_owned(),
            detail,
        })
    }

    fn snode(&self, s: usize) -> &Node {
        &self.schema.tree.nodes[s]
    }

    fn get(&self, s: usize, name: &str) -> Option<&Node> {
        self.schema.member(s, name).map(|i| self.snode(i))
    }

    fn number(&self, s: usize, name: &str) -> Option<f64> {
        self.get(s, name).and_then(number_of)
    }

    /// A count (of members or items) against the schema's `[minimum, maximum]` keywords.
    fn count_bounds(
        &self,
        s: usize,
        schema_ptr: &str,
        doc_ptr: &str,
        count: f64,
        [min_key, max_key]: [&'static str; 2],
    ) -> Result<(), Violation> {
        for (keyword, broken) in [
            (min_key, self.number(s, min_key).filter(|&min| count < min)),
            (max_key, self.number(s, max_key).filter(|&max| count > max)),
        ] {
            if let Some(bound) = broken {
                let detail = format!("\"actual\":{count},\"expected\":{bound},");
                return self.fail(schema_ptr, keyword, doc_ptr, detail);
            }
        }
        Ok(())
    }

    fn check(
        &mut self,
        node: usize,
        s: usize,
        doc_ptr: String,
        schema_ptr: String,
    ) -> Result<(), Violation> {
        self.depth += 1;
        let result = self.check_inner(node, s, &doc_ptr, &schema_ptr);
        self.depth -= 1;
        result
    }

    fn check_inner(
        &mut self,
        node: usize,
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        if self.depth > MAX_SCHEMA_DEPTH {
            return self.fail(schema_ptr, "$ref", doc_ptr, String::new());
        }
        if !matches!(self.snode(s), Node::Object(_)) {
            return Ok(());
        }
        if let Some(Node::Str(reference)) = self.get(s, "$ref") {
            return match self.schema.resolve(reference) {
                Some((target, pointer)) => self.check(node, target, doc_ptr.to_owned(), pointer),
                None => self.fail(schema_ptr, "$ref", doc_ptr, String::new()),
            };
        }
        let value = &self.doc.nodes[node];
        self.check_type(value, s, doc_ptr, schema_ptr)?;
        match value {
            Node::Object(members) => self.check_object(node, members, s, doc_ptr, schema_ptr)?,
            Node::Array(items) => self.check_array(items, s, doc_ptr, schema_ptr)?,
            Node::Str(text) => self.check_string(text, s, doc_ptr, schema_ptr)?,
            other => {
                if let Some(n) = number_of(other) {
                    self.check_number(n, s, doc_ptr, schema_ptr)?;
                }
            }
        }
        self.check_enum(node, s, doc_ptr, schema_ptr)?;
        self.check_combinators(node, s, doc_ptr, schema_ptr)
    }

    fn check_type(
        &self,
        value: &Node,
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        let actual = type_name(value);
        let allowed = |t: &str| t == actual || (t == "number" && actual == "integer");
        let (ok, expected) = match self.get(s, "type") {
            Some(Node::Str(t)) => (allowed(t), vec![t.clone()]),
            Some(Node::Array(ts)) => {
                let names: Vec<String> = ts
                    .iter()
                    .filter_map(|&i| match self.snode(i) {
                        Node::Str(t) => Some(t.clone()),
                        _ => None,
                    })
                    .collect();
                (names.iter().any(|t| allowed(t)), names)
            }
            _ => return Ok(()),
        };
        if ok {
            return Ok(());
        }
        let mut detail = String::from("\"expected\":[");
        for (i, t) in expected.iter().enumerate() {
            if i > 0 {
                detail.push(',');
            }
            write_string(t, &mut detail);
        }
        detail.push_str("],\"actual\":");
        write_string(actual, &mut detail);
        detail.push(',');
        self.fail(schema_ptr, "type", doc_ptr, detail)
    }

    fn check_object(
        &mut self,
        node: usize,
        members: &[(String, usize)],
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        let properties = self.schema.member(s, "properties");
        let pattern_properties = self.schema.member(s, "patternProperties");
        let additional = self.schema.member(s, "additionalProperties");
        for (key, value) in members {
            let member_ptr = pointer_step(doc_ptr, key);
            let mut matched = false;
            if let Some(p) = properties
                && let Some(sub) = self
                    .schema
                    .tree
                    .child(p, &Key::Name(key.as_bytes().to_vec()))
            {
                matched = true;
                let sp = pointer_step(&pointer_step(schema_ptr, "properties"), key);
                self.check(*value, sub, member_ptr.clone(), sp)?;
            }
            if let Some(pp) = pattern_properties
                && let Node::Object(patterns) = self.snode(pp).clone()
            {
                for (pattern, sub) in patterns {
                    if self
                        .schema
                        .patterns
                        .get(&pattern)
                        .is_some_and(|re| re.is_match(key))
                    {
                        matched = true;
                        let sp =
                            pointer_step(&pointer_step(schema_ptr, "patternProperties"), &pattern);
                        self.check(*value, sub, member_ptr.clone(), sp)?;
                    }
                }
            }
            if !matched && let Some(a) = additional {
                match self.snode(a) {
                    Node::Bool(false) => {
                        let mut detail = String::from("\"disallowed\":");
                        write_string(key, &mut detail);
                        detail.push(',');
                        return self.fail(schema_ptr, "additionalProperties", doc_ptr, detail);
                    }
                    Node::Object(_) => {
                        let sp = pointer_step(schema_ptr, "additionalProperties");
                        self.check(*value, a, member_ptr, sp)?;
                    }
                    _ => {}
                }
            }
        }
        if let Some(Node::Array(required)) = self.get(s, "required") {
            let missing: Vec<&String> = required
                .iter()
                .filter_map(|&i| match self.snode(i) {
                    Node::Str(name) if !members.iter().any(|(k, _)| k == name) => Some(name),
                    _ => None,
                })
                .collect();
            if !missing.is_empty() {
                let mut detail = String::from("\"missing\":[");
                for (i, m) in missing.iter().enumerate() {
                    if i > 0 {
                        detail.push(',');
                    }
                    write_string(m, &mut detail);
                }
                detail.push_str("],");
                return self.fail(schema_ptr, "required", doc_ptr, detail);
            }
        }
        let count = members.len() as f64;
        self.count_bounds(
            s,
            schema_ptr,
            doc_ptr,
            count,
            ["minProperties", "maxProperties"],
        )?;
        if let Some(Node::Object(dependencies)) = self.get(s, "dependencies").cloned() {
            for (name, dep) in dependencies {
                if !members.iter().any(|(k, _)| *k == name) {
                    continue;
                }
                match self.snode(dep).clone() {
                    Node::Array(needed) => {
                        for i in needed {
                            if let Node::Str(n) = self.snode(i)
                                && !members.iter().any(|(k, _)| k == n)
                            {
                                return self.fail(
                                    schema_ptr,
                                    "dependencies",
                                    doc_ptr,
                                    String::new(),
                                );
                            }
                        }
                    }
                    Node::Object(_) => {
                        // The object as a whole must match the dependency's schema.
                        let sp = pointer_step(&pointer_step(schema_ptr, "dependencies"), &name);
                        self.check(node, dep, doc_ptr.to_owned(), sp)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn check_array(
        &mut self,
        items: &[usize],
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        let item_schema = self.schema.member(s, "items");
        let additional = self.schema.member(s, "additionalItems");
        for (i, &item) in items.iter().enumerate() {
            let ip = format!("{doc_ptr}/{i}");
            match item_schema.map(|is| (is, self.snode(is).clone())) {
                Some((is, Node::Object(_))) => {
                    self.check(item, is, ip, pointer_step(schema_ptr, "items"))?;
                }
                Some((_, Node::Array(tuple))) => {
                    if let Some(&sub) = tuple.get(i) {
                        let sp = format!("{}/{i}", pointer_step(schema_ptr, "items"));
                        self.check(item, sub, ip, sp)?;
                    } else if let Some(a) = additional {
                        match self.snode(a) {
                            Node::Bool(false) => {
                                return self.fail(
                                    schema_ptr,
                                    "additionalItems",
                                    doc_ptr,
                                    String::new(),
                                );
                            }
                            Node::Object(_) => {
                                self.check(
                                    item,
                                    a,
                                    ip,
                                    pointer_step(schema_ptr, "additionalItems"),
                                )?;
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let count = items.len() as f64;
        self.count_bounds(s, schema_ptr, doc_ptr, count, ["minItems", "maxItems"])?;
        if let Some(Node::Bool(true)) = self.get(s, "uniqueItems") {
            let texts: Vec<String> = items
                .iter()
                .map(|&i| {
                    let mut t = String::new();
                    self.doc.write(i, &mut t);
                    t
                })
                .collect();
            // A set, not pairwise comparison: a long hostile array stays linear.
            let mut seen = std::collections::HashSet::with_capacity(texts.len());
            if !texts.iter().all(|t| seen.insert(t)) {
                return self.fail(schema_ptr, "uniqueItems", doc_ptr, String::new());
            }
        }
        Ok(())
    }

    fn check_string(
        &self,
        text: &str,
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        let len = text.chars().count() as f64;
        let actual = || {
            let mut d = String::from("\"actual\":");
            write_string(text, &mut d);
            d
        };
        if let Some(min) = self.number(s, "minLength")
            && len < min
        {
            return self.fail(
                schema_ptr,
                "minLength",
                doc_ptr,
                format!("{},\"expected\":{min},", actual()),
            );
        }
        if let Some(max) = self.number(s, "maxLength")
            && len > max
        {
            return self.fail(
                schema_ptr,
                "maxLength",
                doc_ptr,
                format!("{},\"expected\":{max},", actual()),
            );
        }
        if let Some(Node::Str(pattern)) = self.get(s, "pattern")
            && let Some(re) = self.schema.patterns.get(pattern)
            && !re.is_match(text)
        {
            return self.fail(schema_ptr, "pattern", doc_ptr, format!("{},", actual()));
        }
        Ok(())
    }

    fn check_number(
        &self,
        n: f64,
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        let exclusive = |name| matches!(self.get(s, name), Some(Node::Bool(true)));
        let show = |f: f64| {
            let mut t = String::new();
            if f.fract() == 0.0 && f.abs() < 9e15 {
                t = format!("{}", f as i64);
            } else {
                t.push_str(&format!("{f}"));
            }
            t
        };
        if let Some(min) = self.number(s, "minimum") {
            let ex = exclusive("exclusiveMinimum");
            if n < min || (ex && n == min) {
                let flag = if ex { "\"exclusiveMinimum\":true," } else { "" };
                return self.fail(
                    schema_ptr,
                    "minimum",
                    doc_ptr,
                    format!("\"actual\":{},\"expected\":{},{flag}", show(n), show(min)),
                );
            }
        }
        if let Some(max) = self.number(s, "maximum") {
            let ex = exclusive("exclusiveMaximum");
            if n > max || (ex && n == max) {
                let flag = if ex { "\"exclusiveMaximum\":true," } else { "" };
                return self.fail(
                    schema_ptr,
                    "maximum",
                    doc_ptr,
                    format!("\"actual\":{},\"expected\":{},{flag}", show(n), show(max)),
                );
            }
        }
        if let Some(m) = self.number(s, "multipleOf")
            && m > 0.0
            && ((n / m) - (n / m).round()).abs() > 1e-9
        {
            return self.fail(
                schema_ptr,
                "multipleOf",
                doc_ptr,
                format!("\"actual\":{},\"expected\":{},", show(n), show(m)),
            );
        }
        Ok(())
    }

    fn check_enum(
        &self,
        node: usize,
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        let Some(Node::Array(options)) = self.get(s, "enum") else {
            return Ok(());
        };
        let mut text = String::new();
        self.doc.write(node, &mut text);
        let found = options.iter().any(|&o| {
            let mut t = String::new();
            self.schema.tree.write(o, &mut t);
            t == text
        });
        if found {
            Ok(())
        } else {
            self.fail(schema_ptr, "enum", doc_ptr, String::new())
        }
    }

    fn check_combinators(
        &mut self,
        node: usize,
        s: usize,
        doc_ptr: &str,
        schema_ptr: &str,
    ) -> Result<(), Violation> {
        for keyword in ["allOf", "anyOf", "oneOf"] {
            let Some(Node::Array(subs)) = self.get(s, keyword).cloned() else {
                continue;
            };
            let base = pointer_step(schema_ptr, keyword);
            let mut passed = 0;
            for (i, sub) in subs.iter().enumerate() {
                if self
                    .check(node, *sub, doc_ptr.to_owned(), format!("{base}/{i}"))
                    .is_ok()
                {
                    passed += 1;
                }
            }
            let ok = match keyword {
                "allOf" => passed == subs.len(),
                "anyOf" => passed > 0,
                _ => passed == 1,
            };
            if !ok {
                let keyword: &'static str = keyword;
                return self.fail(schema_ptr, keyword, doc_ptr, String::new());
            }
        }
        if let Some(not) = self.schema.member(s, "not")
            && self
                .check(
                    node,
                    not,
                    doc_ptr.to_owned(),
                    pointer_step(schema_ptr, "not"),
                )
                .is_ok()
        {
            return self.fail(schema_ptr, "not", doc_ptr, String::new());
        }
        Ok(())
    }
}
