//! LPeg patterns as trees: what each constructor and operator builds, and the checks LPeg makes
//! when a pattern is built (a loop whose body may match the empty string, a grammar rule that
//! is undefined or left recursive, a look-behind of no fixed length).
//!
//! Trees are immutable and share their parts (`Rc`), so `p * q` costs one node however big `p`
//! is; sequences and choices are kept flat, so a pattern built in a loop is wide, not deep.

use std::rc::Rc;

use mlua::Value;

/// The most nodes one pattern path may nest: deeper trees are refused when built, so matching
/// (a recursion over the tree) stays within the thread's stack.
pub const MAX_NESTING: usize = 400;

/// The most Lua values one pattern may hold (LPeg's limit).
pub const MAX_VALUES: usize = (1 << 16) - 1;

/// A character class: one bit per byte value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Set(pub [u64; 4]);

impl Set {
    pub fn empty() -> Self {
        Set([0; 4])
    }
    pub fn add(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }
    pub fn has(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }
}

/// What a capture makes of what its pattern matched.
#[derive(Debug, Clone)]
pub enum CapKind {
    /// `C(p)`: the matched text, then `p`'s captures.
    Simple,
    /// `Cc(...)`: these values.
    Const(Rc<Vec<Value>>),
    /// `Cp()`: the position.
    Position,
    /// `Carg(n)`: the n-th extra argument of `match`.
    Arg(usize),
    /// `Cb(name)`: the values of the latest group named `name`.
    Backref(Value),
    /// `Cg(p [, name])`.
    Group(Option<Value>),
    /// `Cs(p)`.
    Subst,
    /// `Ct(p)`.
    Table,
    /// `Cf(p, f)`.
    Fold(Value),
    /// `p / "format"`.
    Format(Rc<Vec<u8>>),
    /// `p / n`.
    Nth(usize),
    /// `p / table`.
    Query(Value),
    /// `p / function`.
    Function(Value),
}

/// A pattern.
#[derive(Debug, Clone)]
pub enum Node {
    /// Any `n` characters (`P(n)`, `n` ≥ 0).
    Any(usize),
    /// Fewer than `n` characters left (`P(-n)`).
    FewerThan(usize),
    /// `P(true)` / `P(false)`.
    Succeed,
    Fail,
    Literal(Rc<[u8]>),
    Class(Set),
    Seq(Rc<[Node]>),
    Choice(Rc<[Node]>),
    /// `p^n`: at least `n` repetitions.
    AtLeast(Rc<Node>, usize),
    /// `p^-n`: at most `n`.
    AtMost(Rc<Node>, usize),
    /// `#p`.
    And(Rc<Node>),
    /// `-p`.
    Not(Rc<Node>),
    /// `B(p)`: `p` matches the `len` characters before the position.
    Behind(Rc<Node>, usize),
    /// `V(name)` before its grammar is built.
    Open(Value),
    /// A call of rule `n` of the innermost grammar.
    Call(usize),
    /// `P{...}`: rules (calls resolved) and the first rule.
    Grammar(Rc<[Node]>, usize),
    Capture(CapKind, Rc<Node>),
    /// `Cmt(p, f)`.
    MatchTime(Rc<Node>, Value),
}

impl Node {
    /// How deep the tree nests, for [`MAX_NESTING`].
    pub fn nesting(&self) -> usize {
        1 + match self {
            Node::Seq(ps) | Node::Choice(ps) => ps.iter().map(Node::nesting).max().unwrap_or(0),
            Node::Grammar(rules, _) => rules.iter().map(Node::nesting).max().unwrap_or(0),
            Node::AtLeast(p, _)
            | Node::AtMost(p, _)
            | Node::And(p)
            | Node::Not(p)
            | Node::Behind(p, _)
            | Node::Capture(_, p)
            | Node::MatchTime(p, _) => p.nesting(),
            _ => 0,
        }
    }

    /// How many Lua values the pattern holds (constants, functions, tables, formats, names):
    /// LPeg refuses more than [`MAX_VALUES`].
    pub fn values(&self) -> usize {
        match self {
            Node::Capture(kind, p) => {
                let own = match kind {
                    CapKind::Const(v) => v.len(),
                    CapKind::Simple
                    | CapKind::Position
                    | CapKind::Arg(_)
                    | CapKind::Subst
                    | CapKind::Table
                    | CapKind::Nth(_)
                    | CapKind::Group(None) => 0,
                    _ => 1,
                };
                own + p.values()
            }
            Node::MatchTime(p, _) => 1 + p.values(),
            Node::Seq(ps) | Node::Choice(ps) => ps.iter().map(Node::values).sum(),
            Node::Grammar(rules, _) => rules.iter().map(Node::values).sum(),
            Node::AtLeast(p, _)
            | Node::AtMost(p, _)
            | Node::Behind(p, _)
            | Node::And(p)
            | Node::Not(p) => p.values(),
            _ => 0,
        }
    }

    /// Whether the pattern holds captures (so `match` returns values, not a position).
    pub fn has_captures(&self) -> bool {
        match self {
            Node::Capture(..) | Node::MatchTime(..) => true,
            Node::Seq(ps) | Node::Choice(ps) => ps.iter().any(Node::has_captures),
            Node::Grammar(rules, _) => rules.iter().any(Node::has_captures),
            Node::AtLeast(p, _) | Node::AtMost(p, _) | Node::Behind(p, _) => p.has_captures(),
            // Predicates keep no captures of their own, but `#p` keeps p's (LPeg 1.0).
            Node::And(p) => p.has_captures(),
            _ => false,
        }
    }
}

/// `p1 * p2`, flattened.
pub fn seq(a: &Node, b: &Node) -> Node {
    let mut parts = Vec::new();
    for n in [a, b] {
        match n {
            Node::Seq(ps) => parts.extend(ps.iter().cloned()),
            Node::Succeed => {}
            other => parts.push(other.clone()),
        }
    }
    match parts.len() {
        0 => Node::Succeed,
        1 => parts.pop().expect("one"),
        _ => Node::Seq(parts.into()),
    }
}

/// `p1 + p2`, flattened; two classes become one.
pub fn choice(a: &Node, b: &Node) -> Node {
    if let (Node::Class(x), Node::Class(y)) = (a, b) {
        let mut s = *x;
        for i in 0..4 {
            s.0[i] |= y.0[i];
        }
        return Node::Class(s);
    }
    let mut parts = Vec::new();
    for n in [a, b] {
        match n {
            Node::Choice(ps) => parts.extend(ps.iter().cloned()),
            other => parts.push(other.clone()),
        }
    }
    Node::Choice(parts.into())
}

/// Whether `node` may succeed without consuming input; `rules` are the grammar's, and calls
/// being looked at (`visiting`) count as not nullable, which is what the left-recursion check
/// wants.
pub fn nullable(node: &Node, rules: &[Node], visiting: &mut Vec<usize>) -> bool {
    match node {
        Node::Any(n) => *n == 0,
        Node::FewerThan(_) | Node::Succeed | Node::And(_) | Node::Not(_) | Node::Behind(..) => true,
        Node::Fail | Node::Class(_) => false,
        Node::Literal(l) => l.is_empty(),
        Node::Seq(ps) => ps.iter().all(|p| nullable(p, rules, visiting)),
        Node::Choice(ps) => ps.iter().any(|p| nullable(p, rules, visiting)),
        Node::AtLeast(p, n) => *n == 0 || nullable(p, rules, visiting),
        Node::AtMost(..) => true,
        Node::Open(_) => false,
        Node::Call(i) => {
            if visiting.contains(i) || *i >= rules.len() {
                return false;
            }
            visiting.push(*i);
            let r = nullable(&rules[*i], rules, visiting);
            visiting.pop();
            r
        }
        Node::Grammar(inner, start) => nullable(&inner[*start], inner, &mut Vec::new()),
        Node::Capture(_, p) | Node::MatchTime(p, _) => nullable(p, rules, visiting),
    }
}

/// The length `node` always matches, if fixed (for `B`); `rules` are the grammar's, for its
/// calls (a call being looked at has no fixed length: it recurses).
pub fn fixed_length(node: &Node, rules: &[Node], visiting: &mut Vec<usize>) -> Option<usize> {
    match node {
        Node::Any(n) => Some(*n),
        Node::Literal(l) => Some(l.len()),
        Node::Class(_) => Some(1),
        Node::Succeed | Node::FewerThan(_) | Node::And(_) | Node::Not(_) | Node::Behind(..) => {
            Some(0)
        }
        Node::Seq(ps) => ps.iter().map(|p| fixed_length(p, rules, visiting)).sum(),
        Node::Choice(ps) => {
            let first = fixed_length(ps.first()?, rules, visiting)?;
            ps.iter()
                .all(|p| fixed_length(p, rules, visiting) == Some(first))
                .then_some(first)
        }
        Node::Capture(_, p) => fixed_length(p, rules, visiting),
        Node::Call(i) => {
            if visiting.contains(i) {
                return None;
            }
            visiting.push(*i);
            let n = fixed_length(rules.get(*i)?, rules, visiting);
            visiting.pop();
            n
        }
        Node::Grammar(inner, start) => fixed_length(&inner[*start], inner, &mut Vec::new()),
        _ => None,
    }
}

/// Replaces each `V(name)` by the call of its rule; `names` maps rule names (and numbers) to
/// indexes. Nested grammars were resolved when built and are left alone.
pub fn resolve(node: &Node, names: &[(Value, usize)]) -> Result<Node, String> {
    let again = |p: &Rc<Node>| resolve(p, names).map(Rc::new);
    Ok(match node {
        Node::Open(name) => {
            let found = names.iter().find(|(n, _)| same_key(n, name));
            match found {
                Some((_, i)) => Node::Call(*i),
                None => return Err(format!("rule '{}' undefined in given grammar", show(name))),
            }
        }
        Node::Seq(ps) => Node::Seq(
            ps.iter()
                .map(|p| resolve(p, names))
                .collect::<Result<_, _>>()?,
        ),
        Node::Choice(ps) => Node::Choice(
            ps.iter()
                .map(|p| resolve(p, names))
                .collect::<Result<_, _>>()?,
        ),
        Node::AtLeast(p, n) => Node::AtLeast(again(p)?, *n),
        Node::AtMost(p, n) => Node::AtMost(again(p)?, *n),
        Node::And(p) => Node::And(again(p)?),
        Node::Not(p) => Node::Not(again(p)?),
        Node::Behind(p, n) => Node::Behind(again(p)?, *n),
        Node::Capture(k, p) => Node::Capture(k.clone(), again(p)?),
        Node::MatchTime(p, f) => Node::MatchTime(again(p)?, f.clone()),
        other => other.clone(),
    })
}

/// Grammar keys compare as Lua table keys do (strings by bytes, numbers by value).
pub fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
        (Value::Integer(x), Value::Integer(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Integer(x), Value::Number(y)) | (Value::Number(y), Value::Integer(x)) => {
            *x as f64 == *y
        }
        _ => false,
    }
}

pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string_lossy(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.type_name().to_owned(),
    }
}

/// LPeg's checks on a new grammar: a rule that may call itself without consuming input.
pub fn check_left_recursion(rules: &[Node], names: &[(Value, usize)]) -> Result<(), String> {
    fn walk(node: &Node, rules: &[Node], path: &mut Vec<usize>) -> Result<(), usize> {
        match node {
            Node::Call(i) => {
                if path.contains(i) {
                    return Err(*i);
                }
                path.push(*i);
                let r = walk(&rules[*i], rules, path);
                path.pop();
                r
            }
            Node::Seq(ps) => {
                for p in ps.iter() {
                    walk(p, rules, path)?;
                    if !nullable(p, rules, &mut Vec::new()) {
                        break;
                    }
                }
                Ok(())
            }
            Node::Choice(ps) => ps.iter().try_for_each(|p| walk(p, rules, path)),
            Node::AtLeast(p, _)
            | Node::AtMost(p, _)
            | Node::And(p)
            | Node::Not(p)
            | Node::Capture(_, p)
            | Node::MatchTime(p, _) => walk(p, rules, path),
            _ => Ok(()),
        }
    }
    for i in 0..rules.len() {
        if let Err(rule) = walk(&Node::Call(i), rules, &mut Vec::new()) {
            let name = names
                .iter()
                .find(|(_, n)| *n == rule)
                .map_or_else(|| rule.to_string(), |(k, _)| show(k));
            return Err(format!("rule '{name}' may be left recursive"));
        }
    }
    Ok(())
}
