//! `re`: LPeg's regex-like syntax (`re.compile`, `match`, `find`, `gsub`, `updatelocale`), as
//! LPeg 1.0's manual describes its `re` module. Like the original it is Lua over `lpeg`: Blink's
//! own Lua source (`re.lua`, compiled into the binary), run over Blink's `lpeg`, so its patterns
//! are ordinary lpeg patterns and its matching is paid from the plugin's instruction limit.

use mlua::{Function, Lua, Table};

const SOURCE: &str = include_str!("re.lua");

/// Opens the module: `lpeg` is required first (as the original's `require "lpeg"` does), so
/// the patterns `re` builds are the plugin's own lpeg patterns.
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let require: Function = lua.globals().raw_get("require")?;
    let lpeg: Table = require.call("lpeg")?;
    lua.load(SOURCE)
        .set_name("=[re]")
        .call::<Table>(lpeg)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use crate::plugin::PluginKind;
    use crate::sandbox::modules::ModuleEnv;

    fn run(code: &str) {
        let lua = Lua::new();
        let env = ModuleEnv::for_tests(PluginKind::Analysis);
        let lpeg = super::super::lpeg::open(&lua, &env).unwrap().unwrap();
        lua.globals().set("lpeg", lpeg.clone()).unwrap();
        let require = lua
            .create_function(move |_, name: String| {
                assert_eq!(name, "lpeg");
                Ok(lpeg.clone())
            })
            .unwrap();
        lua.globals().set("require", require).unwrap();
        let re = super::open(&lua, &env).unwrap().unwrap();
        lua.globals().set("re", re).unwrap();
        if let Err(e) = lua.load(code).exec() {
            panic!("{e}");
        }
    }

    #[test]
    fn the_manuals_constructions() {
        run(r#"
            local match = re.match
            assert(match("a", ".") == 2 and match("", "!.") == 1 and not match("a", "!."))
            assert(match("abc", "'ab' 'c'") == 4 and match("abc", '"abd" / "abc"') == 4)
            assert(match("0zz1dda", "'0' [^a-c]+ 'a'") == 8)
            assert(match("abbc--", " [-acb] + ") == 7, "a '-' first in a class is itself")
            assert(match("x]", "[]x]+") == 3, "a ']' first in a class is itself")
            assert(match("aaa", "'a'^2") == 3 and match("aaa", "'a'^+2") == 4 and match("aaa", "'a'^-1") == 2)
            assert(match("abceeef", "'ab' 'c' { 'e' * }") == "eee")
            assert(match("hi 42", "%a+ %s {%d+}") == "42" and match("x\n", ". %nl") == 3)
            assert(match("abc", "{| {.} {.} |}")[2] == "b")
            assert(match("abc", "{~ ('b' -> 'B' / .)* ~}") == "aBc")
            assert(match("abcdef", "( {.} {.} {.} ) -> 2") == "b")
            assert(match("ab", "({.} {.}) -> '%2%1'") == "ba")
            assert(match("abc", "{:x: . :} {:y: . :} =x") == nil and match("aba", "{:x: . :} . =x") == 4)
            assert(re.compile("{%d+} -> num", {num = tonumber}):match("12") == 12)
            assert(re.compile("({%d} (' ' {%d})*) ~> add", {add = function(a, b) return a + b end}):match("1 2 3") == 6)
            assert(re.compile("'a' => yes 'b'", {yes = function(s, i) return i end}):match("abc") == 3)
            local t = match("abc", "{| {:first: . :} .* |}")
            assert(t.first == "a" and #t == 0)
            assert(match("(a(b)c)", "b <- '(' ([^()] / b)* ')'") == 8)
            assert(re.compile("%letters (%letters / %digits)*", {letters = lpeg.R"az", digits = lpeg.R"09"}):match("x123") == 5)
            local rev = re.compile[[ R <- (!.) -> '' / ({.} R) -> '%2%1' ]]
            assert(rev:match"abc" == "cba")
            local p = re.compile("[a-z]+")
            assert(re.compile(p) == p and lpeg.P(p) == p, "a pattern is itself")
        "#);
    }

    #[test]
    fn find_and_gsub() {
        run(r#"
            assert(re.find("the number 423 is odd", "[0-9]+") == 12)
            local i, e = re.find("the number 423 is odd", "[0-9]+")
            assert(i == 12 and e == 14)
            local a, b, c = re.find("alo", "{.}{'o'}")
            assert(a == 2 and b == 3 and c == nil, "captures are discarded")
            assert(re.find("hi alalo", "{:x:..:} =x", 5) == nil)
            assert(re.find("abc", "'c'", -1) == 3 and re.find("abc", "'x'") == nil)
            assert(re.gsub("hello World", "[aeiou]", ".") == "h.ll. W.rld")
            assert(re.gsub("hi, how", "[aeiou]", string.upper) == "hI, hOw")
        "#);
    }

    #[test]
    fn a_back_reference_sees_only_outermost_complete_groups() {
        // LPeg's indentation example: a nested block's `ident` is inside that block's
        // table capture, so after it the outer `=ident` sees the outer one again.
        run(r#"
            local p = re.compile[[
              block <- {| {:ident:space*:} line
                       ((=ident !space line) / &(=ident space) block)* |}
              line <- {[^%nl]*} %nl
              space <- '_'
            ]]
            local t = p:match("1\n__1.1\n2\n")
            assert(t[1] == "1" and t[2][1] == "1.1" and t[2].ident == "__")
            assert(t[3] == "2" and t.ident == "", "the outer block goes on after the inner one")
        "#);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        run(r#"
            local function fails(source, text)
                local ok, e = pcall(re.compile, source)
                assert(not ok, source)
                assert(string.find(e, text, 1, true), e)
            end
            fails("aaaa", "rule 'aaaa' used outside a grammar")
            fails("b <- a", "undefined")
            fails("x <- 'a'  x <- 'b'", "'x' already defined as a rule")
            fails("'a' -", "pattern error near '-'")
            fails("%nosuchclass", "undefined name: %nosuchclass")
            fails("'a' -> missing", "undefined name: missing")
        "#);
    }
}
