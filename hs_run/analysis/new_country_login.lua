-- Example detection: a user logs in from a country they have not logged in from before
-- (docs/detections.md). The country comes from the lookup table lookups/ip_countries.csv
-- (IP networks → country; replace it with your own, or a GeoIP export); the countries each user
-- has been seen in are kept in `seen`, which checkpoint_data saves with the checkpoint.
require "blink.rule"
local lookup = require "lookup"

local countries = lookup.open(read_config("countries") or "lookups/ip_countries.csv")
seen = seen or {} -- user → {country = true}

local function country_of(e)
    local entry = countries:cidr(tostring(e.Fields.src_ip))
    return entry and entry.country
end

function rule(e)
    local user, country = e.Fields.user, country_of(e)
    if not user or not country or country == "internal" then return false end
    local known = seen[user]
    if not known then
        seen[user] = {[country] = true} -- the first login teaches, it does not alert
        return false
    end
    if known[country] then return false end
    known[country] = true
    return true
end

function dedup(e) return e.Fields.user .. "/" .. tostring(country_of(e)) end

function title(e)
    return string.format("%s logged in from a new country: %s", e.Fields.user, tostring(country_of(e)))
end

function alert_context(e)
    local countries_before = {}
    for c in pairs(seen[e.Fields.user] or {}) do
        if c ~= country_of(e) then countries_before[#countries_before + 1] = c end
    end
    table.sort(countries_before)
    return {src_ip = e.Fields.src_ip, before = table.concat(countries_before, ",")}
end
