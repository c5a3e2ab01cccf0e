-- Blink's `re`: LPeg's regex-like syntax (the `re` module of LPeg 1.0, as its manual describes
-- it), compiled to patterns of Blink's own `lpeg`. Written for Blink: the source text is
-- parsed (with lpeg) into a small syntax tree of plain tables, and the tree is then turned into
-- a pattern, so every error (an undefined name, a rule used outside a grammar, a rule defined
-- twice) is raised with the context at hand. The chunk receives the `lpeg` table.

local lpeg = ...
local P, S, R, V = lpeg.P, lpeg.S, lpeg.R, lpeg.V
local C, Cb, Cc, Cf, Cg, Cmt, Cp, Cs, Ct = lpeg.C, lpeg.Cb, lpeg.Cc, lpeg.Cf, lpeg.Cg,
    lpeg.Cmt, lpeg.Cp, lpeg.Cs, lpeg.Ct

local any = P(1)

-- The classes of the current locale by lpeg.locale's names (%alpha, %digit, ...) and by
-- Lua's letters (%a, %d, ...; %A, %D, ... their complements), and %nl.
local letters = { a = "alpha", c = "cntrl", d = "digit", g = "graph", l = "lower",
                  p = "punct", s = "space", u = "upper", w = "alnum", x = "xdigit" }
local predefined
local function define_classes()
    predefined = lpeg.locale()
    predefined.nl = P("\n")
    for letter, class in pairs(letters) do
        predefined[letter] = predefined[class]
        predefined[letter:upper()] = any - predefined[class]
    end
end
define_classes()

---------------------------------------------------------------------------------------------
-- The parser: source text to a syntax tree. A node is {kind, ...}.

local function node(kind)
    return function(...) return { kind, ... } end
end

local space = (S(" \t\n\r\f\v") + P("--") * (any - P("\n")) ^ 0) ^ 0
local name = C((R("AZ", "az") + P("_")) * (R("AZ", "az", "09") + P("_")) ^ 0)
local number = C(R("09") ^ 1) / tonumber
local arrow = P("<-")
local literal = P("'") * C((any - P("'")) ^ 0) * P("'")
              + P('"') * C((any - P('"')) ^ 0) * P('"')

-- Inside [...]: %name, a range a-z (whose end is not ']'), or any single character; a ']'
-- right after '[' or '[^' is a character of the set.
local class_item = P("%") * name / node("defined")
                 + C(any) * P("-") * C(any - P("]")) / node("range")
                 + C(any) / node("char")
local class = P("[") * (P("^") * Cc(true) + Cc(false))
            * Ct(class_item * (class_item - P("]")) ^ 0) * P("]")
            / function(negated, items) return { "class", items, negated } end

-- Postfix operators, each captured as {kind, argument}, folded onto their operand left to right.
local suffix_op = P("+") * Cc("plus") / node("op")
                + P("*") * Cc("star") / node("op")
                + P("?") * Cc("opt") / node("op")
                + P("^") * (P("+") * Cc("atleast") + P("-") * Cc("atmost") + Cc("exactly"))
                  * number / node("op")
                + P("->") * space * (literal * Cc("string")
                                    + P("{}") * Cc(true) * Cc("table")
                                    + number * Cc("number")
                                    + name * Cc("name")) / function(arg, how)
                    return { "op", "to_" .. how, arg }
                  end
                + P("=>") * space * name * Cc("cmt") / function(n, k) return { "op", k, n } end
                + P("~>") * space * name * Cc("fold") / function(n, k) return { "op", k, n } end

local function apply(operand, op)
    return { op[2], operand, op[3] }
end

local syntax = P({ "pattern",
    pattern = space * V("exp") * Cp(),
    exp = V("grammar") + V("alternative"),
    grammar = Ct(V("definition") ^ 1) / node("grammar"),
    definition = Ct(name * space * arrow * space * V("exp")),
    alternative = Ct(V("sequence") * (P("/") * space * V("sequence")) ^ 0) / node("choice"),
    sequence = Ct(V("prefix") ^ 0) / node("sequence"),
    prefix = P("&") * space * V("prefix") / node("and")
           + P("!") * space * V("prefix") / node("not")
           + V("suffix"),
    suffix = Cf(V("primary") * space * (suffix_op * space) ^ 0, apply),
    primary = P("(") * space * V("exp") * P(")")
            + literal / node("literal")
            + class
            + P("%") * name / node("defined")
            + P("{:") * (name * P(":") + Cc(false)) * space * V("exp") * P(":}")
              / function(group, e) return { "group", e, group } end
            + P("=") * name / node("backref")
            + P("{}") / node("position")
            + P("{~") * space * V("exp") * P("~}") / node("substitute")
            + P("{|") * space * V("exp") * P("|}") / node("table")
            + P("{") * space * V("exp") * P("}") / node("capture")
            + P(".") / node("any")
            + name * space * -arrow / node("rule")
            + P("<") * space * name * space * P(">") / node("rule"),
})

---------------------------------------------------------------------------------------------
-- The builder: a syntax tree to a pattern.

local function lookup(id, defs)
    local value = defs and defs[id]
    if value == nil then error("undefined name: " .. id, 0) end
    return value
end

local function defined(id, defs)
    local value = defs and defs[id]
    if value == nil then value = predefined[id] end
    if value == nil then error("undefined name: %" .. id, 0) end
    return P(value)
end

-- The text the group `c` captured, matched again here (=name).
local function same_text(subject, i, c)
    if type(c) ~= "string" then return false end
    local e = i + #c
    if subject:sub(i, e - 1) == c then return e end
    return false
end

-- p repeated exactly n times, by doubling (the pattern stays O(log n) deep).
local function exactly(p, n)
    local result = P(true)
    while n >= 1 do
        if n % 2 == 1 then result = result * p end
        p = p * p
        n = (n - n % 2) / 2
    end
    return result
end

local build

local builders = {
    literal = function(n) return P(n[2]) end,
    any = function() return any end,
    defined = function(n, defs) return defined(n[2], defs) end,
    class = function(n, defs)
        local set = P(false)
        for _, item in ipairs(n[2]) do
            local kind = item[1]
            if kind == "char" then
                set = set + P(item[2])
            elseif kind == "range" then
                set = set + R(item[2] .. item[3])
            else
                set = set + defined(item[2], defs)
            end
        end
        if n[3] then return any - set end
        return set
    end,
    rule = function(n, defs, in_grammar)
        if not in_grammar then
            error("rule '" .. n[2] .. "' used outside a grammar", 0)
        end
        return V(n[2])
    end,
    position = function() return Cp() end,
    backref = function(n) return Cmt(Cb(n[2]), same_text) end,
    capture = function(n, defs, g) return C(build(n[2], defs, g)) end,
    substitute = function(n, defs, g) return Cs(build(n[2], defs, g)) end,
    table = function(n, defs, g) return Ct(build(n[2], defs, g)) end,
    group = function(n, defs, g)
        local p = build(n[2], defs, g)
        if n[3] then return Cg(p, n[3]) end
        return Cg(p)
    end,
    ["and"] = function(n, defs, g) return #build(n[2], defs, g) end,
    ["not"] = function(n, defs, g) return -build(n[2], defs, g) end,
    plus = function(n, defs, g) return build(n[2], defs, g) ^ 1 end,
    star = function(n, defs, g) return build(n[2], defs, g) ^ 0 end,
    opt = function(n, defs, g) return build(n[2], defs, g) ^ -1 end,
    atleast = function(n, defs, g) return build(n[2], defs, g) ^ n[3] end,
    atmost = function(n, defs, g) return build(n[2], defs, g) ^ -n[3] end,
    exactly = function(n, defs, g) return exactly(build(n[2], defs, g), n[3]) end,
    to_string = function(n, defs, g) return build(n[2], defs, g) / n[3] end,
    to_number = function(n, defs, g) return build(n[2], defs, g) / n[3] end,
    to_name = function(n, defs, g) return build(n[2], defs, g) / lookup(n[3], defs) end,
    to_table = function(n, defs, g) return Ct(build(n[2], defs, g)) end,
    cmt = function(n, defs, g) return Cmt(build(n[2], defs, g), lookup(n[3], defs)) end,
    fold = function(n, defs, g) return Cf(build(n[2], defs, g), lookup(n[3], defs)) end,
    sequence = function(n, defs, g)
        local p = P(true)
        for i, item in ipairs(n[2]) do
            if i == 1 then p = build(item, defs, g) else p = p * build(item, defs, g) end
        end
        return p
    end,
    choice = function(n, defs, g)
        local p
        for i, item in ipairs(n[2]) do
            if i == 1 then p = build(item, defs, g) else p = p + build(item, defs, g) end
        end
        return p
    end,
    grammar = function(n, defs)
        local rules = {}
        for i, definition in ipairs(n[2]) do
            local id = definition[1]
            if rules[id] then error("'" .. id .. "' already defined as a rule", 0) end
            if i == 1 then rules[1] = id end
            rules[id] = build(definition[2], defs, true)
        end
        return P(rules)
    end,
}

build = function(n, defs, in_grammar)
    return builders[n[1]](n, defs, in_grammar)
end

---------------------------------------------------------------------------------------------
-- The API.

local compiled = setmetatable({}, { __mode = "v" })

local function compile(source, defs)
    if lpeg.type(source) == "pattern" then return source end
    if type(source) ~= "string" then
        error("bad argument #1 to 'compile' (string expected, got " .. type(source) .. ")", 2)
    end
    if defs == nil and compiled[source] then return compiled[source] end
    local tree, stop = syntax:match(source)
    if not tree or stop <= #source then
        local at = tree and stop or 1
        local near = source:sub(at, at + 19)
        if #source > at + 19 then near = near .. "..." end
        error("pattern error near '" .. near .. "'", 0)
    end
    local p = P(build(tree, defs, false))
    if defs == nil then compiled[source] = p end
    return p
end

local function match(subject, source, init)
    return compile(source):match(subject, init)
end

local searchers = setmetatable({}, { __mode = "k" })

-- Where `source` first matches in `subject` from `init`: start and end (inclusive); its
-- captures are discarded.
local function find(subject, source, init)
    local p = compile(source)
    local searcher = searchers[p]
    if not searcher then
        local found = Cp() * (p / 0) * Cp()
        searcher = (any - found) ^ 0 * found
        searchers[p] = searcher
    end
    init = init or 1
    if init < 0 then
        init = #subject + init + 1
        if init < 1 then init = 1 end
    elseif init == 0 then
        init = 1
    end
    if init > #subject + 1 then return nil end
    local i, e = searcher:match(subject, init)
    if i then return i, e - 1 end
    return nil
end

local function gsub(subject, source, replacement)
    local p = compile(source)
    return Cs((p / replacement + any) ^ 0):match(subject)
end

return {
    compile = compile,
    match = match,
    find = find,
    gsub = gsub,
    updatelocale = function()
        define_classes()
        compiled = setmetatable({}, { __mode = "v" })
    end,
}
