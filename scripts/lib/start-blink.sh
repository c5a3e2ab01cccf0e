# Sourced by the scripts that run peers' test suites against Blink.
# start_blink: builds target/debug/blink if missing, starts `blink run` in a fresh directory on
# a free loopback port with `default_partitions = 4` (the peers' suites expect auto-created
# topics with several partitions), waits until it accepts connections, and sets $blink_port,
# $blink_pid and $blink_dir. $blink_bin picks another binary (the benchmarks use the release
# build); $blink_config adds top-level settings and $blink_kafka_config `[kafka]` ones. The
# caller's EXIT trap should call stop_blink.
start_blink() {
    local blink="${blink_bin:-$PWD/target/debug/blink}"
    [ -x "$blink" ] || cargo build --locked --quiet
    blink_dir=$(mktemp -d /tmp/blink-kafka.XXXXXX)
    mkdir -p "$blink_dir"/hs_run/{input,analysis,output} "$blink_dir"/hs_load
    printf 'output_path = "data"\nsandbox_run_path = "hs_run"\nsandbox_load_path = "hs_load"\n%s\n[kafka]\nlisten = "127.0.0.1:0"\ndefault_partitions = 4\n%s\n' \
        "${blink_config:-}" "${blink_kafka_config:-}" > "$blink_dir/blink.toml"
    (cd "$blink_dir" && NO_COLOR=1 RUST_LOG="${BLINK_LOG:-warn,blink::kafka=info}" exec "$blink" run --config blink.toml \
        >"$blink_dir/blink.log" 2>&1) &
    blink_pid=$!
    blink_port=""
    for _ in $(seq 100); do
        blink_port=$(grep -oE 'kafka server listening address=127\.0\.0\.1:[0-9]+' "$blink_dir/blink.log" \
            | head -1 | grep -oE '[0-9]+$' || true)
        [ -n "$blink_port" ] && break
        sleep 0.1
    done
    if [ -z "$blink_port" ]; then
        echo "blink did not start; its log:" >&2
        cat "$blink_dir/blink.log" >&2
        return 1
    fi
}

stop_blink() {
    if [ -n "${blink_pid:-}" ]; then
        kill "$blink_pid" 2>/dev/null || true
        wait "$blink_pid" 2>/dev/null || true
    fi
    [ -n "${blink_dir:-}" ] && rm -rf "$blink_dir"
}
