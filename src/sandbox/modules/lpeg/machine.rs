//! Matching: a backtracking walk of the pattern tree over the subject, recording captures as
//! open/close events (undone on backtracking) for [`super::captures`] to evaluate once the
//! match succeeds. Every node visited costs one step of the plugin's instruction budget, and
//! nesting (grammar calls included) is bounded, so no pattern can hold a thread or overflow
//! its stack.

use mlua::{Function, Lua, LuaString, MultiValue, Value};

use super::captures;
use super::tree::{CapKind, Node, show};

/// A capture event.
#[derive(Debug)]
pub enum Event<'t> {
    Open(&'t CapKind, usize),
    Close(usize),
    /// Values a match-time capture returned, at a position.
    Values(usize, Vec<Value>),
}

/// Why a match stopped before deciding.
pub enum Stop {
    /// The instruction budget ran out.
    Exhausted,
    /// Nesting past the limit (`lpeg.setmaxstack`).
    TooDeep(usize),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Self {
        Stop::Lua(e)
    }
}

pub struct Machine<'t, 'a> {
    pub lua: &'a Lua,
    pub subject: &'a [u8],
    pub subject_value: &'a LuaString,
    pub extra: &'a [Value],
    pub events: Vec<Event<'t>>,
    /// Steps left.
    pub left: u64,
    depth: usize,
    max_depth: usize,
    /// Where the stack stood when matching began, and how far it may grow: matching recurses,
    /// and a plugin thread's stack is not the place to find out how deep a grammar goes.
    stack_base: usize,
}

/// The most stack a match may use (plugin threads have 2 MiB; a frame of the walk is a few
/// hundred bytes optimised, a few kilobytes in a debug build).
const STACK_BUDGET: usize = 1024 * 1024;

fn stack_position() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

type Step = Result<Option<usize>, Stop>;

impl<'t, 'a> Machine<'t, 'a> {
    pub fn new(
        lua: &'a Lua,
        subject_value: &'a LuaString,
        subject: &'a [u8],
        extra: &'a [Value],
        left: u64,
        max_depth: usize,
    ) -> Self {
        Machine {
            lua,
            subject,
            subject_value,
            extra,
            events: Vec::new(),
            left,
            depth: 0,
            max_depth,
            stack_base: stack_position(),
        }
    }

    /// Matches `node` at `pos` (0-based); the end of the match, if it matches.
    pub fn run(&mut self, node: &'t Node, pos: usize, rules: &'t [Node]) -> Step {
        if self.left == 0 {
            return Err(Stop::Exhausted);
        }
        self.left -= 1;
        self.depth += 1;
        if self.depth > self.max_depth || stack_position().abs_diff(self.stack_base) > STACK_BUDGET
        {
            self.depth -= 1;
            return Err(Stop::TooDeep(self.max_depth));
        }
        let result = self.step(node, pos, rules);
        self.depth -= 1;
        result
    }

    fn step(&mut self, node: &'t Node, pos: usize, rules: &'t [Node]) -> Step {
        let s = self.subject;
        Ok(match node {
            Node::Any(n) => (s.len() - pos >= *n).then_some(pos + n),
            Node::FewerThan(n) => (s.len() - pos < *n).then_some(pos),
            Node::Succeed => Some(pos),
            Node::Fail => None,
            Node::Literal(l) => s[pos..].starts_with(l).then_some(pos + l.len()),
            Node::Class(set) => s.get(pos).filter(|&&b| set.has(b)).map(|_| pos + 1),
            Node::Seq(parts) => {
                let mark = self.events.len();
                let mut at = pos;
                for p in parts.iter() {
                    match self.run(p, at, rules)? {
                        Some(next) => at = next,
                        None => {
                            self.events.truncate(mark);
                            return Ok(None);
                        }
                    }
                }
                Some(at)
            }
            Node::Choice(parts) => {
                let mark = self.events.len();
                for p in parts.iter() {
                    if let Some(end) = self.run(p, pos, rules)? {
                        return Ok(Some(end));
                    }
                    self.events.truncate(mark);
                }
                None
            }
            Node::AtLeast(p, min) => {
                let start = self.events.len();
                let (mut at, mut count) = (pos, 0usize);
                loop {
                    let mark = self.events.len();
                    match self.run(p, at, rules)? {
                        // A body that matched nothing would loop forever: once is enough.
                        Some(next) if next == at => {
                            count = count.max(*min);
                            break;
                        }
                        Some(next) => {
                            at = next;
                            count += 1;
                        }
                        None => {
                            self.events.truncate(mark);
                            break;
                        }
                    }
                }
                if count >= *min {
                    Some(at)
                } else {
                    self.events.truncate(start);
                    None
                }
            }
            Node::AtMost(p, max) => {
                let mut at = pos;
                for _ in 0..*max {
                    let mark = self.events.len();
                    match self.run(p, at, rules)? {
                        Some(next) if next != at => at = next,
                        Some(_) => break,
                        None => {
                            self.events.truncate(mark);
                            break;
                        }
                    }
                }
                Some(at)
            }
            Node::And(p) => {
                let mark = self.events.len();
                let matched = self.run(p, pos, rules)?.is_some();
                self.events.truncate(mark);
                matched.then_some(pos)
            }
            Node::Not(p) => {
                let mark = self.events.len();
                let matched = self.run(p, pos, rules)?.is_some();
                self.events.truncate(mark);
                (!matched).then_some(pos)
            }
            Node::Behind(p, len) => {
                if pos < *len {
                    return Ok(None);
                }
                let mark = self.events.len();
                match self.run(p, pos - len, rules)? {
                    Some(end) if end == pos => Some(pos),
                    _ => {
                        self.events.truncate(mark);
                        None
                    }
                }
            }
            Node::Open(name) => {
                return Err(Stop::Lua(mlua::Error::runtime(format!(
                    "rule '{}' used outside a grammar",
                    show(name)
                ))));
            }
            Node::Call(i) => match rules.get(*i) {
                Some(rule) => self.run(rule, pos, rules)?,
                None => None,
            },
            Node::Grammar(inner, start) => self.run(&inner[*start], pos, inner)?,
            Node::Capture(kind, p) => {
                let mark = self.events.len();
                self.events.push(Event::Open(kind, pos));
                match self.run(p, pos, rules)? {
                    Some(end) => {
                        self.events.push(Event::Close(end));
                        Some(end)
                    }
                    None => {
                        self.events.truncate(mark);
                        None
                    }
                }
            }
            Node::MatchTime(p, f) => {
                let mark = self.events.len();
                let Some(end) = self.run(p, pos, rules)? else {
                    return Ok(None);
                };
                let mut nested = captures::evaluate(self, mark)?;
                if nested.is_empty() {
                    // As LPeg: with no capture values, the function gets the whole match.
                    nested.push(Value::String(
                        self.lua.create_string(&self.subject[pos..end])?,
                    ));
                }
                self.events.truncate(mark);
                let Value::Function(f) = f else {
                    return Ok(None);
                };
                self.match_time(f, end, nested, pos)?
            }
        })
    }

    /// Calls a match-time capture's function: `f(subject, end + 1, captures...)`.
    fn match_time(
        &mut self,
        f: &Function,
        end: usize,
        nested: Vec<Value>,
        start: usize,
    ) -> Result<Option<usize>, Stop> {
        let mut args = vec![
            Value::String(self.subject_value.clone()),
            Value::Integer((end + 1) as i64),
        ];
        args.extend(nested);
        let results: MultiValue = f.call(MultiValue::from_vec(args))?;
        let mut results = results.into_iter();
        let new_end = match results.next() {
            None | Some(Value::Nil) | Some(Value::Boolean(false)) => return Ok(None),
            Some(Value::Boolean(true)) => end,
            Some(Value::Integer(n)) => self.position(n as f64, end)?,
            Some(Value::Number(n)) => self.position(n, end)?,
            Some(other) => {
                return Err(Stop::Lua(mlua::Error::runtime(format!(
                    "invalid return value from match-time capture (a {})",
                    other.type_name()
                ))));
            }
        };
        let values: Vec<Value> = results.collect();
        if !values.is_empty() {
            self.events.push(Event::Values(start, values));
        }
        Ok(Some(new_end))
    }

    fn position(&self, n: f64, end: usize) -> Result<usize, Stop> {
        let p = n as i64 - 1;
        if p < end as i64 || p > self.subject.len() as i64 {
            return Err(Stop::Lua(mlua::Error::runtime(
                "invalid position returned by match-time capture",
            )));
        }
        Ok(p as usize)
    }
}
