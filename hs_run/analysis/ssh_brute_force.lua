-- Example detection: repeated failed SSH logins from one address, written with blink.rule
-- (docs/detections.md). Five failures from an address within ten minutes raise one alert; more
-- failures in those ten minutes only count, and the final count follows when they end.
-- ssh_brute_force.test.toml beside it holds its cases: `blink test` runs them.
require "blink.rule"
require "string"

function rule(e)
    return e.Fields.outcome == "failure"
end

function dedup(e)
    return e.Fields.src_ip
end

function title(e)
    return string.format("failed SSH logins from %s", e.Fields.src_ip)
end

function alert_context(e)
    return {last_user = e.Fields.user, program = e.Fields.program}
end
