-- Example detection: a privileged command (sudo, su, or one on the cfg's list) run outside
-- business hours (docs/detections.md). Hours are the events' own time, shifted by the cfg's
-- `utc_offset_hours`; business hours are `business_hours` (start, end) on Monday to Friday.
require "blink.rule"
require "os"
require "string"

local offset = (read_config("utc_offset_hours") or 0) * 3600
local hours = read_config("business_hours") or {9, 18}
local privileged = {}
for _, c in ipairs(read_config("privileged_commands") or {"sudo", "su"}) do privileged[c] = true end

local function local_time(e)
    return os.date("!*t", math.floor(e.Timestamp / 1e9) + offset)
end

function rule(e)
    local command = e.Fields.command
    if not command or not privileged[command:match("^(%S+)") or ""] then return false end
    local t = local_time(e)
    local weekend = t.wday == 1 or t.wday == 7
    return weekend or t.hour < hours[1] or t.hour >= hours[2]
end

function dedup(e) return e.Fields.user .. "@" .. tostring(e.Hostname) end

function title(e)
    local t = local_time(e)
    return string.format("%s ran %q at %02d:%02d on %s", e.Fields.user, e.Fields.command,
                         t.hour, t.min, tostring(e.Hostname))
end

function severity(e)
    if e.Fields.user == "root" then return "high" end
end
