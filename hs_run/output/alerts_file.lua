-- Example output: alerts (blink.alert messages, docs/detections.md) appended to a file, one
-- JSON object per line. When the file reaches `max_bytes` it is renamed to PATH.1 (replacing
-- the previous one) and a new file is started.
require "io"
require "os"

local path = read_config("path") or "data/alerts.log"
local max_bytes = read_config("max_bytes") or 64 * 1024 * 1024
local file = assert(io.open(path, "a"))
local size = file:seek("end")

local function rotate()
    file:close()
    os.remove(path .. ".1")
    assert(os.rename(path, path .. ".1"))
    file = assert(io.open(path, "a"))
    size = 0
end

local function quote(s)
    s = tostring(s):gsub('[%c"\\]', function(c)
        if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
        return string.format("\\u%04x", c:byte())
    end)
    return '"' .. s .. '"'
end

function process_message()
    local line = string.format(
        '{"time":%s,"alert_id":%s,"status":%s,"rule":%s,"severity":%s,"count":%d,"title":%s}\n',
        quote(os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(read_message("Timestamp") / 1e9))),
        quote(read_message("Fields[alert_id]") or ""),
        quote(read_message("Fields[status]") or ""),
        quote(read_message("Fields[rule_id]") or "?"),
        quote(read_message("Fields[severity]") or ""),
        read_message("Fields[count]") or 1,
        quote(read_message("Payload") or ""))
    if size > 0 and size + #line > max_bytes then rotate() end
    local ok, err = file:write(line)
    if not ok then return -1, err end
    file:flush()
    size = size + #line
    return 0
end

function timer_event(ns, shutdown)
    if shutdown then file:close() end
end
