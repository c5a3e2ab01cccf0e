-- Example output: detections to a Kafka topic of Blink's own, one JSON object per record, so
-- any Kafka client can follow them: kcat -b 127.0.0.1:9092 -C -t detections
--
-- Each record is {"time", "Timestamp" (ns), "Type", "Logger", "Severity", "Payload",
-- "Hostname", "Uuid", "Fields": {name: value}} (a field with several values maps to an array;
-- BYTES fields are left out). Records Blink's outputs produce are never read back by the Kafka
-- bridge, so forwarding detections cannot loop.
require "kafka"
require "cjson"
require "os"
require "string"

local topic = read_config("topic") or "detections"
local producer = kafka.producer()

local function uuid_text(raw)
    if type(raw) ~= "string" or #raw ~= 16 then return raw end
    local hex = raw:gsub(".", function(c) return string.format("%02x", c:byte()) end)
    return string.format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16),
                         hex:sub(17, 20), hex:sub(21, 32))
end

function process_message()
    local m = decode_message(read_message("raw"))
    local fields = {}
    for _, f in ipairs(m.Fields or {}) do
        if f.value_type ~= 1 then
            fields[f.name] = #f.value == 1 and f.value[1] or f.value
        end
    end
    local doc = {
        time      = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(m.Timestamp / 1e9)),
        Timestamp = m.Timestamp,
        Type      = m.Type,
        Logger    = m.Logger,
        Severity  = m.Severity,
        Payload   = m.Payload,
        Hostname  = m.Hostname,
        Uuid      = uuid_text(m.Uuid),
        Fields    = fields,
    }
    local ok, err = pcall(producer.send, producer, topic, cjson.encode(doc))
    if not ok then return -3, err end   -- the log refused it (full disk): retry
    return 0
end
