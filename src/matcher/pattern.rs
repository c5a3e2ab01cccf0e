//! Lua 5.1 string patterns: the matcher's `=~` and `!~`, and the sandbox's `string.find`,
//! `match`, `gmatch` and `gsub`.
//!
//! The algorithm is lstrlib.c's backtracking matcher, written over slice indices: character
//! classes (`%a %c %d %l %p %s %u %w %x %z` and their negations, ASCII as in the C locale), sets
//! with ranges, `.`, the quantifiers `* + - ?`, anchors `^ $`, captures with back-references
//! `%1`–`%9`, `%b` and `%f`. A pattern is checked when it is compiled, so matching never meets a
//! malformed one; the input is never read out of bounds (a crate used before read one byte past
//! the pattern, where C has its terminating NUL, and matched at random). Recursion is bounded as
//! in Lua 5.2: a pattern too complex for it matches nothing.
//!
//! Matching spends steps from a budget (one per matcher call and per character a quantifier
//! takes): a pattern that backtracks without end, such as `string.rep("a*", 20) .. "b"` on a
//! long subject, runs out of budget instead of holding its thread. C's matcher cannot be
//! stopped at all: the sandbox's instruction limit never sees what happens inside it.

use std::borrow::Cow;
use std::ops::Range;

const MAX_CAPTURES: usize = 32;
/// Nesting of the recursive matcher (Lua 5.2's MAXCCALLS).
const MAX_DEPTH: usize = 200;
const ESC: u8 = b'%';

/// Steps the matcher's `=~` may spend on one value before it counts as no match.
pub const MATCHER_BUDGET: u64 = 1_000_000;

/// A checked Lua pattern: owned where it is kept (a matcher), borrowed where it is used once
/// (a `string.find` call), so checking it costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern<'a> {
    /// Without its anchor.
    pattern: Cow<'a, [u8]>,
    anchored: bool,
}

/// A match: where it is, and what its captures hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub range: Range<usize>,
    pub captures: Vec<Captured>,
}

/// One capture of a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// `(...)`: the part of the subject it covered.
    Text(Range<usize>),
    /// `()`: a position (0-based).
    Position(usize),
}

/// The step budget ran out before the match was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl Pattern<'static> {
    /// Checks `pattern` and keeps a copy; the error is Lua's message for it.
    pub fn new(pattern: &[u8]) -> Result<Self, String> {
        let Pattern { pattern, anchored } = Pattern::borrowed(pattern)?;
        Ok(Pattern {
            pattern: Cow::Owned(pattern.into_owned()),
            anchored,
        })
    }
}

impl<'a> Pattern<'a> {
    /// Checks `pattern`; the error is Lua's message for it. A leading `^` anchors it.
    pub fn borrowed(pattern: &'a [u8]) -> Result<Self, String> {
        check(pattern)?;
        let (body, anchored) = match pattern.split_first() {
            Some((b'^', rest)) => (rest, true),
            _ => (pattern, false),
        };
        Ok(Pattern {
            pattern: Cow::Borrowed(body),
            anchored,
        })
    }

    /// As [`Pattern::borrowed`], but a leading `^` is an ordinary character (Lua 5.1's
    /// `gmatch`).
    pub fn unanchored(pattern: &'a [u8]) -> Result<Self, String> {
        check_body(pattern)?;
        Ok(Pattern {
            pattern: Cow::Borrowed(pattern),
            anchored: false,
        })
    }

    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// True if the pattern occurs in `subject` (`string.find(subject, pattern) ~= nil`); a
    /// search that spends [`MATCHER_BUDGET`] steps counts as no match.
    pub fn is_match(&self, subject: &[u8]) -> bool {
        let mut budget = MATCHER_BUDGET;
        matches!(self.find(subject, 0, &mut budget), Ok(Some(_)))
    }

    /// The first match starting at or after `init` (only at `init` if anchored), spending
    /// from `budget`.
    pub fn find(
        &self,
        subject: &[u8],
        init: usize,
        budget: &mut u64,
    ) -> Result<Option<Found>, Exhausted> {
        let mut start = init;
        while start <= subject.len() {
            if let Some(found) = self.match_at(subject, start, budget)? {
                return Ok(Some(found));
            }
            if self.anchored {
                break;
            }
            start += 1;
        }
        Ok(None)
    }

    /// A match starting exactly at `start`, spending from `budget`.
    pub fn match_at(
        &self,
        subject: &[u8],
        start: usize,
        budget: &mut u64,
    ) -> Result<Option<Found>, Exhausted> {
        let mut state = State {
            src: subject,
            pat: &self.pattern,
            level: 0,
            captures: [Capture::default(); MAX_CAPTURES],
            depth: 0,
            budget: *budget,
            exhausted: false,
        };
        let end = state.do_match(start, 0);
        *budget = state.budget;
        if state.exhausted {
            return Err(Exhausted);
        }
        Ok(end.map(|end| Found {
            range: start..end,
            captures: state.captures[..state.level]
                .iter()
                .map(|c| match c.len {
                    CaptureLen::Closed(len) => Captured::Text(c.start..c.start + len),
                    // A match leaves no capture open (the pattern was checked).
                    CaptureLen::Position | CaptureLen::Open => Captured::Position(c.start),
                })
                .collect(),
        }))
    }
}

/// Lua's structural errors, found before any matching.
fn check(pattern: &[u8]) -> Result<(), String> {
    check_body(pattern.strip_prefix(b"^").unwrap_or(pattern))
}

fn check_body(body: &[u8]) -> Result<(), String> {
    let mut open: Vec<usize> = Vec::new(); // capture numbers still open
    let mut captures = 0usize;
    let mut closed = [false; MAX_CAPTURES];
    let mut p = 0;
    while p < body.len() {
        match body[p] {
            b'(' => {
                if captures == MAX_CAPTURES {
                    return Err("too many captures".into());
                }
                open.push(captures);
                captures += 1;
                if body.get(p + 1) == Some(&b')') {
                    // A position capture is complete at once.
                    let n = open.pop().expect("just pushed");
                    closed[n] = true;
                    p += 2;
                } else {
                    p += 1;
                }
                continue;
            }
            b')' => {
                let n = open.pop().ok_or("invalid pattern capture")?;
                closed[n] = true;
                p += 1;
                continue;
            }
            ESC => match body.get(p + 1) {
                None => return Err("malformed pattern (ends with '%')".into()),
                Some(b'b') => {
                    if p + 3 >= body.len() {
                        return Err("missing arguments to '%b'".into());
                    }
                    p += 4;
                    continue;
                }
                Some(b'f') => {
                    if body.get(p + 2) != Some(&b'[') {
                        return Err("missing '[' after '%f' in pattern".into());
                    }
                    p = class_end(body, p + 2)?;
                    continue;
                }
                Some(d @ b'0'..=b'9') => {
                    let n = (d - b'0') as usize;
                    if n == 0 || n > captures || !closed[n - 1] {
                        return Err(format!("invalid capture index %{n}"));
                    }
                    p += 2;
                    continue;
                }
                Some(_) => {}
            },
            _ => {}
        }
        let end = class_end(body, p)?;
        p = match body.get(end) {
            Some(b'*' | b'+' | b'-' | b'?') => end + 1,
            _ => end,
        };
    }
    if !open.is_empty() {
        return Err("unfinished capture".into());
    }
    Ok(())
}

/// The index just past the single-character class starting at `p` (`x`, `%x` or `[...]`).
fn class_end(pat: &[u8], mut p: usize) -> Result<usize, String> {
    let c = pat[p];
    p += 1;
    match c {
        ESC => {
            if p >= pat.len() {
                return Err("malformed pattern (ends with '%')".into());
            }
            Ok(p + 1)
        }
        b'[' => {
            if pat.get(p) == Some(&b'^') {
                p += 1;
            }
            // The first character of a set is literal, even `]`.
            loop {
                let Some(&c) = pat.get(p) else {
                    return Err("malformed pattern (missing ']')".into());
                };
                p += 1;
                if c == ESC {
                    if p >= pat.len() {
                        return Err("malformed pattern (missing ']')".into());
                    }
                    p += 1;
                }
                if pat.get(p) == Some(&b']') {
                    return Ok(p + 1);
                }
            }
        }
        _ => Ok(p),
    }
}

/// `c` against a class letter (`%a`, `%A`, …); any other letter matches itself.
fn match_class(c: u8, class: u8) -> bool {
    let found = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,
        _ => return class == c,
    };
    if class.is_ascii_uppercase() {
        !found
    } else {
        found
    }
}

/// `c` against the set `pat[p..=close]` (`p` at `[`, `close` at its `]`).
fn match_set(c: u8, pat: &[u8], mut p: usize, close: usize) -> bool {
    let mut positive = true;
    if pat[p + 1] == b'^' {
        positive = false;
        p += 1;
    }
    p += 1;
    while p < close {
        if pat[p] == ESC {
            p += 1;
            if match_class(c, pat[p]) {
                return positive;
            }
        } else if pat[p + 1] == b'-' && p + 2 < close {
            if pat[p] <= c && c <= pat[p + 2] {
                return positive;
            }
            p += 2;
        } else if pat[p] == c {
            return positive;
        }
        p += 1;
    }
    !positive
}

#[derive(Debug, Clone, Copy, Default)]
struct Capture {
    start: usize,
    len: CaptureLen,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum CaptureLen {
    /// Still open (its `)` not reached yet).
    #[default]
    Open,
    /// `()`: a position; a back-reference to it matches nothing, as in Lua.
    Position,
    Closed(usize),
}

struct State<'a> {
    src: &'a [u8],
    pat: &'a [u8],
    level: usize,
    captures: [Capture; MAX_CAPTURES],
    depth: usize,
    /// Steps left.
    budget: u64,
    /// The budget ran out: every call now fails at once.
    exhausted: bool,
}

impl State<'_> {
    /// Takes `n` steps from the budget; false once it has run out.
    fn spend(&mut self, n: u64) -> bool {
        if self.budget < n {
            self.budget = 0;
            self.exhausted = true;
            return false;
        }
        self.budget -= n;
        true
    }

    /// Does `src[s]` match the class `pat[p..ep]`?
    fn single(&self, s: usize, p: usize, ep: usize) -> bool {
        let Some(&c) = self.src.get(s) else {
            return false;
        };
        match self.pat[p] {
            b'.' => true,
            ESC => match_class(c, self.pat[p + 1]),
            b'[' => match_set(c, self.pat, p, ep - 1),
            literal => literal == c,
        }
    }

    /// Matches `pat[p..]` at `src[s..]`; the end of the match.
    fn do_match(&mut self, s: usize, p: usize) -> Option<usize> {
        if self.depth == MAX_DEPTH || !self.spend(1) {
            return None;
        }
        self.depth += 1;
        let result = self.match_here(s, p);
        self.depth -= 1;
        result
    }

    fn match_here(&mut self, mut s: usize, mut p: usize) -> Option<usize> {
        loop {
            let Some(&c) = self.pat.get(p) else {
                return Some(s);
            };
            match c {
                b'(' => {
                    return if self.pat.get(p + 1) == Some(&b')') {
                        self.start_capture(s, p + 2, CaptureLen::Position)
                    } else {
                        self.start_capture(s, p + 1, CaptureLen::Open)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return (s == self.src.len()).then_some(s);
                }
                ESC => match self.pat[p + 1] {
                    b'b' => {
                        s = self.balance(s, p + 2)?;
                        p += 4;
                        continue;
                    }
                    b'f' => {
                        p += 2;
                        let ep = class_end(self.pat, p).ok()?;
                        let previous = if s == 0 { 0 } else { self.src[s - 1] };
                        let current = self.src.get(s).copied().unwrap_or(0);
                        if !match_set(previous, self.pat, p, ep - 1)
                            && match_set(current, self.pat, p, ep - 1)
                        {
                            p = ep;
                            continue;
                        }
                        return None;
                    }
                    d @ b'1'..=b'9' => {
                        s = self.back_reference(s, (d - b'1') as usize)?;
                        p += 2;
                        continue;
                    }
                    _ => {}
                },
                _ => {}
            }
            let ep = class_end(self.pat, p).ok()?;
            let matched = self.single(s, p, ep);
            match self.pat.get(ep) {
                Some(b'?') => {
                    if matched && let Some(end) = self.do_match(s + 1, ep + 1) {
                        return Some(end);
                    }
                    p = ep + 1;
                }
                Some(b'*') => return self.max_expand(s, p, ep),
                Some(b'+') => {
                    return if matched {
                        self.max_expand(s + 1, p, ep)
                    } else {
                        None
                    };
                }
                Some(b'-') => return self.min_expand(s, p, ep),
                _ => {
                    if !matched {
                        return None;
                    }
                    s += 1;
                    p = ep;
                }
            }
        }
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Option<usize> {
        let mut n = 0;
        while self.single(s + n, p, ep) {
            if !self.spend(1) {
                return None;
            }
            n += 1;
        }
        loop {
            if let Some(end) = self.do_match(s + n, ep + 1) {
                return Some(end);
            }
            if n == 0 {
                return None;
            }
            n -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> Option<usize> {
        loop {
            if let Some(end) = self.do_match(s, ep + 1) {
                return Some(end);
            }
            if !self.single(s, p, ep) {
                return None;
            }
            s += 1;
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, len: CaptureLen) -> Option<usize> {
        let level = self.level;
        self.captures[level] = Capture { start: s, len };
        self.level += 1;
        let result = self.do_match(s, p);
        if result.is_none() {
            self.level -= 1;
        }
        result
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Option<usize> {
        let open = (0..self.level)
            .rev()
            .find(|&l| self.captures[l].len == CaptureLen::Open)?;
        self.captures[open].len = CaptureLen::Closed(s - self.captures[open].start);
        let result = self.do_match(s, p);
        if result.is_none() {
            self.captures[open].len = CaptureLen::Open;
        }
        result
    }

    fn back_reference(&mut self, s: usize, l: usize) -> Option<usize> {
        let capture = *self.captures.get(l).filter(|_| l < self.level)?;
        let CaptureLen::Closed(len) = capture.len else {
            return None;
        };
        if !self.spend(len as u64) {
            return None;
        }
        let wanted = self.src.get(capture.start..capture.start + len)?;
        let here = self.src.get(s..s + len)?;
        (wanted == here).then_some(s + len)
    }

    fn balance(&mut self, s: usize, p: usize) -> Option<usize> {
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        if self.src.get(s) != Some(&open) {
            return None;
        }
        let mut depth = 1;
        let mut end = None;
        for (i, &c) in self.src.iter().enumerate().skip(s + 1) {
            if c == close {
                depth -= 1;
                if depth == 0 {
                    end = Some(i + 1);
                    break;
                }
            } else if c == open {
                depth += 1;
            }
        }
        let scanned = end.unwrap_or(self.src.len()) - s;
        if !self.spend(scanned as u64) {
            return None;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;
    use proptest::prelude::*;

    /// What Lua 5.1 itself says: `string.find(s, p) ~= nil`, or its error.
    fn lua_find(lua: &Lua, subject: &[u8], pattern: &[u8]) -> Result<bool, String> {
        let find: mlua::Function = lua
            .load("return function(s, p) return string.find(s, p) ~= nil end")
            .eval()
            .unwrap();
        find.call::<bool>((
            lua.create_string(subject).unwrap(),
            lua.create_string(pattern).unwrap(),
        ))
        .map_err(|e| e.to_string())
    }

    const CASES: &[(&str, &str)] = &[
        ("TEST", "a TEST b"),
        ("TEST", "TES"),
        ("^TEST", "TEST"),
        ("^TEST", " TEST"),
        ("TEST$", "a TEST"),
        ("TEST$", "TEST a"),
        ("^$", ""),
        ("^$", "x"),
        ("a.c", "abc"),
        ("a.c", "ac"),
        ("%d+", "abc123"),
        ("^%d+$", "123a"),
        ("%a%d", "x1"),
        ("%A", "abc"),
        ("%s", "a\u{b}b"),
        ("%p", "a,b"),
        ("%x+", "zzz"),
        ("%w-%.", "abc.def"),
        ("[abc]+", "xxbxx"),
        ("[^abc]", "abc"),
        ("[a-f]", "z"),
        ("[a-f]", "e"),
        ("[%d%-]+", "12-34"),
        ("[]]", "]"),
        ("[^]]", "]"),
        ("[a-]", "-"),
        ("a?b", "b"),
        ("a*b", "aaab"),
        ("a-b", "aaab"),
        ("ba+", "b"),
        ("(a)%1", "aa"),
        ("(a)%1", "ab"),
        ("(%a+) %1", "hello hello"),
        ("()a", "a"),
        ("()%1", "a"),
        ("%b()", "x(a(b)c)y"),
        ("%b()", "x(a(b c y"),
        ("%f[%a]%a+", "123abc"),
        ("%f[%a]abc", "xabc"),
        ("%z", "a\0b"),
        ("%.", "a.b"),
        ("%%", "100%"),
        ("$", "x"),
        ("a$b", "a$b"),
        ("^^", "^a"),
        ("(a(b)c)", "abc"),
        ("[%a_][%w_]*", "  _x1"),
        ("Payload", "Payload"),
    ];

    #[test]
    fn agrees_with_lua_5_1_on_the_table() {
        let lua = Lua::new();
        for (pattern, subject) in CASES {
            let ours = Pattern::new(pattern.as_bytes())
                .map(|p| p.is_match(subject.as_bytes()))
                .map_err(|e| e.to_string());
            let theirs = lua_find(&lua, subject.as_bytes(), pattern.as_bytes());
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{pattern:?} on {subject:?}: {ours:?} / {theirs:?}"
            );
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                assert_eq!(a, b, "{pattern:?} on {subject:?}");
            }
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "%", "[a", "[^", "(a", "a)", "%b(", "%f", "%fa", "%1", "(a%1)", "[%",
        ] {
            assert!(Pattern::new(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    fn pattern_strategy() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop_oneof![
            Just(b"a".to_vec()),
            Just(b"b".to_vec()),
            Just(b".".to_vec()),
            Just(b"%a".to_vec()),
            Just(b"%d".to_vec()),
            Just(b"%S".to_vec()),
            Just(b"[ab]".to_vec()),
            Just(b"[^a]".to_vec()),
            Just(b"[a-c]".to_vec()),
            Just(b"*".to_vec()),
            Just(b"+".to_vec()),
            Just(b"-".to_vec()),
            Just(b"?".to_vec()),
            Just(b"(".to_vec()),
            Just(b")".to_vec()),
            Just(b"%1".to_vec()),
            Just(b"%b()".to_vec()),
            Just(b"%f[%a]".to_vec()),
            Just(b"^".to_vec()),
            Just(b"$".to_vec()),
        ];
        proptest::collection::vec(pieces, 0..7).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn agrees_with_lua_5_1_on_random_patterns(
            pattern in pattern_strategy(),
            subject in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(b'1'), Just(b' '), Just(b'('), Just(b')')], 0..10),
        ) {
            // A pattern we accept is one Lua runs without error, with the same answer. (Refused
            // ones are covered by `malformed_patterns_are_refused`: Lua reports those only when
            // a match reaches the bad part.)
            if let Ok(p) = Pattern::new(&pattern) {
                let lua = Lua::new();
                prop_assert_eq!(
                    Ok(p.is_match(&subject)),
                    lua_find(&lua, &subject, &pattern),
                    "{:?}",
                    String::from_utf8_lossy(&pattern)
                );
            }
        }
    }
}
