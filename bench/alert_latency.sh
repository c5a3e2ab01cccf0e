#!/usr/bin/env bash
# Produce-to-webhook latency of an alert, live, at a steady event rate (bench/alert_latency.py
# says how). Prints percentiles; asserts nothing.
# Usage: [BLINK_BIN=path] [BLINK_TEST_PYTHON=python] bench/alert_latency.sh [rate] [seconds]
# (cargo build --release first; ./scripts/test makes the venv with confluent-kafka.)
set -euo pipefail
cd "$(dirname "$0")/.."
blink_bin="${BLINK_BIN:-$PWD/target/release/blink}"
python="${BLINK_TEST_PYTHON:-$PWD/target/test-venv/bin/python}"
[ -x "$blink_bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x "$python" ] || { echo "no $python: run ./scripts/test once (it makes the venv), or set BLINK_TEST_PYTHON" >&2; exit 1; }
exec "$python" bench/alert_latency.py "$blink_bin" --rate "${1:-1000}" --seconds "${2:-30}"
