//! LPeg's documented behaviour, checked in Lua.

use std::rc::Rc;

use mlua::Lua;

use crate::plugin::PluginKind;
use crate::sandbox::modules::{ModuleEnv, StepAccount, Unlimited};

fn env(steps: Rc<dyn StepAccount>) -> ModuleEnv {
    ModuleEnv {
        steps,
        ..ModuleEnv::for_tests(PluginKind::Analysis)
    }
}

fn run(code: &str) {
    let lua = Lua::new();
    let lpeg = super::open(&lua, &env(Rc::new(Unlimited)))
        .unwrap()
        .unwrap();
    lua.globals().set("lpeg", lpeg).unwrap();
    if let Err(e) = lua.load(code).exec() {
        panic!("{e}");
    }
}

#[test]
fn basic_patterns_match_as_the_manual_says() {
    run(r#"
        local P, S, R, match = lpeg.P, lpeg.S, lpeg.R, lpeg.match
        assert(match(P"hello", "hello world") == 6)
        assert(match(P"hello", "hell") == nil)
        assert(match(P(3), "abcd") == 4 and match(P(5), "abcd") == nil)
        assert(match(P(-3), "ab") == 1 and match(P(-3), "abc") == nil)
        assert(match(P(true), "") == 1 and match(P(false), "x") == nil)
        assert(match(S"abc"^1, "cabx") == 4)
        assert(match(R("az", "09")^0, "ab12C") == 5)
        assert(match(P"a" * P"b", "ab") == 3 and match(P"a" + P"b", "b") == 2)
        assert(match(P"a"^2, "aaa") == 4 and match(P"a"^2, "a") == nil)
        assert(match(P"a"^-2, "aaa") == 3 and match(P"a"^-2, "b") == 1)
        assert(match(#P"a" * P(1), "ab") == 2 and match(#P"a", "b") == nil)
        assert(match(-P"a" * P(1), "b") == 2 and match(-P"a", "a") == nil)
        assert(match(R"az" - P"q", "q") == nil and match(R"az" - P"q", "r") == 2)
        assert(match(P"b", "ab", 2) == 3 and match(P"b", "ab", -1) == 3)
        assert(match(lpeg.B"a" * P"b", "ab", 2) == 3 and match(lpeg.B"x" * P"b", "ab", 2) == nil)
        assert(P"x":match("x") == 2, "method call")
        assert(lpeg.type(P"x") == "pattern" and lpeg.type("x") == nil)
        local l = lpeg.locale()
        assert(match(l.digit^1, "123a") == 4 and match(l.space^1, " \t\n") == 4)
        assert(match(l.alpha * l.alnum^0, "x1y2-") == 5)
    "#);
}

#[test]
fn captures_give_lpegs_values() {
    run(r##"
        local P, C, Cc, Cp, Ct, Cg, Cb, Cs, Cf, Cmt, Carg = lpeg.P, lpeg.C, lpeg.Cc, lpeg.Cp,
            lpeg.Ct, lpeg.Cg, lpeg.Cb, lpeg.Cs, lpeg.Cf, lpeg.Cmt, lpeg.Carg
        local match = lpeg.match
        local digit = lpeg.R"09"
        assert(match(C(digit^1), "123x") == "123")
        local a, b = match(C(P"a") * C(P"b"), "ab")
        assert(a == "a" and b == "b")
        local x, y = match(Cc(1, 2), "")
        assert(x == 1 and y == 2)
        assert(match(P"ab" * Cp(), "abc") == 3)
        local t = match(Ct(C(digit) * "," * C(digit)), "1,2")
        assert(t[1] == "1" and t[2] == "2")
        local t = match(Ct(Cg(C(digit), "first") * C(digit)), "12")
        assert(t.first == "1" and t[1] == "2" and t[2] == nil)
        assert(match(Cs((P"a" / "b" + 1)^0), "banana") == "bbnbnb")
        assert(match(C(digit^1) / tonumber, "42") == 42)
        assert(match(digit^1 / "<%0>", "42") == "<42>")
        assert(match((C(digit) * C(digit)) / "%2%1", "12") == "21")
        assert(match((C(digit) * C(digit)) / 2, "12") == "2")
        assert(match(C(digit) / {["1"] = "one"}, "1") == "one")
        local sum = Cf(C(digit) * ("+" * C(digit))^0, function(a, b) return a + b end)
        assert(match(sum, "1+2+3") == 6)
        local same = Cg(C(P"a"^1), "n") * "-" * Cmt(C(P"a"^1) * Cb"n", function(s, i, x, y) return x == y end)
        assert(match(same, "aa-aa") == 6 and match(same, "aa-a") == nil)
        assert(match(Cmt(P"x", function(s, i) return i + 1 end), "xyz") == 3)
        assert(match(Cmt(P"x", function(s, i) return true, "v" end), "x") == "v")
        assert(match(Carg(1), "", 1, "extra") == "extra")
        assert(match(Cg(C"a" * C"b") / function(...) return select("#", ...) end, "ab") == 2)
    "##);
}

#[test]
fn grammars_and_their_checks() {
    run(r#"
        local P, V, C, S = lpeg.P, lpeg.V, lpeg.C, lpeg.S
        -- Balanced parentheses.
        local balanced = P{ "(" * ((1 - S"()") + V(1))^0 * ")" }
        assert(lpeg.match(balanced, "(a(b)c)d") == 8)
        assert(lpeg.match(balanced, "(a(b c)") == nil)
        -- A named start rule and arithmetic.
        local expr = P{
            "Exp",
            Exp = V"Term" * (S"+-" * V"Term")^0,
            Term = V"Factor" * (S"*/" * V"Factor")^0,
            Factor = lpeg.R"09"^1 + "(" * V"Exp" * ")",
        }
        assert(lpeg.match(expr, "1+2*(3-4)") == 10)
        local ok, err = pcall(P, {"A", A = V"A" * "x"})
        assert(not ok and tostring(err):find("may be left recursive"), tostring(err))
        ok, err = pcall(P, {"A", A = V"B"})
        assert(not ok and tostring(err):find("rule 'B' undefined"), tostring(err))
        ok, err = pcall(function() return P(true)^0 end)
        assert(not ok and tostring(err):find("loop body may accept empty string"), tostring(err))
        ok, err = pcall(lpeg.B, P"a"^1)
        assert(not ok and tostring(err):find("fixed length"), tostring(err))
        -- Deep recursion is bounded, not a crash.
        local nest = P{ "(" * V(1)^-1 * ")" }
        ok, err = pcall(lpeg.match, nest, string.rep("(", 5000) .. string.rep(")", 5000))
        assert(not ok and tostring(err):find("stack overflow"), tostring(err))
        assert(lpeg.match(nest, string.rep("(", 50) .. string.rep(")", 50)) == 101)
    "#);
}

/// A budget of `n` steps that records what was spent.
struct Budget(std::cell::Cell<u64>);

impl StepAccount for Budget {
    fn left(&self) -> u64 {
        self.0.get()
    }
    fn spend(&self, used: u64) {
        self.0.set(self.0.get() - used)
    }
    fn exhausted(&self, _: &Lua) -> mlua::Error {
        mlua::Error::runtime("instruction_limit exceeded")
    }
}

#[test]
fn matching_pays_from_the_instruction_budget() {
    let lua = Lua::new();
    let budget = Rc::new(Budget(std::cell::Cell::new(10_000)));
    let lpeg = super::open(&lua, &env(budget.clone())).unwrap().unwrap();
    lua.globals().set("lpeg", lpeg).unwrap();
    lua.load(r#"assert(lpeg.match(lpeg.P"a"^0, string.rep("a", 100)) == 101)"#)
        .exec()
        .unwrap();
    let spent = 10_000 - budget.0.get();
    assert!(spent > 100 && spent < 1000, "{spent}");
    let e = lua
        .load(r#"lpeg.match((lpeg.P"a" + 1)^0, string.rep("a", 100000))"#)
        .exec()
        .unwrap_err();
    assert!(e.to_string().contains("instruction_limit exceeded"), "{e}");
}
