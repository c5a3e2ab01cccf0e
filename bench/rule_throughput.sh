#!/usr/bin/env bash
# Events per second through a blink.rule detection with dedup on one analysis thread, against
# a plugin that only counts (the cost of the rule layer alone): `blink run --batch` reads events
# already in blink.input with the analysis plugin alone. Prints figures; asserts nothing.
# Usage: [BLINK_BIN=path] bench/rule_throughput.sh [events] [runs]   (cargo build --release first)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
runs=${2:-3}
blink_bin="${BLINK_BIN:-$PWD/target/release/blink}"
[ -x "$blink_bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
repo=$PWD

# The events, written once into a deployment's blink.input by a generating input; every run
# then copies that log and reads it with the analysis plugin alone, so the figure is the analysis
# thread's, not the generator's.
events_dir=$(mktemp -d)
trap 'rm -rf "$events_dir"' EXIT
layout() { # $1: dir
    mkdir -p "$1"/hs_run/{input,analysis,output} "$1"/hs_load/{input,analysis,output} "$1"/lua_modules/blink
    cp "$repo/lua_modules/blink/rule.lua" "$1/lua_modules/blink/"
    printf 'output_path = "data"\nsandbox_run_path = "hs_run"\nsandbox_load_path = "hs_load"\nlua_path = "lua_modules"\nanalysis_threads = 1\n' > "$1/blink.toml"
}
layout "$events_dir"
cat > "$events_dir/hs_run/input/gen.lua" <<LUA
local msg = {Type = "auth", Timestamp = 0, Fields = {outcome = "failure", src_ip = "", user = "root"}}
function process_message()
    for i = 1, $events do
        msg.Timestamp = (1700000000 + i / 1000) * 1e9
        msg.Fields.src_ip = "10.0." .. (i % 10) .. "." .. (i % 100)
        inject_message(msg)
    end
    return 0
end
LUA
printf 'filename = "gen.lua"\ninstruction_limit = 0\n' > "$events_dir/hs_run/input/gen.cfg"
(cd "$events_dir" && RUST_LOG=warn "$blink_bin" run --batch --config blink.toml)
rm "$events_dir"/hs_run/input/gen.*

deployment() { # $1: dir, $2: analysis Lua
    layout "$1"
    cp -r "$events_dir/data" "$1/data"
    printf '%s\n' "$2" > "$1/hs_run/analysis/rule.lua"
    printf 'filename = "rule.lua"\nmessage_matcher = "Type == '"'"'auth'"'"'"\nprocess_message_inject_limit = 1\ncheckpoint_data = true\ntimer_event_inject_limit = 1000\nticker_interval = 60\nthreshold = 5\ndedup_period = 600\ninstruction_limit = 0\nmemory_limit = 67108864\n' > "$1/hs_run/analysis/rule.cfg"
}

rule='require "blink.rule"
function rule(e) return e.Fields.outcome == "failure" end
function dedup(e) return e.Fields.src_ip end
function title(e) return "failed logins from " .. e.Fields.src_ip end'
count='n = 0
function process_message() n = n + 1; return 0 end
function timer_event() end'

measure() { # $1: label, $2: Lua
    local times=()
    for _ in $(seq "$runs"); do
        local dir
        dir=$(mktemp -d)
        deployment "$dir" "$2"
        local start end
        start=$(date +%s.%N)
        (cd "$dir" && RUST_LOG=warn "$blink_bin" run --batch --config blink.toml)
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc)")
        rm -rf "$dir"
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    printf '%-28s runs: %s s; median %s s = %.0f events/s\n' "$1" "${times[*]}" "$median" \
        "$(echo "$events / $median" | bc -l)"
}

echo "$events events, one analysis thread, $(nproc) cores"
measure "counting plugin" "$count"
measure "blink.rule with dedup" "$rule"
