//! `lpeg`: Parsing Expression Grammars for Lua, with the API of LPeg 1.0 (Roberto
//! Ierusalimschy's library, which lua_sandbox_extensions' grammars and decoders are written
//! against), implemented from its manual and paper.
//!
//! Patterns are trees ([`tree`]) built by the constructors (`P`, `S`, `R`, `V`, `B`, `locale`),
//! the operators (`+` ordered choice, `*` sequence, `-` difference and `-p` not-predicate,
//! `#p` and-predicate, `^n` repetition, `/` captures) and the capture functions (`C`, `Cc`,
//! `Cp`, `Carg`, `Cb`, `Cg`, `Cs`, `Ct`, `Cf`, `Cmt`); `match` walks them ([`machine`]) and
//! evaluates the captures ([`captures`]). Unlike the C library, matching pays for every step
//! from the plugin's instruction limit, so a catastrophic grammar ends like a runaway loop, and
//! its depth is bounded (`lpeg.setmaxstack`). Not here yet: the `re` module.

mod captures;
mod machine;
mod tree;

use std::cell::Cell;
use std::rc::Rc;

use mlua::{
    AnyUserData, Lua, LuaString, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value,
    Variadic,
};

use super::plain_error;
use machine::{Machine, Stop};
use tree::{CapKind, MAX_NESTING, Node, Set};

/// A pattern as Lua sees it.
struct Pattern {
    node: Rc<Node>,
}

/// Where the module's table is kept, for patterns' methods.
const REGISTRY_KEY: &str = "blink.lpeg";

/// The longest look-behind (LPeg's limit).
const MAX_BEHIND: usize = 255;

/// LPeg's default `setmaxstack`.
const DEFAULT_MAX_STACK: usize = 400;

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

impl Pattern {
    fn new(node: Node) -> mlua::Result<Self> {
        let nesting = node.nesting();
        if nesting > MAX_NESTING {
            return Err(error(format!(
                "pattern too complex (it nests more than {MAX_NESTING} deep)"
            )));
        }
        if node.values() > tree::MAX_VALUES {
            return Err(error(
                "too many values (constants, functions, names) in a pattern",
            ));
        }
        Ok(Pattern {
            node: Rc::new(node),
        })
    }
}

/// The operators, in Lua's metamethod names.
const OPERATORS: [&str; 7] = [
    "__add", "__mul", "__sub", "__unm", "__len", "__pow", "__div",
];

impl UserData for Pattern {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        // The operators are the wrapped functions `open` keeps in the registry (errors as
        // strings); a pattern's metatable is made once per state, after `open`.
        for name in OPERATORS {
            fields.add_meta_field_with(name, move |lua| {
                lua.named_registry_value::<mlua::Function>(&operator_key(name))
            });
        }
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // As in LPeg, a pattern's methods are the module's functions: `p:C()`, `p:match(s)`.
        methods.add_meta_function(MetaMethod::Index, |lua, (_, key): (Value, Value)| {
            let lpeg: Table = lua.named_registry_value(REGISTRY_KEY)?;
            lpeg.raw_get::<Value>(key)
        });
    }
}

fn operator_key(name: &str) -> String {
    format!("blink.lpeg.{name}")
}

/// An operator's raw function (errors as mlua errors; `open` wraps it).
fn operator(lua: &Lua, name: &str) -> mlua::Result<mlua::Function> {
    match name {
        "__add" => lua.create_function(|_, (a, b): (Value, Value)| {
            Pattern::new(tree::choice(&to_node(&a)?, &to_node(&b)?))
        }),
        "__mul" => lua.create_function(|_, (a, b): (Value, Value)| {
            Pattern::new(tree::seq(&to_node(&a)?, &to_node(&b)?))
        }),
        "__sub" => lua.create_function(|_, (a, b): (Value, Value)| {
            let (a, b) = (to_node(&a)?, to_node(&b)?);
            if let (Node::Class(x), Node::Class(y)) = (&a, &b) {
                let mut s = *x;
                for i in 0..4 {
                    s.0[i] &= !y.0[i];
                }
                return Pattern::new(Node::Class(s));
            }
            Pattern::new(tree::seq(&Node::Not(Rc::new(b)), &a))
        }),
        "__unm" => lua.create_function(|_, (a, _): (Value, Value)| {
            Pattern::new(Node::Not(Rc::new(to_node(&a)?)))
        }),
        "__len" => lua.create_function(|_, (a, _): (Value, Value)| {
            Pattern::new(Node::And(Rc::new(to_node(&a)?)))
        }),
        "__pow" => lua.create_function(|_, (a, n): (Value, f64)| {
            let p = to_node(&a)?;
            let n = n as i64;
            if n >= 0 {
                if tree::nullable(&p, &[], &mut Vec::new()) {
                    return Err(error("loop body may accept empty string"));
                }
                Pattern::new(Node::AtLeast(Rc::new(p), n as usize))
            } else {
                Pattern::new(Node::AtMost(Rc::new(p), n.unsigned_abs() as usize))
            }
        }),
        _ => lua.create_function(|_, (a, b): (Value, Value)| {
            let p = Rc::new(to_node(&a)?);
            let kind = match b {
                Value::String(s) => CapKind::Format(Rc::new(s.as_bytes().to_vec())),
                Value::Integer(n) if n >= 0 => CapKind::Nth(n as usize),
                Value::Number(n) if n >= 0.0 => CapKind::Nth(n as usize),
                t @ Value::Table(_) => CapKind::Query(t),
                f @ Value::Function(_) => CapKind::Function(f),
                other => {
                    return Err(error(format!(
                        "invalid replacement value (a {})",
                        other.type_name()
                    )));
                }
            };
            Pattern::new(Node::Capture(kind, p))
        }),
    }
}

/// Per-state settings (`setmaxstack`) and the instruction budget.
struct Limits {
    max_stack: Cell<usize>,
    steps: Rc<dyn super::StepAccount>,
}

/// `value` as a pattern, as `lpeg.P` makes one.
fn to_node(value: &Value) -> mlua::Result<Node> {
    Ok(match value {
        Value::UserData(u) => match u.borrow::<Pattern>() {
            Ok(p) => p.node.as_ref().clone(),
            Err(_) => return Err(error("pattern expected, got userdata")),
        },
        Value::String(s) => Node::Literal(s.as_bytes().to_vec().into()),
        Value::Integer(n) => count(*n),
        Value::Number(n) => count(*n as i64),
        Value::Boolean(true) => Node::Succeed,
        Value::Boolean(false) => Node::Fail,
        Value::Table(t) => grammar(t)?,
        f @ Value::Function(_) => Node::MatchTime(Rc::new(Node::Succeed), f.clone()),
        other => {
            return Err(error(format!(
                "pattern expected, got {}",
                other.type_name()
            )));
        }
    })
}

fn count(n: i64) -> Node {
    if n >= 0 {
        Node::Any(n as usize)
    } else {
        Node::FewerThan(n.unsigned_abs() as usize)
    }
}

/// `P{...}`: a grammar. Its first rule is `t[1]` when that names a rule, else `t[1]` itself.
fn grammar(t: &Table) -> mlua::Result<Node> {
    let first: Value = t.raw_get(1)?;
    if first.is_nil() {
        return Err(error("grammar has no initial rule"));
    }
    let mut names: Vec<(Value, usize)> = Vec::new();
    let mut bodies: Vec<Node> = Vec::new();
    let start_name = match &first {
        Value::String(_) => Some(first.clone()),
        _ => None,
    };
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if start_name.is_some() && matches!(&k, Value::Integer(1)) {
            continue;
        }
        // As LPeg: a rule is a pattern, not something a pattern could be made of.
        let body = match &v {
            Value::UserData(u) if u.is::<Pattern>() => to_node(&v)?,
            _ => {
                return Err(error(format!("rule '{}' is not a pattern", tree::show(&k))));
            }
        };
        names.push((k, bodies.len()));
        bodies.push(body);
    }
    let start = match &start_name {
        Some(name) => names
            .iter()
            .find(|(k, _)| tree::same_key(k, name))
            .map(|(_, i)| *i)
            .ok_or_else(|| {
                error(format!(
                    "rule '{}' undefined in given grammar",
                    tree::show(name)
                ))
            })?,
        None => names
            .iter()
            .find(|(k, _)| matches!(k, Value::Integer(1)))
            .map(|(_, i)| *i)
            .ok_or_else(|| error("grammar has no initial rule"))?,
    };
    let rules: Vec<Node> = bodies
        .iter()
        .map(|b| tree::resolve(b, &names))
        .collect::<Result<_, _>>()
        .map_err(error)?;
    tree::check_left_recursion(&rules, &names).map_err(error)?;
    Ok(Node::Grammar(rules.into(), start))
}

fn pattern(lua: &Lua, node: Node) -> mlua::Result<AnyUserData> {
    lua.create_userdata(Pattern::new(node)?)
}

/// `lpeg.match(p, subject [, init, ...])`.
fn do_match(lua: &Lua, limits: &Limits, args: MultiValue) -> mlua::Result<MultiValue> {
    let mut args = args.into_iter();
    let p = to_node(&args.next().unwrap_or(Value::Nil))?;
    let subject: LuaString = match args.next() {
        Some(Value::String(s)) => s,
        Some(Value::Integer(i)) => lua.create_string(i.to_string())?,
        Some(Value::Number(n)) => {
            lua.create_string(crate::sandbox::lua_values::format_number(n))?
        }
        other => {
            return Err(error(format!(
                "bad argument #2 to 'match' (string expected, got {})",
                other.map_or("no value", |v| v.type_name())
            )));
        }
    };
    let bytes = subject.as_bytes();
    let len = bytes.len();
    let init = match args.next() {
        None | Some(Value::Nil) => 1i64,
        Some(Value::Integer(i)) => i,
        Some(Value::Number(n)) => n as i64,
        Some(other) => {
            return Err(error(format!(
                "bad argument #3 to 'match' (number expected, got {})",
                other.type_name()
            )));
        }
    };
    let start = if init > 0 {
        ((init - 1) as usize).min(len)
    } else {
        len.saturating_sub(init.unsigned_abs() as usize)
    };
    let extra: Vec<Value> = args.collect();
    let before = limits.steps.left();
    let max_depth = (limits.max_stack.get() * 5 / 2).clamp(MAX_NESTING + 50, 4000);
    let mut machine = Machine::new(lua, &subject, &bytes, &extra, before, max_depth);
    let outcome = machine.run(&p, start, &[]);
    limits.steps.spend(before - machine.left);
    let end = match outcome {
        Ok(Some(end)) => end,
        Ok(None) => return Ok(MultiValue::from_vec(vec![Value::Nil])),
        Err(Stop::Exhausted) => return Err(limits.steps.exhausted(lua)),
        Err(Stop::TooDeep(limit)) => {
            return Err(error(format!(
                "backtrack stack overflow: pattern nesting too deep (current limit is {})",
                limit * 2 / 5
            )));
        }
        Err(Stop::Lua(e)) => return Err(e),
    };
    let values = match captures::evaluate(&machine, 0) {
        Ok(v) => v,
        Err(Stop::Lua(e)) => return Err(e),
        Err(_) => return Err(error("capture evaluation failed")),
    };
    if values.is_empty() {
        return Ok(MultiValue::from_vec(vec![Value::Integer(end as i64 + 1)]));
    }
    Ok(MultiValue::from_vec(values))
}

fn set_of(bytes: &[u8]) -> Set {
    let mut s = Set::empty();
    for &b in bytes {
        s.add(b);
    }
    s
}

/// `lpeg.locale`: the C locale's character classes.
fn locale(lua: &Lua, t: Option<Table>) -> mlua::Result<Table> {
    let t = match t {
        Some(t) => t,
        None => lua.create_table()?,
    };
    type Class = (&'static str, fn(u8) -> bool);
    let classes: [Class; 11] = [
        ("alnum", |b| b.is_ascii_alphanumeric()),
        ("alpha", |b| b.is_ascii_alphabetic()),
        ("cntrl", |b| b.is_ascii_control()),
        ("digit", |b| b.is_ascii_digit()),
        ("graph", |b| b.is_ascii_graphic()),
        ("lower", |b| b.is_ascii_lowercase()),
        ("print", |b| b.is_ascii_graphic() || b == b' '),
        ("punct", |b| b.is_ascii_punctuation()),
        ("space", |b| b.is_ascii_whitespace() || b == 0x0b),
        ("upper", |b| b.is_ascii_uppercase()),
        ("xdigit", |b| b.is_ascii_hexdigit()),
    ];
    for (name, f) in classes {
        let bytes: Vec<u8> = (0..=255u8).filter(|&b| f(b)).collect();
        t.raw_set(name, pattern(lua, Node::Class(set_of(&bytes)))?)?;
    }
    Ok(t)
}

fn capture(lua: &Lua, kind: CapKind, p: &Value) -> mlua::Result<AnyUserData> {
    pattern(lua, Node::Capture(kind, Rc::new(to_node(p)?)))
}

pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    lua.set_app_data(Rc::new(Limits {
        max_stack: Cell::new(DEFAULT_MAX_STACK),
        steps: env.steps.clone(),
    }));
    // LPeg raises its errors as plain strings at the caller's line (plugins and LPeg's own
    // tests match on them): every function and operator goes through `plain_error`.
    for name in OPERATORS {
        let wrapped = plain_error::wrap(lua, operator(lua, name)?)?;
        lua.set_named_registry_value(&operator_key(name), wrapped)?;
    }
    let lpeg = lua.create_table()?;
    let f = |lpeg: &Table, name: &str, func: mlua::Function| lpeg.raw_set(name, func);
    f(
        &lpeg,
        "P",
        lua.create_function(|lua, v: Value| match v {
            // A pattern is returned as it is (`lpeg.P(p) == p`).
            Value::UserData(u) if u.is::<Pattern>() => Ok(Value::UserData(u)),
            v => pattern(lua, to_node(&v)?).map(Value::UserData),
        })?,
    )?;
    f(
        &lpeg,
        "S",
        lua.create_function(|lua, s: LuaString| pattern(lua, Node::Class(set_of(&s.as_bytes()))))?,
    )?;
    f(
        &lpeg,
        "R",
        lua.create_function(|lua, ranges: Variadic<LuaString>| {
            let mut set = Set::empty();
            for r in ranges.iter() {
                let r = r.as_bytes();
                if r.len() != 2 {
                    return Err(error("range must have two characters"));
                }
                for b in r[0]..=r[1] {
                    set.add(b);
                }
            }
            pattern(lua, Node::Class(set))
        })?,
    )?;
    f(
        &lpeg,
        "V",
        lua.create_function(|lua, name: Value| pattern(lua, Node::Open(name)))?,
    )?;
    f(
        &lpeg,
        "B",
        lua.create_function(|lua, p: Value| {
            let node = to_node(&p)?;
            let len = tree::fixed_length(&node, &[], &mut Vec::new())
                .ok_or_else(|| error("pattern may not have fixed length"))?;
            if len > MAX_BEHIND {
                return Err(error("pattern too long to look behind"));
            }
            if node.has_captures() {
                return Err(error("pattern has captures"));
            }
            pattern(lua, Node::Behind(Rc::new(node), len))
        })?,
    )?;
    f(
        &lpeg,
        "locale",
        lua.create_function(|lua, t: Option<Table>| locale(lua, t))?,
    )?;
    f(
        &lpeg,
        "C",
        lua.create_function(|lua, p: Value| capture(lua, CapKind::Simple, &p))?,
    )?;
    f(
        &lpeg,
        "Cc",
        lua.create_function(|lua, values: Variadic<Value>| {
            let values: Vec<Value> = values.into_iter().collect();
            pattern(
                lua,
                Node::Capture(CapKind::Const(Rc::new(values)), Rc::new(Node::Succeed)),
            )
        })?,
    )?;
    f(
        &lpeg,
        "Cp",
        lua.create_function(|lua, ()| {
            pattern(
                lua,
                Node::Capture(CapKind::Position, Rc::new(Node::Succeed)),
            )
        })?,
    )?;
    f(
        &lpeg,
        "Carg",
        lua.create_function(|lua, n: i64| {
            if !(1..=256).contains(&n) {
                return Err(error("invalid argument index"));
            }
            pattern(
                lua,
                Node::Capture(CapKind::Arg(n as usize), Rc::new(Node::Succeed)),
            )
        })?,
    )?;
    f(
        &lpeg,
        "Cb",
        lua.create_function(|lua, name: Value| {
            pattern(
                lua,
                Node::Capture(CapKind::Backref(name), Rc::new(Node::Succeed)),
            )
        })?,
    )?;
    f(
        &lpeg,
        "Cg",
        lua.create_function(|lua, (p, name): (Value, Option<Value>)| {
            capture(lua, CapKind::Group(name), &p)
        })?,
    )?;
    f(
        &lpeg,
        "Cs",
        lua.create_function(|lua, p: Value| capture(lua, CapKind::Subst, &p))?,
    )?;
    f(
        &lpeg,
        "Ct",
        lua.create_function(|lua, p: Value| capture(lua, CapKind::Table, &p))?,
    )?;
    f(
        &lpeg,
        "Cf",
        lua.create_function(|lua, (p, func): (Value, mlua::Function)| {
            capture(lua, CapKind::Fold(Value::Function(func)), &p)
        })?,
    )?;
    f(
        &lpeg,
        "Cmt",
        lua.create_function(|lua, (p, func): (Value, mlua::Function)| {
            pattern(
                lua,
                Node::MatchTime(Rc::new(to_node(&p)?), Value::Function(func)),
            )
        })?,
    )?;
    f(
        &lpeg,
        "match",
        lua.create_function(|lua, args: MultiValue| {
            let limits = lua
                .app_data_ref::<Rc<Limits>>()
                .map(|l| l.clone())
                .ok_or_else(|| error("lpeg is not open"))?;
            do_match(lua, &limits, args)
        })?,
    )?;
    f(
        &lpeg,
        "type",
        lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::UserData(u) if u.is::<Pattern>() => Some("pattern"),
                _ => None,
            })
        })?,
    )?;
    f(&lpeg, "version", lua.create_function(|_, ()| Ok("1.0.2"))?)?;
    f(
        &lpeg,
        "setmaxstack",
        lua.create_function(|lua, n: i64| {
            if n < 1 {
                return Err(error(
                    "bad argument #1 to 'setmaxstack' (positive number expected)",
                ));
            }
            if let Some(limits) = lua.app_data_ref::<Rc<Limits>>() {
                limits.max_stack.set((n as usize).min(1600));
            }
            Ok(())
        })?,
    )?;
    for pair in lpeg.clone().pairs::<Value, mlua::Function>() {
        let (name, f) = pair?;
        lpeg.raw_set(name, plain_error::wrap(lua, f)?)?;
    }
    lua.set_named_registry_value(REGISTRY_KEY, lpeg.clone())?;
    Ok(Some(lpeg))
}

#[cfg(test)]
mod tests;
