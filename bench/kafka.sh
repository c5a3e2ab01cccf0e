#!/usr/bin/env bash
# Kafka protocol throughput with librdkafka's kcat: produce 1 M x 100 B and 1 M x 1 KB (acks=1
# and acks=all, linger.ms=5), consume them all, and the broker's CPU seconds per million
# messages. Prints figures; asserts nothing. Usage: bench/kafka.sh [runs]  (needs kcat and a
# release build: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
blink="$PWD/target/release/blink"
dir=$(mktemp -d /tmp/blink-kafka-bench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir -p "$dir"/hs_run/{input,analysis,output} "$dir"/hs_load
port=$((20000 + RANDOM % 20000))
printf 'output_path = "data"\nsandbox_run_path = "hs_run"\nsandbox_load_path = "hs_load"\n[kafka]\nlisten = "127.0.0.1:%s"\n' "$port" > "$dir/blink.toml"
python3 -c "import sys; sys.stdout.write(('x' * 99 + '\n') * 1000000)" > "$dir/m100.txt"
python3 -c "import sys; sys.stdout.write(('y' * 1023 + '\n') * 1000000)" > "$dir/m1k.txt"
(cd "$dir" && RUST_LOG=warn exec "$blink" run --config blink.toml) &
pid=$!
broker="127.0.0.1:$port"
for _ in $(seq 50); do kcat -b "$broker" -L -m 1 >/dev/null 2>&1 && break; sleep 0.2; done
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$pid/stat"; }
now() { date +%s.%N; }
measure() { # label, bytes per message, command...
    local label=$1 size=$2; shift 2
    local c0 t0 t1 c1
    c0=$(cpu); t0=$(now)
    "$@"
    t1=$(now); c1=$(cpu)
    awk -v l="$label" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v s="$size" 'BEGIN {
        secs = t1 - t0
        printf "%-34s %9.0f msgs/s %8.1f MB/s   %6.2f s   broker CPU %5.2f s\n", l, 1e6 / secs, 1e6 * s / secs / 1e6, secs, c1 - c0 }'
}
for run in $(seq "$runs"); do
    echo "run $run"
    for size in 100 1k; do
        bytes=$([ "$size" = 100 ] && echo 100 || echo 1024)
        for acks in 1 all; do
            topic="p$size-$acks-$run"
            measure "produce 1M x $size acks=$acks" "$bytes" kcat -b "$broker" -P -t "$topic" -X linger.ms=5 \
                -X acks="$([ "$acks" = all ] && echo -1 || echo 1)" \
                -X queue.buffering.max.messages=1000000 -X queue.buffering.max.kbytes=2097151 -l "$dir/m$size.txt"
        done
        measure "consume 1M x $size" "$bytes" kcat -b "$broker" -C -t "p$size-1-$run" -o beginning -e -q -f ''
    done
done
