-- blink.rule: detections as code. An analysis plugin that requires this module defines
-- `rule(event)` (true when the event is a detection) and, optionally, `title`, `dedup`,
-- `severity`, `alert_context`, `description`, `runbook` and `destinations`, each taking the
-- event. This module supplies the plugin's `process_message` and `timer_event`: it calls them,
-- keeps the alerts' lifecycle (dedup, threshold, merge) in message time, and injects each alert
-- as a `blink.alert` message (docs/detections.md).
--
-- The cfg gives the rule's metadata and defaults: `rule_id` (default: the plugin's name),
-- `severity` ("info", "low", "medium", "high", "critical"; default "medium"), `dedup_period`
-- (seconds an alert keeps absorbing matches with its dedup key; default 3600), `threshold`
-- (matches within the period before anything fires; default 1), `merge_by_keys` (field names)
-- with `merge_window` (seconds), `tags`, `references`, `description`, `runbook`, and `mode`:
-- "live" (the default) or "shadow", where the alerts are `blink.shadow` messages that no
-- alert output takes, to trial a changed rule beside the live one (`blink shadow`).
--
-- Suppressions drop a match (it neither alerts nor counts) or downgrade its alert's severity:
-- the cfg's `suppress` list (`{field = "src_ip", equals = "10.0.0.5"}`, with `severity = "low"`
-- to downgrade instead of drop), the plugin's own `suppress(event)` (true drops, a severity
-- name downgrades), and the global list a deployment may keep in `blink/suppressions.lua` on the
-- Lua path (the same entries, each with `rule = "<rule_id>"` or `rule = "*"`).
--
-- Enrichment: the cfg's `enrich` list, `{field = "src_ip", table = "lookups/owners.csv",
-- match = "cidr" (or "exact"), as = "owner"}`, adds the matching entry of a lookup table (the
-- `lookup` module) to the alert's context under `as`.
--
-- Time is the events' own (their Timestamp); windows close at the first timer_event past their
-- end, so `ticker_interval` bounds how late an update or merged alert is sent.

require "cjson"
require "math"
require "string"
require "table"

local M = {}

local SEVERITIES = {critical = 2, high = 3, medium = 4, low = 5, info = 6}

local function config(name, default)
    local v = read_config(name)
    if v == nil then return default end
    return v
end

local logger = read_config("Logger") or "analysis.rule"
local settings = {
    id            = config("rule_id", (logger:gsub("^analysis%.", ""))),
    severity      = config("severity", "medium"),
    dedup_period  = config("dedup_period", 3600),
    threshold     = config("threshold", 1),
    merge_by_keys = config("merge_by_keys", nil),
    merge_window  = config("merge_window", nil),
    tags          = config("tags", nil),
    references    = config("references", nil),
    description   = config("description", nil),
    runbook       = config("runbook", nil),
    mode          = config("mode", "live"),
    max_open      = config("max_open", 100000),
    suppress      = config("suppress", {}),
    enrich        = config("enrich", {}),
}
assert(settings.mode == "live" or settings.mode == "shadow", 'mode must be "live" or "shadow"')
local alert_type = settings.mode == "shadow" and "blink.shadow" or "blink.alert"

-- The suppressions that apply to this rule: its cfg's, then the deployment's global ones.
local suppressions = {}
local function add_suppression(s, where)
    assert(type(s) == "table" and type(s.field) == "string" and s.equals ~= nil,
           where .. ": a suppression is {field = NAME, equals = VALUE [, severity = NAME]}")
    assert(s.severity == nil or SEVERITIES[s.severity],
           where .. ": severity must be info, low, medium, high or critical")
    suppressions[#suppressions + 1] = s
end
assert(type(settings.suppress) == "table", "suppress must be a list of suppressions")
for _, s in ipairs(settings.suppress) do add_suppression(s, "suppress") end
local found, global = pcall(require, "blink.suppressions")
if found and type(global) == "table" then
    for _, s in ipairs(global) do
        if s.rule == "*" or s.rule == settings.id then
            add_suppression(s, "blink/suppressions.lua")
        end
    end
end

-- The enrichment tables, opened once (they follow their files).
local enrichments = {}
assert(type(settings.enrich) == "table", "enrich must be a list of enrichments")
for i, e in ipairs(settings.enrich) do
    assert(type(e) == "table" and type(e.field) == "string" and type(e.table) == "string"
           and type(e.as) == "string" and (e.match == nil or e.match == "exact" or e.match == "cidr"),
           string.format("enrich[%d]: {field = NAME, table = PATH, as = NAME [, match = \"exact\"|\"cidr\"]}", i))
    local lookup = require "lookup"
    enrichments[i] = {field = e.field, as = e.as, cidr = e.match == "cidr", table = lookup.open(e.table)}
end

local function count(name)
    if add_count then add_count(name) end
end
assert(SEVERITIES[settings.severity], "severity must be info, low, medium, high or critical")
assert(type(settings.dedup_period) == "number" and settings.dedup_period > 0,
       "dedup_period must be a number of seconds > 0")
assert(type(settings.threshold) == "number" and settings.threshold >= 1,
       "threshold must be a number >= 1")
if settings.merge_by_keys then
    assert(type(settings.merge_by_keys) == "table" and #settings.merge_by_keys > 0,
           "merge_by_keys must be a list of field names")
    assert(type(settings.merge_window) == "number" and settings.merge_window > 0,
           "merge_window must be a number of seconds > 0 when merge_by_keys is set")
end
assert((read_config("process_message_inject_limit") or 0) >= 1,
       "blink.rule alerts as events arrive: set process_message_inject_limit = 1 in the cfg")
assert(read_config("checkpoint_data") == true,
       "blink.rule keeps its windows with its checkpoint: set checkpoint_data = true in the cfg")
assert(type(settings.max_open) == "number" and settings.max_open >= 1,
       "max_open must be a number >= 1")
M.settings = settings

-- The event: headers and Fields read on demand; `event.json` is the Payload decoded as JSON.
-- The `Fields[name]` strings, made once per name (not once per event).
local field_keys = setmetatable({}, {__index = function(t, name)
    local key = "Fields[" .. name .. "]"
    t[name] = key
    return key
end})
local fields = setmetatable({}, {__index = function(_, name)
    return read_message(field_keys[name])
end})
local payload_json
local event = setmetatable({}, {__index = function(_, key)
    if key == "Fields" then return fields end
    if key == "json" then
        if payload_json == nil then
            local ok, doc = pcall(cjson.decode, read_message("Payload") or "")
            payload_json = ok and doc or false
        end
        return payload_json or nil
    end
    return read_message(key)
end})
M.event = event

-- The triggering event as a JSON object: its headers and fields.
local function event_json()
    local ok, msg = pcall(decode_message, read_message("raw"))
    if not ok then return "{}" end
    local out = {Type = msg.Type, Logger = msg.Logger, Hostname = msg.Hostname,
                 Timestamp = msg.Timestamp, Severity = msg.Severity, Payload = msg.Payload,
                 Fields = {}}
    for _, f in ipairs(msg.Fields or {}) do
        local v = f.value
        if type(v) == "table" and #v == 1 then v = v[1] end
        out.Fields[f.name] = v
    end
    return cjson.encode(out)
end

-- Calls an optional function of the plugin; an error is recorded, not raised.
local function optional(name, errors)
    local f = _G[name]
    if type(f) ~= "function" then return nil end
    local ok, v = pcall(f, event)
    if ok then return v end
    errors[#errors + 1] = name .. ": " .. tostring(v)
    return nil
end

local function list_text(v)
    if type(v) == "table" then return table.concat(v, ",") end
    if v == nil then return nil end
    return tostring(v)
end

-- Open alerts by dedup key, merge groups by their key, and how many of each are open: globals,
-- which checkpoint_data saves with the plugin's checkpoint (and restores after this file ran,
-- so they are always read through _G, never kept in locals).
_blink_rule_alerts = _blink_rule_alerts or {}
_blink_rule_groups = _blink_rule_groups or {}
_blink_rule_open = _blink_rule_open or {alerts = 0, groups = 0}

local function inject_alert(a, status)
    if status ~= "updated" then count("alerts") end
    local severity = a.severity
    if not SEVERITIES[severity] then severity = settings.severity end
    inject_message({
        Type     = alert_type,
        Severity = SEVERITIES[severity],
        Payload  = a.title,
        Fields   = {
            alert_id     = a.id,
            status       = status,
            rule_id      = settings.id,
            title        = a.title,
            severity     = severity,
            dedup        = a.key,
            count        = a.count,
            first_seen   = a.first_ns,
            last_seen    = a.last_ns,
            context      = a.context,
            destinations = a.destinations,
            event        = a.event,
            merged_by    = a.merged_by,
            common       = a.common,
            errors       = a.errors,
            tags         = list_text(settings.tags),
            references   = list_text(settings.references),
            description  = a.description,
            runbook      = a.runbook,
        },
    })
end

-- What the optional functions say about the current event, for an alert raised by it.
local function describe(a, errors)
    a.title = tostring(optional("title", errors) or settings.id)
    a.severity = optional("severity", errors) or settings.severity
    local context = optional("alert_context", errors)
    for _, e in ipairs(enrichments) do
        local v = fields[e.field]
        local entry
        if v ~= nil and e.cidr then entry = e.table:cidr(tostring(v)) elseif v ~= nil then entry = e.table:get(v) end
        if entry ~= nil then
            if type(context) ~= "table" then context = {} end
            context[e.as] = entry
        end
    end
    if context ~= nil then
        local ok, text = pcall(cjson.encode, context)
        if ok then a.context = text else errors[#errors + 1] = "alert_context: " .. tostring(text) end
    end
    a.destinations = list_text(optional("destinations", errors))
    a.description = optional("description", errors) or settings.description
    a.runbook = optional("runbook", errors) or settings.runbook
    a.event = event_json()
    if #errors > 0 then a.errors = table.concat(errors, "; ") end
end

local function alert_id(key, first_ns)
    return string.format("%s/%s/%d", settings.id, key, math.floor(first_ns / 1e9))
end

-- Open windows are bounded (`max_open`): keys come from events, so a flood of distinct ones
-- (an attacker's spoofed addresses) must not grow the plugin until it runs out of memory. At the
-- bound the window of some other key ends early (an alert that fired keeps the count it was
-- sent with; a merge group sends its merged alert now); `evicted` counts them.

local function on_dedup(ns, errors, downgrade)
    local dedup = optional("dedup", errors)
    local key = tostring(dedup == nil and (optional("title", errors) or settings.id) or dedup)
    local a = _blink_rule_alerts[key]
    if a and ns >= a.first_ns + settings.dedup_period * 1e9 then
        M.close(a)
        a = nil
    end
    if not a then
        local open = _blink_rule_open
        if open.alerts >= settings.max_open then
            -- Not M.close: this call may inject only the new alert.
            local victim = next(_blink_rule_alerts)
            _blink_rule_alerts[victim] = nil
            open.alerts = open.alerts - 1
            count("evicted")
        end
        a = {key = key, first_ns = ns, last_ns = ns, count = 0, fired_count = 0}
        _blink_rule_alerts[key] = a
        open.alerts = open.alerts + 1
    end
    a.count = a.count + 1
    if ns > a.last_ns then a.last_ns = ns end
    if a.fired_count == 0 and a.count >= settings.threshold then
        a.id = alert_id(key, a.first_ns)
        describe(a, errors)
        if downgrade then a.severity = downgrade end
        a.fired_count = a.count
        inject_alert(a, "new")
    end
end

local function on_merge(ns, errors, downgrade)
    local values, parts = {}, {}
    for i, name in ipairs(settings.merge_by_keys) do
        local v = fields[name]
        values[name] = v
        parts[i] = tostring(v)
    end
    local key = table.concat(parts, "|")
    local g = _blink_rule_groups[key]
    if not g then
        local common = {}
        local ok, msg = pcall(decode_message, read_message("raw"))
        for _, f in ipairs(ok and msg.Fields or {}) do
            if type(f.value) == "table" and #f.value == 1 then common[f.name] = f.value[1] end
        end
        if _blink_rule_open.groups >= settings.max_open then
            local _, victim = next(_blink_rule_groups)
            M.close_group(victim)
            count("evicted")
        end
        g = {key = key, first_ns = ns, last_ns = ns, count = 0, values = values, common = common}
        _blink_rule_groups[key] = g
        _blink_rule_open.groups = _blink_rule_open.groups + 1
        describe(g, errors)
        if downgrade then g.severity = downgrade end
    else
        for name, v in pairs(g.common) do
            if fields[name] ~= v then g.common[name] = nil end
        end
        if #errors > 0 then
            g.errors = (g.errors and g.errors .. "; " or "") .. table.concat(errors, "; ")
        end
    end
    g.count = g.count + 1
    if ns > g.last_ns then g.last_ns = ns end
end

function M.close(a)
    if a.fired_count > 0 and a.count > a.fired_count then
        inject_alert(a, "updated")
    end
    _blink_rule_alerts[a.key] = nil
    _blink_rule_open.alerts = _blink_rule_open.alerts - 1
end

function M.close_group(g)
    g.id = alert_id(g.key, g.first_ns)
    g.merged_by = cjson.encode(g.values)
    g.common = cjson.encode(g.common)
    inject_alert(g, "merged")
    _blink_rule_groups[g.key] = nil
    _blink_rule_open.groups = _blink_rule_open.groups - 1
end

-- "drop", a severity to downgrade to, or nil.
local function suppression(errors)
    for _, s in ipairs(suppressions) do
        if fields[s.field] == s.equals then return s.severity or "drop" end
    end
    local verdict = optional("suppress", errors)
    if verdict == true then return "drop" end
    if SEVERITIES[verdict] then return verdict end
    return nil
end

function process_message()
    if type(rule) ~= "function" then return -1, "the plugin defines no rule(event)" end
    payload_json = nil
    local ok, hit = pcall(rule, event)
    if not ok then return -1, "rule: " .. tostring(hit) end
    if not hit then return 0 end
    local ns = read_message("Timestamp") or 0
    local errors = {}
    local verdict = suppression(errors)
    if verdict == "drop" then
        count("suppressed")
        return 0
    end
    if settings.merge_by_keys then
        on_merge(ns, errors, verdict)
    else
        on_dedup(ns, errors, verdict)
    end
    if #errors > 0 then count("alert_errors") end
    return 0
end

function timer_event(ns, shutdown)
    -- Windows that ended by now: a deduplicated alert sends its final count, a merge group its
    -- merged alert. At shutdown the open ones stay (checkpoint_data keeps them).
    for _, a in pairs(_blink_rule_alerts) do
        if ns >= a.first_ns + settings.dedup_period * 1e9 then M.close(a) end
    end
    if settings.merge_by_keys then
        for _, g in pairs(_blink_rule_groups) do
            if ns >= g.first_ns + settings.merge_window * 1e9 then M.close_group(g) end
        end
    end
end

return M
