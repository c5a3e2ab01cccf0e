-- Example input: simulated SSH authentication events, a few per second, with one address
-- guessing passwords now and then. Replace it with a real source (a log tailer, the kafka
-- input) once you have one.
require "os"

local users = {"alice", "bob", "carol", "dave"}
local addresses = {"10.0.0.5", "10.0.0.17", "192.168.1.20", "172.16.4.2"}
local attacker = "203.0.113.66"
local per_tick = read_config("events_per_tick") or 5
local sequence = 0

math.randomseed(os.time())

local function event(user, address, outcome)
    sequence = sequence + 1
    inject_message({
        Type = "auth",
        Payload = string.format("%s password for %s from %s port 22 ssh2",
                                outcome == "success" and "Accepted" or "Failed", user, address),
        Fields = {user = user, src_ip = address, outcome = outcome, program = "sshd"},
    }, sequence)
end

function process_message(checkpoint)
    sequence = checkpoint or sequence
    for _ = 1, per_tick do
        local user = users[math.random(#users)]
        local address = addresses[math.random(#addresses)]
        event(user, address, math.random() < 0.9 and "success" or "failure")
    end
    if math.random() < 0.3 then
        for _ = 1, 3 do event("root", attacker, "failure") end
    end
    return 0
end
