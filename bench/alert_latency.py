"""Produce-to-webhook latency of an alert, live (issue 15).

JSON auth events are produced with a Kafka client (confluent-kafka, i.e. librdkafka) at a
steady rate into a running `blink run`; the Kafka bridge hands them to the shipped brute-force
rule (threshold 5, dedup by address), whose alerts the shipped webhook output POSTs to an HTTP
server in this script, on 127.0.0.1. Every fifth event of an address raises an alert; its
latency is from the moment the producer was handed that fifth event to the moment the webhook
request arrived. Prints percentiles; asserts nothing.

Usage: python bench/alert_latency.py BLINK_BIN [--rate 1000] [--seconds 30]
(bench/alert_latency.sh finds the binary and the Python with confluent-kafka.)
"""

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deployment(root, webhook_port):
    for kind in ("input", "analysis", "output"):
        os.makedirs(os.path.join(root, "hs_run", kind))
        os.makedirs(os.path.join(root, "hs_load", kind))
    os.makedirs(os.path.join(root, "lua_modules", "blink"))
    shutil.copy(os.path.join(REPO, "lua_modules/blink/rule.lua"), os.path.join(root, "lua_modules/blink"))
    with open(os.path.join(root, "blink.toml"), "w") as f:
        f.write('output_path = "data"\nsandbox_run_path = "hs_run"\nsandbox_load_path = "hs_load"\n'
                'lua_path = "lua_modules"\n[kafka]\nlisten = "127.0.0.1:0"\n')

    def plugin(kind, name, cfg, source):
        shutil.copy(os.path.join(REPO, "hs_run", kind, source), os.path.join(root, "hs_run", kind, source))
        with open(os.path.join(root, "hs_run", kind, name + ".cfg"), "w") as f:
            f.write('filename = "%s"\n%s\n' % (source, cfg))

    plugin("input", "kafka", 'instruction_limit = 0\ntopics = {"auth"}\ndecoder = "json"\ntype = "auth"', "kafka.lua")
    with open(os.path.join(REPO, "hs_run/analysis/ssh_brute_force.cfg")) as f:
        rule_cfg = "\n".join(line for line in f.read().splitlines() if not line.startswith("filename"))
    plugin("analysis", "ssh_brute_force", rule_cfg, "ssh_brute_force.lua")
    plugin("output", "webhook", 'message_matcher = "Type == \'blink.alert\'"\nformat = "json"\n'
           'url = "http://127.0.0.1:%d/hook"\ntimeout = 5' % webhook_port, "alert_webhook.lua")


class Webhook(http.server.BaseHTTPRequestHandler):
    arrivals = {}  # dedup key -> arrival time (ns)

    def do_POST(self):
        now = time.perf_counter_ns()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        try:
            alert = json.loads(body)
            Webhook.arrivals.setdefault(alert["dedup"], now)
        except (ValueError, KeyError):
            pass

    def log_message(self, *args):
        pass


def start_blink(binary, root):
    process = subprocess.Popen([binary, "run", "--config", "blink.toml"], cwd=root,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, RUST_LOG="info"))
    address = None
    deadline = time.time() + 60
    for line in process.stderr:
        found = re.search(r"kafka server listening.*?(127\.0\.0\.1:\d+)", line)
        if found and address is None:
            address = found.group(1)
        if "blink is running" in line:
            break
        if time.time() > deadline:
            break
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    if address is None:
        process.kill()
        sys.exit("blink did not start")
    return process, address


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("blink")
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the deployment (printed)")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = tempfile.mkdtemp(prefix="blink-latency-")
    deployment(root, server.server_address[1])
    blink, address = start_blink(args.blink, root)
    try:
        producer = Producer({"bootstrap.servers": address, "linger.ms": 0, "acks": 1})
        # Warm-up: the topic exists and the bridge reads it before the clock starts.
        producer.produce("auth", b'{"outcome": "success", "src_ip": "warm-up"}')
        producer.flush(30)
        time.sleep(2)
        sent = {}  # dedup key -> when its fifth event was handed to the producer
        total = args.rate * args.seconds
        interval = 1.0 / args.rate
        start = time.perf_counter()
        for i in range(total):
            slot = start + i * interval
            delay = slot - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key = "10.%d.%d.%d" % ((i // 5) >> 16 & 255, (i // 5) >> 8 & 255, (i // 5) & 255)
            event = json.dumps({"outcome": "failure", "src_ip": key, "user": "root"}).encode()
            if i % 5 == 4:
                sent[key] = time.perf_counter_ns()
            producer.produce("auth", event)
            producer.poll(0)
        producer.flush(30)
        achieved = total / (time.perf_counter() - start)
        deadline = time.time() + 30
        while len(Webhook.arrivals) < len(sent) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        blink.send_signal(signal.SIGTERM)
        blink.wait(60)
        server.shutdown()
        if args.keep:
            print("deployment kept in", root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    latencies = sorted((Webhook.arrivals[k] - t) / 1e6 for k, t in sent.items() if k in Webhook.arrivals)
    print("%d events at %d/s (achieved %.0f/s), %d alerts expected, %d arrived"
          % (total, args.rate, achieved, len(sent), len(latencies)))
    if latencies:
        print("produce-to-webhook latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f"
              % tuple(percentile(latencies, p) for p in (50, 90, 99, 100)))


if __name__ == "__main__":
    main()
