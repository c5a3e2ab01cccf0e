-- Kafka bridge: what Kafka clients produce into Blink's topics becomes Heka messages on
-- blink.input, so analysis plugins can match them.
--
-- Every record becomes one message: Type = cfg `type`, Logger = the topic, Payload = the value,
-- Timestamp = the record's, and Fields kafka_partition, kafka_offset, kafka_key and one
-- header.<name> per record header. With decoder = "json", the members of a JSON object value
-- become Fields too (nested objects and arrays as JSON text).
--
-- A bad record is never dropped silently and never stops the bridge: a value that does not
-- decode, a batch whose records cannot be read, or a record too large to inject (over the
-- plugin's output_limit) is, with on_error = "inject" (the default), injected with a
-- decode_error field (a too-large record as a small message without its value, with
-- kafka_size), or with on_error = "skip" only counted. Both count in plugins.tsv's Notes
-- (bad_records, skipped_records).
-- The consumer's position is this plugin's checkpoint: a restart resumes at the next record.
require "kafka"
require "cjson"

local topics   = read_config("topics")             -- names or patterns ("auth-*"); nil: all
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

-- A bad record: counted, then injected small (its value left out) or only checkpointed.
local function bad_record(consumer, topic, partition, offset, timestamp, size, err)
    consumer:count("bad_records")
    if on_error == "skip" then
        consumer:count("skipped_records")
        inject_message(nil, consumer:checkpoint())
        return
    end
    inject_message({Type = msg_type, Logger = topic, Timestamp = timestamp * 1e6,
                    Fields = {kafka_partition = partition, kafka_offset = offset,
                              kafka_size = size, decode_error = err}},
                   consumer:checkpoint())
end

function process_message(checkpoint)
    local consumer = kafka.consumer(topics, checkpoint, {start = start})
    while is_running() do
        local value, topic, partition, key, offset, timestamp, headers, problem, size = consumer:receive()
        if value then
            local fields = {kafka_partition = partition, kafka_offset = offset, kafka_key = key}
            for name, v in pairs(headers) do
                if v then fields["header." .. name] = v end
            end
            -- problem: the record could not be read, or was too large to hand over.
            local err = problem
            if not err and decoder == "json" then err = json_fields(value, fields) end
            if err and (on_error == "skip" or value == "") then
                bad_record(consumer, topic, partition, offset, timestamp, size, err)
            else
                if err then
                    consumer:count("bad_records")
                    fields.decode_error = err
                end
                local ok, refused = pcall(inject_message,
                    {Type = msg_type, Logger = topic, Payload = value,
                     Timestamp = timestamp * 1e6, Fields = fields},
                    consumer:checkpoint())
                if not ok then
                    -- Too large as a message (output_limit, max_message_size): a bad record.
                    bad_record(consumer, topic, partition, offset, timestamp, size,
                               "not injected: " .. tostring(refused))
                end
            end
        end
    end
    return 0
end
