# Sourced by scripts/librdkafka-tests and bench/kafka.sh: librdkafka 2.10.0 from the sources the
# rdkafka-sys crate ships (static.crates.io), built once under target/librdkafka/ with its test
# programs and the rdkafka_performance tool. Sets $librdkafka_src.
librdkafka_version="4.9.0+2.10.0"
librdkafka_src="$PWD/target/librdkafka/rdkafka-sys-$librdkafka_version/librdkafka"

build_librdkafka() {
    local root="$PWD/target/librdkafka"
    if [ ! -f "$librdkafka_src/configure" ]; then
        echo "== fetching librdkafka $librdkafka_version (the rdkafka-sys crate's sources)"
        mkdir -p "$root"
        curl -sSfL -o "$root/rdkafka-sys.crate" \
            "https://static.crates.io/crates/rdkafka-sys/rdkafka-sys-$librdkafka_version.crate"
        tar xzf "$root/rdkafka-sys.crate" -C "$root"
    fi
    # With OpenSSL: TLS and SASL/SCRAM (which needs it) are tested against Blink too. A build
    # made with other flags (an older checkout's) is configured and built again.
    local flags="--enable-ssl --disable-gssapi --disable-curl --disable-lz4-ext --disable-zstd --disable-regex-ext"
    local stamp="$librdkafka_src/.blink-configure-flags"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$flags" ]; then
        rm -f "$librdkafka_src/tests/test-runner" "$librdkafka_src/examples/rdkafka_performance"
        (cd "$librdkafka_src" && { [ ! -f Makefile.config ] || make clean >/dev/null 2>&1 || true; } \
            && rm -f Makefile.config && ./configure $flags >/dev/null) \
            && echo "$flags" > "$stamp"
    fi
    if [ ! -x "$librdkafka_src/tests/test-runner" ] \
        || [ ! -x "$librdkafka_src/examples/rdkafka_performance" ]; then
        echo "== building librdkafka $librdkafka_version, its tests and rdkafka_performance (once)"
        (cd "$librdkafka_src" \
            && make -j2 libs >/dev/null 2>&1 \
            && make -j2 -C tests build >/dev/null 2>&1 \
            && make -C examples rdkafka_performance >/dev/null 2>&1)
    fi
}
