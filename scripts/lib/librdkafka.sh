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
    if [ ! -x "$librdkafka_src/tests/test-runner" ] \
        || [ ! -x "$librdkafka_src/examples/rdkafka_performance" ]; then
        echo "== building librdkafka $librdkafka_version, its tests and rdkafka_performance (once)"
        (cd "$librdkafka_src" \
            && { [ -f Makefile.config ] || ./configure --disable-ssl --disable-gssapi \
                --disable-curl --disable-lz4-ext --disable-zstd --disable-regex-ext >/dev/null; } \
            && make -j2 libs >/dev/null 2>&1 \
            && make -j2 -C tests build >/dev/null 2>&1 \
            && make -C examples rdkafka_performance >/dev/null 2>&1)
    fi
}
