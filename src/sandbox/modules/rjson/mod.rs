//! `rjson`: JSON documents with JSON Schema validation, with the API of lua_sandbox_extensions'
//! RapidJSON module, which the moz_ingest, telemetry and taskcluster decoders use:
//! `rjson.parse(text)` → a document, `rjson.parse_schema(text)` → a schema, and on a document
//! `find(v?, key…)`, `value(v?)`, `type(v?)`, `size(v?)`, `iter(v?)`, `remove(v?, key…)` (the
//! value moved out into a new document), `remove_shallow(v?, key…)`, `validate(schema)` →
//! `ok, err, report`, `make_field(v?)`, and `parse(text)` to reuse a document.
//!
//! Values are handles (lightuserdata) naming a node of one document as it was parsed: a handle
//! from another document, or from before a document was parsed again, is refused ("invalid
//! value"). Keys are object member names or 0-based array indexes. Errors are plain strings at
//! the caller's line. `make_field(v)` gives `{value = <the JSON text>, representation =
//! "json"}`: the text is made at once (the original defers it to `inject_message`).
//! `parse_message([hsr,] field, fi, ai, validate_encoding)` parses a field of the current
//! message (an input plugin names its stream reader).

mod schema;
mod tree;

use std::cell::Cell;
use std::ffi::c_void;

use mlua::{AnyUserData, LightUserData, Lua, MultiValue, Table, UserData, Value};

use schema::Schema;
use tree::{Key, Node, Tree};

const VERSION: &str = "1.1.4";
const METHODS_KEY: &str = "blink.rjson.methods";

thread_local! {
    /// Document identities: a parse gets a new one, so older handles stop matching.
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
}

fn next_id() -> u32 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id.wrapping_add(1).max(1));
        id
    })
}

struct Document {
    id: u32,
    tree: Tree,
    /// The tree's bytes, counted in the plugin's module memory.
    _memory: Option<super::Reservation>,
}

/// The plugin's module memory, where documents and schemas are counted.
struct RjsonMemory(std::rc::Rc<super::ExternalMemory>);

fn external(lua: &Lua) -> std::rc::Rc<super::ExternalMemory> {
    lua.app_data_ref::<RjsonMemory>()
        .map(|m| m.0.clone())
        .unwrap_or_else(|| super::ExternalMemory::new(0))
}

impl Document {
    /// A document of `tree`, counted in the plugin's module memory.
    fn new(lua: &Lua, tree: Tree) -> mlua::Result<Self> {
        let memory = external(lua).reserve(tree.bytes, "a JSON document")?;
        Ok(Document {
            id: next_id(),
            tree,
            _memory: Some(memory),
        })
    }

    /// The null document a failed parse leaves.
    fn null() -> Self {
        Document {
            id: next_id(),
            tree: Tree::null(),
            _memory: None,
        }
    }

    fn handle(&self, node: usize) -> Value {
        let bits = ((self.id as usize) << 32) | (node + 1);
        Value::LightUserData(LightUserData(bits as *mut c_void))
    }

    /// The node a handle names, if it is one of this document's.
    fn node_of(&self, handle: LightUserData) -> Option<usize> {
        let bits = handle.0 as usize;
        let (id, node) = ((bits >> 32) as u32, bits & 0xffff_ffff);
        (id == self.id && node >= 1 && node <= self.tree.nodes.len()).then(|| node - 1)
    }
}

impl UserData for Document {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            lua.named_registry_value::<Table>(METHODS_KEY)
        });
    }

    /// The document as JSON text: what a message field holding the document carries
    /// (`{value = doc, representation = "json"}`).
    fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, doc, ()| {
            let mut text = String::new();
            doc.tree.write(Tree::root(), &mut text);
            Ok(text)
        });
    }
}

struct SchemaData(Schema, #[allow(dead_code)] super::Reservation);
impl UserData for SchemaData {}

fn invalid() -> mlua::Error {
    mlua::Error::runtime("invalid value")
}

/// Where a method starts: the value its first argument names, or the root when it has none.
/// `Ok(None)`: the argument was nil or not a value (the method then returns nil).
enum Start {
    At(usize),
    Nil,
}

fn start(doc: &Document, args: &mut std::collections::VecDeque<Value>) -> mlua::Result<Start> {
    match args.front() {
        None => Ok(Start::At(Tree::root())),
        Some(Value::LightUserData(h)) => {
            let h = *h;
            args.pop_front();
            doc.node_of(h).map(Start::At).ok_or_else(invalid)
        }
        Some(Value::Nil) => {
            args.pop_front();
            Ok(Start::Nil)
        }
        Some(Value::UserData(_)) => Err(invalid()),
        Some(_) => Ok(Start::At(Tree::root())),
    }
}

fn key_of(v: &Value) -> Option<Key> {
    match v {
        Value::String(s) => Some(Key::Name(s.as_bytes().to_vec())),
        Value::Integer(i) if *i >= 0 => Some(Key::Index(*i as usize)),
        Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Some(Key::Index(*n as usize)),
        _ => None,
    }
}

/// Follows `keys` from `node`; `None` when a step is missing (or not a key).
fn walk(tree: &Tree, mut node: usize, keys: &[Value]) -> Option<usize> {
    for k in keys {
        node = tree.child(node, &key_of(k)?)?;
    }
    Some(node)
}

fn type_name(node: &Node) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Bool(_) => "boolean",
        Node::Int(_) | Node::UInt(_) | Node::Float(_) => "number",
        Node::Str(_) => "string",
        Node::Array(_) => "array",
        Node::Object(_) => "object",
    }
}

fn parse_text(lua: &Lua, text: &[u8], validate_encoding: bool) -> mlua::Result<Tree> {
    if validate_encoding && std::str::from_utf8(text).is_err() {
        return Err(mlua::Error::runtime(
            "failed to parse: invalid UTF-8 encoding",
        ));
    }
    // serde_json reads UTF-8 only; without validation, invalid bytes are replaced.
    let owned;
    let text = match std::str::from_utf8(text) {
        Ok(_) => text,
        Err(_) => {
            owned = String::from_utf8_lossy(text).into_owned();
            owned.as_bytes()
        }
    };
    Tree::parse(text, external(lua).available()).map_err(mlua::Error::runtime)
}

type Args = std::collections::VecDeque<Value>;

/// Reads a message field as `parse_message` takes it: from a stream reader, or the plugin's
/// current message.
const READ_FIELD: &str = r#"
return function(reader, ...)
    if reader then return reader:read_message(...) end
    return read_message(...)
end
"#;

/// `parse_message`'s arguments after the document: the text to parse and the UTF-8 flag.
fn message_text(lua: &Lua, args: MultiValue) -> mlua::Result<(Vec<u8>, bool)> {
    let mut args: Args = args.into_iter().collect();
    let reader = match args.front() {
        Some(Value::UserData(_)) => args.pop_front(),
        _ => None,
    };
    let mut next = || args.pop_front().unwrap_or(Value::Nil);
    let (field, fi, ai, check) = (next(), next(), next(), next());
    let read: mlua::Function = lua.named_registry_value("blink.rjson.read_field")?;
    let text: Value = read.call((reader.unwrap_or(Value::Nil), field, fi, ai))?;
    let text = match text {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Nil => return Err(mlua::Error::runtime("field not found")),
        other => {
            return Err(mlua::Error::runtime(format!(
                "the field is a {}, not JSON text",
                other.type_name()
            )));
        }
    };
    Ok((text, matches!(check, Value::Boolean(true))))
}

fn methods(lua: &Lua) -> mlua::Result<Table> {
    let read_field: mlua::Function = lua.load(READ_FIELD).set_name("=[rjson]").call(())?;
    lua.set_named_registry_value("blink.rjson.read_field", read_field)?;
    let t = lua.create_table()?;
    let add = |name: &str, f: mlua::Function| -> mlua::Result<()> {
        t.raw_set(name, super::plain_error::wrap(lua, f)?)
    };
    add(
        "parse",
        lua.create_function(
            |lua, (ud, text, check): (AnyUserData, mlua::LuaString, Option<bool>)| {
                let mut doc = ud.borrow_mut::<Document>()?;
                match parse_text(lua, &text.as_bytes(), check.unwrap_or(false)) {
                    Ok(tree) => {
                        *doc = Document::new(lua, tree)?;
                        drop(doc);
                        Ok(ud)
                    }
                    Err(e) => {
                        *doc = Document::null();
                        Err(e)
                    }
                }
            },
        )?,
    )?;
    add(
        "parse_message",
        lua.create_function(|lua, (ud, args): (AnyUserData, MultiValue)| {
            let parsed =
                message_text(lua, args).and_then(|(text, check)| parse_text(lua, &text, check));
            let mut doc = ud.borrow_mut::<Document>()?;
            match parsed {
                Ok(tree) => {
                    *doc = Document::new(lua, tree)?;
                    drop(doc);
                    Ok(ud)
                }
                Err(e) => {
                    *doc = Document::null();
                    Err(e)
                }
            }
        })?,
    )?;
    add(
        "find",
        lua.create_function(|_, (ud, args): (AnyUserData, MultiValue)| {
            let doc = ud.borrow::<Document>()?;
            let mut args: Args = args.into_iter().collect();
            let Start::At(from) = start(&doc, &mut args)? else {
                return Ok(Value::Nil);
            };
            let keys: Vec<Value> = args.into_iter().collect();
            Ok(walk(&doc.tree, from, &keys).map_or(Value::Nil, |n| doc.handle(n)))
        })?,
    )?;
    add(
        "value",
        lua.create_function(|lua, (ud, args): (AnyUserData, MultiValue)| {
            let doc = ud.borrow::<Document>()?;
            let mut args: Args = args.into_iter().collect();
            let Start::At(node) = start(&doc, &mut args)? else {
                return Ok(Value::Nil);
            };
            Ok(match &doc.tree.nodes[node] {
                Node::Null => Value::Nil,
                Node::Bool(b) => Value::Boolean(*b),
                Node::Int(i) => Value::Number(*i as f64),
                Node::UInt(u) => Value::Number(*u as f64),
                Node::Float(f) => Value::Number(*f),
                Node::Str(s) => Value::String(lua.create_string(s)?),
                Node::Array(_) | Node::Object(_) => {
                    return Err(mlua::Error::runtime(
                        "value() not allowed on an object or array",
                    ));
                }
            })
        })?,
    )?;
    add(
        "type",
        lua.create_function(|_, (ud, args): (AnyUserData, MultiValue)| {
            let doc = ud.borrow::<Document>()?;
            let mut args: Args = args.into_iter().collect();
            Ok(match start(&doc, &mut args)? {
                Start::At(node) => Some(type_name(&doc.tree.nodes[node])),
                Start::Nil => None,
            })
        })?,
    )?;
    add(
        "size",
        lua.create_function(|_, (ud, args): (AnyUserData, MultiValue)| {
            let doc = ud.borrow::<Document>()?;
            let mut args: Args = args.into_iter().collect();
            let Start::At(node) = start(&doc, &mut args)? else {
                return Ok(None);
            };
            Ok(Some(match &doc.tree.nodes[node] {
                Node::Array(items) => items.len(),
                Node::Object(members) => members.len(),
                Node::Str(s) => s.len(),
                _ => {
                    return Err(mlua::Error::runtime(
                        "size() not allowed on a number, boolean or null",
                    ));
                }
            }))
        })?,
    )?;
    add(
        "iter",
        lua.create_function(|lua, (ud, args): (AnyUserData, MultiValue)| {
            let (id, node) = {
                let doc = ud.borrow::<Document>()?;
                let mut args: Args = args.into_iter().collect();
                let Start::At(node) = start(&doc, &mut args)? else {
                    return Ok(Value::Nil);
                };
                if !matches!(doc.tree.nodes[node], Node::Array(_) | Node::Object(_)) {
                    return Err(mlua::Error::runtime(
                        "iter() not allowed on a primitive type",
                    ));
                }
                (doc.id, node)
            };
            let next = Cell::new(0usize);
            let iterator = lua.create_function(move |lua, ()| {
                let doc = ud.borrow::<Document>()?;
                if doc.id != id || doc.tree.detached[node] {
                    return Err(mlua::Error::runtime("iterator has been invalidated"));
                }
                let i = next.get();
                next.set(i + 1);
                Ok(match &doc.tree.nodes[node] {
                    Node::Array(items) => match items.get(i) {
                        Some(&item) => (Value::Number(i as f64), doc.handle(item)),
                        None => (Value::Nil, Value::Nil),
                    },
                    Node::Object(members) => match members.get(i) {
                        Some((k, item)) => {
                            (Value::String(lua.create_string(k)?), doc.handle(*item))
                        }
                        None => (Value::Nil, Value::Nil),
                    },
                    _ => (Value::Nil, Value::Nil),
                })
            })?;
            Ok(Value::Function(super::plain_error::wrap(lua, iterator)?))
        })?,
    )?;
    add(
        "remove",
        lua.create_function(|lua, (ud, args): (AnyUserData, MultiValue)| {
            let removed = detach(&ud, args)?;
            let Some(node) = removed else {
                return Ok(Value::Nil);
            };
            let doc = ud.borrow::<Document>()?;
            let copy = doc.tree.copy_out(node);
            drop(doc);
            Ok(Value::UserData(
                lua.create_userdata(Document::new(lua, copy)?)?,
            ))
        })?,
    )?;
    add(
        "remove_shallow",
        lua.create_function(|_, (ud, args): (AnyUserData, MultiValue)| {
            let removed = detach(&ud, args)?;
            let doc = ud.borrow::<Document>()?;
            Ok(removed.map_or(Value::Nil, |n| doc.handle(n)))
        })?,
    )?;
    add(
        "validate",
        lua.create_function(
            |_, (ud, schema, args): (AnyUserData, AnyUserData, MultiValue)| {
                let doc = ud.borrow::<Document>()?;
                let schema = schema.borrow::<SchemaData>().map_err(|_| {
                    mlua::Error::runtime("validate() needs a schema (rjson.parse_schema)")
                })?;
                let mut args: Args = args.into_iter().collect();
                let Start::At(node) = start(&doc, &mut args)? else {
                    return Ok((false, Some("invalid value".to_string()), None));
                };
                Ok(match schema.0.validate(&doc.tree, node) {
                    Ok(()) => (true, None, None),
                    Err(v) => (false, Some(v.message()), Some(v.report())),
                })
            },
        )?,
    )?;
    add(
        "make_field",
        lua.create_function(|lua, (ud, args): (AnyUserData, MultiValue)| {
            let doc = ud.borrow::<Document>()?;
            let mut args: Args = args.into_iter().collect();
            let Start::At(node) = start(&doc, &mut args)? else {
                return Ok(Value::Nil);
            };
            let mut text = String::new();
            doc.tree.write(node, &mut text);
            let field = lua.create_table()?;
            field.raw_set("value", text)?;
            field.raw_set("representation", "json")?;
            Ok(Value::Table(field))
        })?,
    )?;
    Ok(t)
}

/// Removes the value `args` name (a start and at least one key) from its parent.
fn detach(ud: &AnyUserData, args: MultiValue) -> mlua::Result<Option<usize>> {
    let mut doc = ud.borrow_mut::<Document>()?;
    let mut args: Args = args.into_iter().collect();
    let Start::At(from) = start(&doc, &mut args)? else {
        return Ok(None);
    };
    let keys: Vec<Value> = args.into_iter().collect();
    let Some((last, path)) = keys.split_last() else {
        return Err(mlua::Error::runtime("cannot remove the root"));
    };
    let Some(parent) = walk(&doc.tree, from, path) else {
        return Ok(None);
    };
    let Some(key) = key_of(last) else {
        return Ok(None);
    };
    Ok(doc.tree.detach(parent, &key))
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    lua.set_app_data(RjsonMemory(env.external.clone()));
    lua.set_named_registry_value(METHODS_KEY, methods(lua)?)?;
    let rjson = lua.create_table()?;
    let add = |name: &str, f: mlua::Function| -> mlua::Result<()> {
        rjson.raw_set(name, super::plain_error::wrap(lua, f)?)
    };
    add(
        "parse",
        lua.create_function(|lua, (text, check): (mlua::LuaString, Option<bool>)| {
            Document::new(
                lua,
                parse_text(lua, &text.as_bytes(), check.unwrap_or(false))?,
            )
        })?,
    )?;
    add(
        "parse_message",
        lua.create_function(|lua, args: MultiValue| {
            let (text, check) = message_text(lua, args)?;
            Document::new(lua, parse_text(lua, &text, check)?)
        })?,
    )?;
    add(
        "parse_schema",
        lua.create_function(|lua, text: mlua::LuaString| {
            let memory = external(lua);
            let schema = Schema::parse(&text.as_bytes(), memory.available())
                .map_err(mlua::Error::runtime)?;
            let reservation = memory.reserve(schema.bytes(), "a JSON schema")?;
            Ok(SchemaData(schema, reservation))
        })?,
    )?;
    add("version", lua.create_function(|_, ()| Ok(VERSION))?)?;
    Ok(Some(rjson))
}

/// Fuzzing: `data` parsed as a document (within 1 MiB), written back, and checked against a
/// schema using most keywords; nothing may panic, and what is written parses again.
pub(crate) fn fuzz(data: &[u8]) {
    const SCHEMA: &str = r##"{"type":["object","array","string","number","boolean","null"],
        "properties":{"a":{"type":"integer","minimum":0,"maximum":10,"multipleOf":2},
                      "b":{"type":"string","minLength":1,"maxLength":5,"pattern":"^x"}},
        "patternProperties":{"^p":{"enum":[1,"two",null]}},
        "additionalProperties":{"anyOf":[{"type":"string"},{"$ref":"#/definitions/d"}]},
        "items":{"oneOf":[{"type":"number"},{"not":{"type":"number"}}]},
        "minItems":1,"uniqueItems":true,"required":["a"],"minProperties":1,
        "dependencies":{"a":["b"]},"definitions":{"d":{"allOf":[{"type":"array"}]}}}"##;
    let schema = Schema::parse(SCHEMA.as_bytes(), 1 << 20).expect("the fuzz schema parses");
    let Ok(tree) = Tree::parse(data, 1 << 20) else {
        return;
    };
    let mut text = String::new();
    tree.write(Tree::root(), &mut text);
    assert!(
        Tree::parse(text.as_bytes(), usize::MAX).is_ok(),
        "written JSON parses: {text}"
    );
    let _ = schema.validate(&tree, Tree::root());
}

#[cfg(test)]
mod tests;
