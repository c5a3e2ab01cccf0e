-- Example detection: too many failed SSH logins from one address within a window.
-- Injects one "detection" message per address and window when the threshold is crossed.
local threshold = read_config("threshold") or 5
failures = {}   -- src_ip -> failures in the current window (global: kept by preserve_data)
alerted = {}    -- src_ip -> true once alerted in this window

function process_message()
    local ip = read_message("Fields[src_ip]")
    if not ip then return -1, "no src_ip" end
    local n = (failures[ip] or 0) + 1
    failures[ip] = n
    if n >= threshold and not alerted[ip] then
        alerted[ip] = true
        inject_message({
            Type = "detection",
            Severity = 2,
            Payload = string.format("%d failed SSH logins from %s (last user %s)",
                                    n, ip, read_message("Fields[user]") or "?"),
            Fields = {rule = "ssh_brute_force", src_ip = ip, failures = n},
        })
    end
    return 0
end

function timer_event(ns, shutdown)
    -- A new window every ticker_interval.
    failures = {}
    alerted = {}
end
