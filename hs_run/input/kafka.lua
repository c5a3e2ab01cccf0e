-- Kafka bridge: what Kafka clients produce into Blink's topics becomes Heka messages on
-- blink.input, so analysis plugins can match them.
--
-- Every record becomes one message: Type = cfg `type`, Logger = the topic, Payload = the value,
-- Timestamp = the record's, and Fields kafka_partition, kafka_offset, kafka_key and one
-- header.<name> per record header. With decoder = "json", the members of a JSON object value
-- become Fields too (nested objects and arrays as JSON text). A value that does not decode is
-- never dropped silently: on_error = "inject" (the default) injects it raw with a
-- decode_error field, on_error = "skip" counts it (skipped_records in the plugin's stats log).
-- A batch whose records cannot be read at all (a producer compressed garbage) is handled the
-- same way, as one message holding the batch's bytes.
-- The consumer's position is this plugin's checkpoint: a restart resumes at the next record.
require "kafka"
require "cjson"

local topics   = read_config("topics")             -- nil: every topic but blink.*
local decoder  = read_config("decoder") or "none"  -- "none" or "json"
local on_error = read_config("on_error") or "inject"
local msg_type = read_config("type") or "kafka"
local start    = read_config("start") or "beginning"

if decoder ~= "none" and decoder ~= "json" then
    error("decoder must be \"none\" or \"json\", not " .. tostring(decoder))
end
if on_error ~= "inject" and on_error ~= "skip" then
    error("on_error must be \"inject\" or \"skip\", not " .. tostring(on_error))
end

local skipped = 0

local function json_fields(value, fields)
    local ok, doc = pcall(cjson.decode, value)
    if not ok then return tostring(doc) end
    if type(doc) ~= "table" or doc[1] ~= nil then return "the value is not a JSON object" end
    for k, v in pairs(doc) do
        local t = type(v)
        if t == "string" or t == "number" or t == "boolean" then
            fields[k] = v
        elseif t == "table" then
            fields[k] = cjson.encode(v)
        end
    end
    return nil
end

function process_message(checkpoint)
    local consumer = kafka.consumer(topics, checkpoint, {start = start})
    while is_running() do
        local value, topic, partition, key, offset, timestamp, headers, unreadable = consumer:receive()
        if value then
            local fields = {kafka_partition = partition, kafka_offset = offset, kafka_key = key}
            for name, v in pairs(headers) do
                if v then fields["header." .. name] = v end
            end
            -- unreadable: a whole batch whose records could not be read, as stored.
            local err = unreadable
            if not err and decoder == "json" then err = json_fields(value, fields) end
            if err and on_error == "skip" then
                skipped = skipped + 1
                print("skipped_records", skipped, topic, partition, offset, err)
                inject_message(nil, consumer:checkpoint())
            else
                if err then fields.decode_error = err end
                inject_message({Type = msg_type, Logger = topic, Payload = value,
                                Timestamp = timestamp * 1e6, Fields = fields},
                               consumer:checkpoint())
            end
        end
    end
    return 0
end
