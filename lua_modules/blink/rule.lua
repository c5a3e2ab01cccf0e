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
-- the cfg's `suppress` list (`{field = "src_ip", equals = "10.0.0.5"}`, or a message matcher
-- expression `{matcher = 'Fields[user] =~ "^svc_" && Hostname == "build1"'}`, with
-- `severity = "low"` to downgrade instead of drop), the plugin's own `suppress(event)` (true drops, a severity
-- name downgrades), and the global list a deployment may keep in `blink/suppressions.lua` on the
-- Lua path (the same entries, each with `rule = "<rule_id>"` or `rule = "*"`).
--
-- Enrichment: the cfg's `enrich` list, `{field = "src_ip", table = "lookups/owners.csv",
-- match = "cidr" (or "exact"), as = "owner"}`, adds the matching entry of a lookup table (the
-- `lookup` module) to the alert's context under `as`; with `match = "geoip"` the table is a
-- MaxMind DB file (GeoLite2-City and the like, the `maxminddb` module) and the entry is
-- {country, subdivision, city, latitude, longitude}, as much of it as the database has.
--
-- Time is the events' own (their Timestamp); windows close at the first timer_event past their
-- end, so `ticker_interval` bounds how late an update or merged alert is sent.

require "cjson"
require "math"
require "string"
require "table"

local M = {}

-- Locals, not globals, on the per-event path (a global is a table lookup each time).
local pcall, tostring, type, next, read_message = pcall, tostring, type, next, read_message

local SEVERITIES = {critical = 2, high = 3, medium = 4, low = 5, info = 6}

local function config(name, default)
    local v = read_config(name)
    if v == nil then return default end
    return v
end

local logger = read_config("Logger") or "analysis.rule"
-- Open windows by default: one per KiB of the plugin's memory_limit. A window takes about 200
-- bytes, 450 once its alert fired, and as much again waits for the collector; the rest is the
-- plugin's own. With no memory limit (0), 100,000.
local memory_limit = read_config("memory_limit") or 8388608
local default_max_open = memory_limit > 0 and math.max(1, math.floor(memory_limit / 1024)) or 100000
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
    max_open      = config("max_open", default_max_open),
    suppress      = config("suppress", {}),
    enrich        = config("enrich", {}),
}
assert(settings.mode == "live" or settings.mode == "shadow", 'mode must be "live" or "shadow"')
local alert_type = settings.mode == "shadow" and "blink.shadow" or "blink.alert"

-- The suppressions that apply to this rule: its cfg's, then the deployment's global ones.
local suppressions = {}
local function add_suppression(s, where)
    assert(type(s) == "table" and ((type(s.field) == "string" and s.equals ~= nil)
                                   or (type(s.matcher) == "string" and s.field == nil)),
           where .. ": a suppression is {field = NAME, equals = VALUE [, severity = NAME]}"
           .. " or {matcher = EXPRESSION [, severity = NAME]}")
    if s.matcher then
        -- A bad expression is an error now, naming it, not at the first event.
        local ok, err = pcall(message_matches, s.matcher)
        assert(ok, where .. ": " .. tostring(err))
    end
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
           and type(e.as) == "string"
           and (e.match == nil or e.match == "exact" or e.match == "cidr" or e.match == "geoip"),
           string.format("enrich[%d]: {field = NAME, table = PATH, as = NAME [, match = \"exact\"|\"cidr\"|\"geoip\"]}", i))
    if e.match == "geoip" then
        local maxminddb = require "maxminddb"
        enrichments[i] = {field = e.field, as = e.as, geoip = maxminddb.open(e.table)}
    else
        local lookup = require "lookup"
        enrichments[i] = {field = e.field, as = e.as, cidr = e.match == "cidr", table = lookup.open(e.table)}
    end
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
-- `Fields` is a plain member: the common `e.Fields.x` costs one metamethod, not two.
local event = setmetatable({Fields = fields}, {__index = function(_, key)
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

-- Open dedup windows by dedup key, merge groups by their key, and how many of each are open:
-- globals, which checkpoint_data saves with the plugin's checkpoint (and restores after this
-- file ran, so they are always read through _G, never kept in locals).
--
-- A dedup window is an array, the smallest a Lua table gets (a flood of keys is what it must
-- hold): first and last time, count; once its alert fired, the count it fired with, the alert's
-- title and severity, and its rarer parts (context, destinations, description, runbook, errors)
-- if it has any. The id is made again from the key and first time; the triggering event is not
-- kept: it went out with the `new` alert.
local W_FIRST, W_LAST, W_COUNT, W_FIRED, W_TITLE, W_SEVERITY, W_EXTRA = 1, 2, 3, 4, 5, 6, 7
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

-- An address's place in a MaxMind DB: what of it the database has, or nil.
local function geoip_entry(db, address)
    local found, record = pcall(db.lookup, db, address)
    if not found then return nil end
    local function get(...)
        local ok, v = pcall(record.get, record, ...)
        if ok then return v end
        return nil
    end
    local entry = {country = get("country", "iso_code"), subdivision = get("subdivisions", 0, "iso_code"),
                   city = get("city", "names", "en"), latitude = get("location", "latitude"),
                   longitude = get("location", "longitude")}
    if next(entry) == nil then return nil end
    return entry
end

-- What the optional functions say about the current event, for an alert raised by it.
local function describe(a, errors)
    a.title = tostring(optional("title", errors) or settings.id)
    a.severity = optional("severity", errors) or settings.severity
    local context = optional("alert_context", errors)
    for _, e in ipairs(enrichments) do
        local v = fields[e.field]
        local entry
        if v == nil then
            entry = nil
        elseif e.geoip then
            entry = geoip_entry(e.geoip, tostring(v))
        elseif e.cidr then
            entry = e.table:cidr(tostring(v))
        else
            entry = e.table:get(v)
        end
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

-- Per event the module calls the plugin's functions directly, with settings in locals: this is
-- the path every matching event takes (docs/benchmarks.md has its cost).
local dedup_period_ns = settings.dedup_period * 1e9
local threshold = settings.threshold

local function on_dedup(ns, errors, downgrade)
    local key
    local dedup_fn = dedup
    if dedup_fn then
        local ok, v = pcall(dedup_fn, event)
        if ok then key = v else errors[#errors + 1] = "dedup: " .. tostring(v) end
    end
    if key == nil then key = optional("title", errors) or settings.id end
    key = tostring(key)
    local w = _blink_rule_alerts[key]
    if w and ns >= w[W_FIRST] + dedup_period_ns then
        M.close(key, w)
        w = nil
    end
    if not w then
        local open = _blink_rule_open
        if open.alerts >= settings.max_open then
            -- Not M.close: this call may inject only the new alert.
            local victim = next(_blink_rule_alerts)
            _blink_rule_alerts[victim] = nil
            open.alerts = open.alerts - 1
            count("evicted")
        end
        w = {ns, ns, 0}
        _blink_rule_alerts[key] = w
        open.alerts = open.alerts + 1
    end
    local n = w[W_COUNT] + 1
    w[W_COUNT] = n
    if ns > w[W_LAST] then w[W_LAST] = ns end
    if w[W_FIRED] == nil and n >= threshold then
        local a = {key = key, first_ns = w[W_FIRST], last_ns = w[W_LAST], count = n,
                   id = alert_id(key, w[W_FIRST])}
        describe(a, errors)
        if downgrade then a.severity = downgrade end
        inject_alert(a, "new")
        w[W_FIRED], w[W_TITLE], w[W_SEVERITY] = n, a.title, a.severity
        if a.context or a.destinations or a.description or a.runbook or a.errors then
            w[W_EXTRA] = {context = a.context, destinations = a.destinations,
                          description = a.description, runbook = a.runbook, errors = a.errors}
        end
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

-- Ends the dedup window of `key`: if matches came after its alert, the final count goes out.
function M.close(key, w)
    if w[W_FIRED] and w[W_COUNT] > w[W_FIRED] then
        local extra = w[W_EXTRA] or {}
        inject_alert({key = key, id = alert_id(key, w[W_FIRST]), title = w[W_TITLE], severity = w[W_SEVERITY],
                      first_ns = w[W_FIRST], last_ns = w[W_LAST], count = w[W_COUNT],
                      context = extra.context, destinations = extra.destinations,
                      description = extra.description, runbook = extra.runbook,
                      errors = extra.errors}, "updated")
    end
    _blink_rule_alerts[key] = nil
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

local has_suppressions = #suppressions > 0

-- "drop", a severity to downgrade to, or nil.
local function suppression(errors)
    for _, s in ipairs(suppressions) do
        local hit
        if s.matcher then hit = message_matches(s.matcher) else hit = fields[s.field] == s.equals end
        if hit then return s.severity or "drop" end
    end
    local verdict = optional("suppress", errors)
    if verdict == true then return "drop" end
    if SEVERITIES[verdict] then return verdict end
    return nil
end

-- The errors of the current event's optional functions: one table, emptied only when used.
local no_errors = {}

-- Saved state is restored after this file ran, so it is looked at on the first call: windows
-- saved by the first blink.rule (tables with named fields, before 2026-12-01's arrays) are
-- converted, and the open counts are taken from what was restored.
local state_checked = false
local function check_state()
    state_checked = true
    local open = {alerts = 0, groups = 0}
    for key, a in pairs(_blink_rule_alerts) do
        if type(a) == "table" and a.first_ns then
            local w = {a.first_ns, a.last_ns, a.count}
            if (a.fired_count or 0) > 0 then
                w[W_FIRED], w[W_TITLE], w[W_SEVERITY] = a.fired_count, a.title, a.severity
                if a.context or a.destinations or a.description or a.runbook or a.errors then
                    w[W_EXTRA] = {context = a.context, destinations = a.destinations,
                                  description = a.description, runbook = a.runbook, errors = a.errors}
                end
            end
            _blink_rule_alerts[key] = w
        end
        open.alerts = open.alerts + 1
    end
    for _ in pairs(_blink_rule_groups) do open.groups = open.groups + 1 end
    _blink_rule_open = open
end

function process_message()
    if not state_checked then check_state() end
    payload_json = nil
    local ok, hit = pcall(rule, event)
    if not ok then
        if type(rule) ~= "function" then return -1, "the plugin defines no rule(event)" end
        return -1, "rule: " .. tostring(hit)
    end
    if not hit then return 0 end
    local ns = read_message("Timestamp") or 0
    local errors = no_errors
    if errors[1] ~= nil then
        errors = {}
        no_errors = errors
    end
    local verdict
    if has_suppressions or suppress then
        verdict = suppression(errors)
        if verdict == "drop" then
            count("suppressed")
            return 0
        end
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
    if not state_checked then check_state() end
    -- Windows that ended by now: a deduplicated alert sends its final count, a merge group its
    -- merged alert. At shutdown the open ones stay (checkpoint_data keeps them).
    for key, w in pairs(_blink_rule_alerts) do
        if ns >= w[W_FIRST] + dedup_period_ns then M.close(key, w) end
    end
    if settings.merge_by_keys then
        for _, g in pairs(_blink_rule_groups) do
            if ns >= g.first_ns + settings.merge_window * 1e9 then M.close_group(g) end
        end
    end
end

return M
