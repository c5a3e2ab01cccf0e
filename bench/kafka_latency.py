"""End-to-end latency through Blink's Kafka server: 10 k messages sent one at a time at 2 k/s
with confluent-kafka (librdkafka), received by a consumer in the same process; prints p50, p99
and p99.9 of send → receive. Usage: python bench/kafka_latency.py HOST:PORT
(Python adds its own overhead on both sides, so the broker's share is smaller than printed.)"""
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

broker = sys.argv[1]
topic = "latency-%d" % time.time_ns()
n, rate = 10_000, 2_000
producer = Producer({"bootstrap.servers": broker, "linger.ms": 0, "acks": 1})
producer.produce(topic, value=b"warm-up", partition=0)  # the topic may have several
producer.flush(10)
consumer = Consumer({"bootstrap.servers": broker, "group.id": "latency", "fetch.wait.max.ms": 100,
                     "fetch.min.bytes": 1, "enable.auto.commit": False})
consumer.assign([TopicPartition(topic, 0, 1)])
latencies = []
done = threading.Event()


def receive():
    while len(latencies) < n:
        m = consumer.poll(1)
        if m is None or m.error():
            continue
        latencies.append(time.perf_counter_ns() - int(m.value()))
    done.set()


threading.Thread(target=receive, daemon=True).start()
time.sleep(1)
start = time.perf_counter()
for i in range(n):
    due = start + i / rate
    # Sleep (not spin): a spinning thread would hold the GIL the consumer thread needs.
    wait = due - time.perf_counter()
    if wait > 0:
        time.sleep(wait)
    producer.produce(topic, value=str(time.perf_counter_ns()).encode(), partition=0)
    producer.poll(0)
producer.flush(10)
done.wait(30)
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6
print("end-to-end latency, %d messages at %d/s: p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms" %
      (len(latencies), rate, pick(0.5), pick(0.99), pick(0.999)))
