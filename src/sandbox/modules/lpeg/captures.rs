//! Turning a successful match's capture events into Lua values, as LPeg's captures define
//! them: simple, constant, position, argument, back-reference, group (named or not),
//! substitution, table, fold, and the `/` captures (format string, n-th value, table query,
//! function).

use mlua::{Function, Lua, MultiValue, Value};

use super::machine::{Event, Machine, Stop};
use super::tree::{CapKind, same_key, show};

/// What one capture gives its parent.
enum Out {
    Values(Vec<Value>),
    /// A named group: nothing, except to a table capture (and back references).
    Named(Value, Vec<Value>),
}

/// One evaluated capture and the text it matched.
struct Child {
    out: Out,
    start: usize,
    end: usize,
    /// For a simple capture, what a format string's `%n` sees of it: its text, then its
    /// nested captures', flattened in order (LPeg's rule).
    strcaps: Vec<StrCap>,
}

/// An entry a format string's `%n` refers to.
#[derive(Clone)]
enum StrCap {
    Text(usize, usize),
    /// A non-simple capture's first value (none if it gave none).
    Value(Option<Value>),
}

/// The most captures one capture may gather before making its values (mlua's reference stack
/// holds a few thousand live values; a table capture streams and has no such limit).
const MAX_HELD: usize = 4000;

/// How deep captures may nest when evaluated (LPeg's limit).
const MAX_CAPTURE_NESTING: usize = 200;

struct Evaluator<'e, 't> {
    lua: &'e Lua,
    subject: &'e [u8],
    extra: &'e [Value],
    events: &'e [Event<'t>],
    /// Events recorded before `events` (a match-time capture's back references reach them).
    earlier: &'e [Event<'t>],
    /// The named groups a back reference here may see, latest last: LPeg's "most recent
    /// outermost complete" groups — earlier siblings of this capture and of each enclosing
    /// one. A group nested inside another complete capture is dropped when that one closes.
    groups: Vec<(Value, Vec<Value>)>,
    depth: usize,
}

fn runtime(message: String) -> Stop {
    Stop::Lua(mlua::Error::runtime(message))
}

/// The values of the captures recorded from event `from` on (named groups give none).
pub fn evaluate(m: &Machine, from: usize) -> Result<Vec<Value>, Stop> {
    let mut e = Evaluator {
        lua: m.lua,
        subject: m.subject,
        extra: m.extra,
        events: &m.events[from..],
        earlier: &m.events[..from],
        groups: Vec::new(),
        depth: 0,
    };
    let mut i = 0;
    let mut values = Vec::new();
    while i < e.events.len() {
        let child = e.one(&mut i)?;
        if let Out::Values(v) = child.out {
            values.extend(v);
        }
        if values.len() > MAX_HELD {
            return Err(runtime("too many captures".into()));
        }
    }
    Ok(values)
}

impl Evaluator<'_, '_> {
    fn text(&self, start: usize, end: usize) -> Result<Value, Stop> {
        Ok(Value::String(
            self.lua.create_string(&self.subject[start..end])?,
        ))
    }

    /// The capture starting at event `*i`; `*i` ends past it.
    fn one(&mut self, i: &mut usize) -> Result<Child, Stop> {
        let (kind, start) = match &self.events[*i] {
            Event::Values(pos, values) => {
                *i += 1;
                return Ok(Child {
                    out: Out::Values(values.clone()),
                    start: *pos,
                    end: *pos,
                    strcaps: Vec::new(),
                });
            }
            Event::Open(kind, pos) => (*kind, *pos),
            Event::Close(_) => return Err(runtime("capture events out of order".into())),
        };
        *i += 1;
        self.depth += 1;
        if self.depth > MAX_CAPTURE_NESTING {
            return Err(runtime("subcapture nesting too deep".into()));
        }
        // Groups named inside this capture are not visible once it is complete.
        let scope = self.groups.len();
        // A table capture takes its children's values as they come: mlua holds every live Lua
        // value in a reference stack of a few thousand slots, so 10,000 values gathered first
        // would not fit (LPeg's `Ct(C(1)^0)` over a long subject is common).
        if let CapKind::Table = kind {
            let t = self.lua.create_table()?;
            let mut n = 0;
            let end = loop {
                match self.events.get(*i) {
                    Some(Event::Close(end)) => {
                        *i += 1;
                        break *end;
                    }
                    // Positional values in order; a named group's first value under its name.
                    Some(_) => match self.one(i)?.out {
                        Out::Values(v) => {
                            for value in v {
                                n += 1;
                                t.raw_set(n, value)?;
                            }
                        }
                        Out::Named(k, v) => {
                            if let Some(first) = v.into_iter().next() {
                                t.raw_set(k, first)?;
                            }
                        }
                    },
                    None => return Err(runtime("an unclosed capture".into())),
                }
            };
            self.depth -= 1;
            self.groups.truncate(scope);
            return Ok(Child {
                out: Out::Values(vec![Value::Table(t)]),
                start,
                end,
                strcaps: Vec::new(),
            });
        }
        let mut children = Vec::new();
        let end = loop {
            match self.events.get(*i) {
                Some(Event::Close(end)) => {
                    *i += 1;
                    break *end;
                }
                Some(_) => {
                    if children.len() >= MAX_HELD {
                        return Err(runtime("too many captures".into()));
                    }
                    children.push(self.one(i)?)
                }
                None => return Err(runtime("an unclosed capture".into())),
            }
        };
        self.depth -= 1;
        self.groups.truncate(scope);
        let strcaps = match kind {
            CapKind::Simple => {
                let mut caps = vec![StrCap::Text(start, end)];
                caps.extend(strcaps_of(&children));
                caps
            }
            _ => Vec::new(),
        };
        let out = self.make(kind, start, end, children)?;
        Ok(Child {
            out,
            start,
            end,
            strcaps,
        })
    }

    /// The values of `children`, or the whole match when they give none (LPeg's rule for
    /// groups, back references, functions, queries and `/ n`).
    fn nested(&self, children: Vec<Child>, start: usize, end: usize) -> Result<Vec<Value>, Stop> {
        let values = Self::flat(children);
        if values.is_empty() {
            return Ok(vec![self.text(start, end)?]);
        }
        Ok(values)
    }

    /// Every value of `children` in order (named groups give none).
    fn flat(children: Vec<Child>) -> Vec<Value> {
        let mut out = Vec::new();
        for c in children {
            if let Out::Values(v) = c.out {
                out.extend(v);
            }
        }
        out
    }

    fn make(
        &mut self,
        kind: &CapKind,
        start: usize,
        end: usize,
        children: Vec<Child>,
    ) -> Result<Out, Stop> {
        let whole = || self.text(start, end);
        Ok(Out::Values(match kind {
            CapKind::Simple => {
                let mut v = vec![whole()?];
                v.extend(Self::flat(children));
                v
            }
            CapKind::Const(values) => values.as_ref().clone(),
            CapKind::Position => vec![Value::Integer(start as i64 + 1)],
            CapKind::Arg(n) => match self.extra.get(n - 1) {
                Some(v) => vec![v.clone()],
                None => return Err(runtime(format!("reference to absent extra argument #{n}"))),
            },
            CapKind::Backref(name) => {
                match self.groups.iter().rev().find(|(k, _)| same_key(k, name)) {
                    Some((_, v)) => v.clone(),
                    None => match self.earlier_group(name)? {
                        Some(v) => v,
                        None => {
                            return Err(runtime(format!(
                                "back reference '{}' not found",
                                show(name)
                            )));
                        }
                    },
                }
            }
            CapKind::Group(None) => self.nested(children, start, end)?,
            CapKind::Group(Some(name)) => {
                let values = self.nested(children, start, end)?;
                self.groups.push((name.clone(), values.clone()));
                return Ok(Out::Named(name.clone(), values));
            }
            CapKind::Table => unreachable!("table captures stream in `Evaluator::one`"),
            CapKind::Subst => vec![self.substitute(start, end, children)?],
            CapKind::Fold(f) => {
                let Value::Function(f) = f else {
                    return Err(runtime("fold capture needs a function".into()));
                };
                let mut values = children.into_iter().filter_map(|c| match c.out {
                    Out::Values(v) => Some(v),
                    Out::Named(..) => None,
                });
                let mut acc = match values.next().and_then(|v| v.into_iter().next()) {
                    Some(v) => v,
                    None => return Err(runtime("no initial value for fold capture".into())),
                };
                for v in values {
                    let mut args = vec![acc];
                    args.extend(v);
                    acc = f.call::<Value>(MultiValue::from_vec(args))?;
                }
                vec![acc]
            }
            CapKind::Format(format) => vec![self.format(format, start, end, &children)?],
            CapKind::Nth(n) => {
                if *n == 0 {
                    return Ok(Out::Values(Vec::new()));
                }
                let values = self.nested(children, start, end)?;
                match values.get(n - 1) {
                    Some(v) => vec![v.clone()],
                    None => return Err(runtime(format!("no capture '{n}'"))),
                }
            }
            CapKind::Query(t) => {
                let key = self.nested(children, start, end)?.swap_remove(0);
                let Value::Table(t) = t else {
                    return Ok(Out::Values(Vec::new()));
                };
                match t.get::<Value>(key)? {
                    Value::Nil => Vec::new(),
                    v => vec![v],
                }
            }
            CapKind::Function(f) => {
                let args = self.nested(children, start, end)?;
                let Value::Function(f) = f else {
                    return Ok(Out::Values(Vec::new()));
                };
                call(f, args)?
            }
        }))
    }

    /// The values of the latest outermost complete group named `name` recorded before this
    /// evaluation's events (a match-time capture referring back to a group already matched):
    /// walking back, a closed capture is skipped whole, and the captures still open around
    /// this one are stepped out of.
    fn earlier_group(&self, name: &Value) -> Result<Option<Vec<Value>>, Stop> {
        let mut depth = 0usize;
        let mut found = None;
        for (at, event) in self.earlier.iter().enumerate().rev() {
            match event {
                Event::Close(_) => depth += 1,
                // An enclosing capture, still open: its earlier siblings are visible.
                Event::Open(..) if depth == 0 => {}
                Event::Open(kind, _) => {
                    depth -= 1;
                    if depth == 0 && matches!(kind, CapKind::Group(Some(k)) if same_key(k, name)) {
                        found = Some(at);
                        break;
                    }
                }
                Event::Values(..) => {}
            }
        }
        let Some(at) = found else {
            return Ok(None);
        };
        let mut inner = Evaluator {
            lua: self.lua,
            subject: self.subject,
            extra: self.extra,
            events: &self.earlier[at..],
            earlier: &self.earlier[..at],
            groups: Vec::new(),
            depth: self.depth,
        };
        let mut i = 0;
        Ok(match inner.one(&mut i)?.out {
            Out::Named(_, v) | Out::Values(v) => Some(v),
        })
    }

    /// `Cs`: the matched text with each child's first value in place of what it matched.
    fn substitute(&self, start: usize, end: usize, children: Vec<Child>) -> Result<Value, Stop> {
        let mut out = Vec::with_capacity(end - start);
        let mut at = start;
        for c in children {
            out.extend_from_slice(&self.subject[at..c.start.max(at)]);
            let value = match &c.out {
                Out::Values(v) => v.first().cloned(),
                Out::Named(..) => None,
            };
            match value {
                // No value: the original text stays.
                None => out.extend_from_slice(&self.subject[c.start.max(at)..c.end.max(at)]),
                Some(v) => out.extend_from_slice(&replacement(&v, "replacement")?),
            }
            at = c.end.max(at);
        }
        out.extend_from_slice(&self.subject[at..end]);
        Ok(Value::String(self.lua.create_string(out)?))
    }

    /// `p / "format"`: `%0` the whole match, `%1`–`%9` the nested captures as LPeg numbers
    /// them (a simple capture's text, then its own nested captures), `%x` any other `x`.
    fn format(
        &self,
        format: &[u8],
        start: usize,
        end: usize,
        children: &[Child],
    ) -> Result<Value, Stop> {
        let mut caps = vec![StrCap::Text(start, end)];
        caps.extend(strcaps_of(children));
        let mut out = Vec::new();
        let mut bytes = format.iter().copied();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                out.push(b);
                continue;
            }
            match bytes.next() {
                Some(d @ b'0'..=b'9') => {
                    let n = (d - b'0') as usize;
                    match caps.get(n) {
                        None => return Err(runtime(format!("invalid capture index ({n})"))),
                        Some(StrCap::Text(s, e)) => out.extend_from_slice(&self.subject[*s..*e]),
                        Some(StrCap::Value(Some(v))) => {
                            out.extend_from_slice(&replacement(v, "capture")?)
                        }
                        Some(StrCap::Value(None)) => {
                            return Err(runtime(format!("no values in capture index {n}")));
                        }
                    }
                }
                Some(other) => out.push(other),
                None => {}
            }
        }
        Ok(Value::String(self.lua.create_string(out)?))
    }
}

/// What a format string's `%1`… refer to among `children`.
fn strcaps_of(children: &[Child]) -> Vec<StrCap> {
    let mut caps = Vec::new();
    for c in children {
        if !c.strcaps.is_empty() {
            caps.extend(c.strcaps.iter().cloned());
        } else {
            caps.push(StrCap::Value(match &c.out {
                Out::Values(v) => v.first().cloned(),
                Out::Named(..) => None,
            }));
        }
    }
    caps
}

/// A value put into text: a string or a number.
fn replacement(v: &Value, what: &str) -> Result<Vec<u8>, Stop> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Integer(i) => Ok(i.to_string().into_bytes()),
        Value::Number(n) => Ok(crate::sandbox::lua_values::format_number(*n).into_bytes()),
        other => Err(runtime(format!(
            "invalid {what} value (a {})",
            other.type_name()
        ))),
    }
}

fn call(f: &Function, args: Vec<Value>) -> Result<Vec<Value>, Stop> {
    let results: MultiValue = f.call(MultiValue::from_vec(args))?;
    Ok(results.into_iter().collect())
}
