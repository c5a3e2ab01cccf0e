#!/usr/bin/env bash
# Kafka protocol throughput with librdkafka's own load generator, rdkafka_performance (built from
# the librdkafka sources the rdkafka-sys crate ships, as scripts/librdkafka-tests builds them):
# produce 1 M x 100 B and 1 M x 1 KB (acks=1 and acks=all, linger.ms=5), consume each set, and
# the broker's and the client's CPU seconds; then what this machine's page cache takes for new
# file data (dd), the ceiling for a broker that leaves everything it writes in the page cache
# (Blink does not: page_cache_window, docs/configuration.md). Prints figures;
# asserts nothing. With the test venv (./scripts/test makes it), each run also measures end-to-end
# latency with bench/kafka_latency.py.
# Usage: [BLINK_BIN=path] bench/kafka.sh [runs]   (needs a release build: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
python="${BLINK_TEST_PYTHON:-$PWD/target/test-venv/bin/python}"
blink_bin="${BLINK_BIN:-$PWD/target/release/blink}"   # BLINK_BIN: another build, to compare
[ -x "$blink_bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
source scripts/lib/librdkafka.sh
build_librdkafka
tool="$librdkafka_src/examples/rdkafka_performance"
source scripts/lib/start-blink.sh
trap stop_blink EXIT
start_blink
broker="127.0.0.1:$blink_port"
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$blink_pid/stat"; }
# label, then rdkafka_performance's arguments; prints its own rate, the broker's CPU and the
# client's (on two cores a slow run is often the client's: it touches 1 GB of fresh memory).
measure() {
    local label=$1; shift
    local c0 c1 out line client
    c0=$(cpu)
    out=$( { TIMEFORMAT='client_cpu %U %S'; time "$tool" -b "$broker" -q "$@" 2>&1; } 2>&1)
    c1=$(cpu)
    line=$(grep -E '^% [0-9]+ messages' <<<"$out" | tail -1)
    client=$(grep -E '^client_cpu' <<<"$out" | awk '{print $2 + $3}')
    awk -v l="$label" -v c0="$c0" -v c1="$c1" -v client="$client" -v line="$line" 'BEGIN {
        match(line, /[0-9]+ msgs\/s/); rate = substr(line, RSTART, RLENGTH - 7)
        match(line, /[0-9.]+ MB\/s/); mb = substr(line, RSTART, RLENGTH - 5)
        match(line, / in [0-9]+ms/); ms = substr(line, RSTART + 4, RLENGTH - 6)
        printf "%-34s %9d msgs/s %8.1f MB/s   %6.2f s   broker CPU %5.2f s   client CPU %5.2f s\n", l, rate, mb, ms / 1000, c1 - c0, client }'
}
for run in $(seq "$runs"); do
    echo "run $run"
    # Latency at a steady 2 k/s, measured first: after the bulk runs the kernel is still writing
    # back gigabytes, and ext4's journal then stalls any writer for milliseconds.
    sync
    if "$python" -c "import confluent_kafka" 2>/dev/null; then
        echo "end to end, 10 k messages one at a time at 2 k/s (bench/kafka_latency.py):"
        c0=$(cpu)
        "$python" bench/kafka_latency.py "$broker" | sed 's/^/  /'
        awk -v c0="$c0" -v c1="$(cpu)" 'BEGIN { printf "  broker CPU for the 10 k round trips %.2f s\n", c1 - c0 }'
    fi
    for size in 100 1024; do
        for acks in 1 all; do
            topic="p$size-$acks-$run"
            measure "produce 1M x $size B acks=$acks" -P -t "$topic" -p 0 -s "$size" -c 1000000 \
                -a "$([ "$acks" = all ] && echo -1 || echo 1)" -X linger.ms=5 \
                -X queue.buffering.max.messages=1000000 -X queue.buffering.max.kbytes=2097151
        done
        measure "consume 1M x $size B" -C -t "p$size-1-$run" -p 0 -o beginning -c 1000000
    done
done
echo "this machine's page cache, new file data (dd bs=1M, 1 GiB, three times):"
for i in 1 2 3; do
    dd if=/dev/zero of="$blink_dir/dd.$i" bs=1M count=1024 2>&1 | tail -1 | awk '{print "  " $(NF-1), $NF}'
done
rm -f "$blink_dir"/dd.*
