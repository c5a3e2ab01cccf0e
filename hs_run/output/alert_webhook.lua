-- Alerts to an HTTP endpoint: a Slack incoming webhook (one Block Kit message per alert) or any
-- webhook taking JSON (the alert as one object, optionally signed with HMAC-SHA256). Ships off:
-- slack_alerts.cfg.off and webhook_alerts.cfg.off beside it are its templates (docs/detections.md).
--
-- Delivery: a 2xx delivers. 429 waits as long as Retry-After says and 5xx, or no answer at all,
-- back off (1 s doubling to 60 s); the alert is retried (the checkpoint does not move past it,
-- so an endpoint that is down delays alerts and loses none). Any other answer (a 4xx, a
-- redirect) fails the alert: it goes to the dead-letter topic (`dlq_topic`, default
-- blink.dlq) with the reason, and is counted as failed. Delivered alert ids are kept in a file,
-- so after a restart (even kill -9) an alert replayed from before the checkpoint is not sent
-- twice.
require "cjson"
require "io"
require "os"
require "string"
require "table"
local http = require "http"
require "kafka"

local url = read_config("url") or error("url is required")
local format = read_config("format") or "json"
assert(format == "json" or format == "slack", 'format must be "json" or "slack"')
local headers = read_config("headers") or {}
local hmac_key = read_config("hmac_key")
local signature_header = read_config("signature_header") or "X-Blink-Signature"
local timeout = read_config("timeout") or 10
local dlq_topic = read_config("dlq_topic") or "blink.dlq"
local delivered_path = read_config("delivered_file")
    or string.format("%s/%s.delivered", read_config("output_path") or ".", read_config("Logger"))
local KEEP = 10000 -- delivered ids remembered

local producer = kafka.producer()

-- The delivered ids: the file's last KEEP lines.
local delivered, order = {}, {}
do
    local fh = io.open(delivered_path)
    if fh then
        for line in fh:lines() do
            if not delivered[line] then
                delivered[line] = true
                order[#order + 1] = line
            end
        end
        fh:close()
    end
    if #order > KEEP then
        local keep = {}
        for i = #order - KEEP + 1, #order do keep[#keep + 1] = order[i] end
        for _, id in ipairs(order) do delivered[id] = nil end
        for _, id in ipairs(keep) do delivered[id] = true end
        order = keep
        local out = assert(io.open(delivered_path, "w"))
        out:write(table.concat(order, "\n"), "\n")
        out:close()
    end
end
local journal = assert(io.open(delivered_path, "a"))

local function remember(id)
    delivered[id] = true
    order[#order + 1] = id
    journal:write(id, "\n")
    journal:flush()
end

local retry_at, backoff = 0, 0

local function field(name) return read_message("Fields[" .. name .. "]") end

-- An alert naming its destinations goes only to the outputs it names.
local me = (read_config("Logger") or ""):gsub("^output%.", "")
local function for_me()
    local destinations = field("destinations")
    if not destinations then return true end
    for name in string.gmatch(destinations, "[^,]+") do
        if name == me then return true end
    end
    return false
end

local function alert_object()
    local a = {Payload = read_message("Payload"), Severity = read_message("Severity")}
    for _, name in ipairs({"alert_id", "status", "rule_id", "title", "severity", "dedup", "count",
                           "first_seen", "last_seen", "destinations", "errors", "tags",
                           "references", "description", "runbook"}) do
        a[name] = field(name)
    end
    for _, name in ipairs({"context", "event", "merged_by", "common"}) do
        local text = field(name)
        if text then
            local ok, v = pcall(cjson.decode, text)
            a[name] = ok and v or text
        end
    end
    return a
end

local function slack_message(a)
    local facts = {}
    for _, f in ipairs({{"Severity", a.severity}, {"Count", a.count}, {"Rule", a.rule_id},
                        {"Status", a.status}}) do
        if f[2] ~= nil then
            facts[#facts + 1] = {type = "mrkdwn", text = string.format("*%s*\n%s", f[1], tostring(f[2]))}
        end
    end
    local blocks = {
        {type = "header", text = {type = "plain_text", text = tostring(a.title or a.Payload or "alert")}},
        {type = "section", fields = facts},
    }
    if a.runbook then
        blocks[#blocks + 1] = {type = "section", text = {type = "mrkdwn", text = "Runbook: " .. a.runbook}}
    end
    blocks[#blocks + 1] = {type = "context", elements = {{type = "mrkdwn", text = "alert " .. tostring(a.alert_id)}}}
    return {text = tostring(a.title or a.Payload or "alert"), blocks = blocks}
end

local function dead_letter(a, reason)
    local record = cjson.encode({reason = reason, url = url, alert = a})
    local ok, err = pcall(producer.send, producer, dlq_topic, record)
    if not ok then return -1, reason .. "; and the dead-letter topic refused it: " .. tostring(err) end
    return -1, reason
end

function process_message()
    local id = (field("alert_id") or read_message("Uuid")) .. "/" .. (field("status") or "")
    if delivered[id] or not for_me() then return 0 end
    if os.time() < retry_at then return -3 end
    local a = alert_object()
    local body = cjson.encode(format == "slack" and slack_message(a) or a)
    -- The same alert always has the same id: a receiver can drop one it has seen (a delivery
    -- cut off by a crash after the endpoint took it is sent again).
    local request_headers = {["Content-Type"] = "application/json", ["X-Blink-Alert-Id"] = id}
    for k, v in pairs(headers) do request_headers[k] = v end
    if hmac_key then request_headers[signature_header] = "sha256=" .. http.hmac_sha256_hex(hmac_key, body) end
    local status, answer, answer_headers = http.request{method = "POST", url = url,
        headers = request_headers, body = body, timeout = timeout}
    if status and status >= 200 and status < 300 then
        remember(id)
        backoff = 0
        return 0
    end
    if status == 429 then
        local wait = tonumber(answer_headers["retry-after"] or "") or 1
        retry_at = os.time() + math.min(math.max(wait, 1), 300)
        return -3
    end
    if status == nil or status >= 500 then
        backoff = math.min(backoff == 0 and 1 or backoff * 2, 60)
        retry_at = os.time() + backoff
        return -3
    end
    return dead_letter(a, string.format("HTTP %d: %s", status, tostring(answer):sub(1, 512)))
end

function timer_event(ns, shutdown)
    if shutdown then journal:close() end
end
