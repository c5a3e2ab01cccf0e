//! Blink's Kafka server driven by real clients: kcat (librdkafka from Debian), kafka-python and
//! confluent-kafka (its own librdkafka), installed by `./scripts/test`, plus raw frames. Every
//! test starts the real binary on an ephemeral port and checks the data byte for byte.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::clients::{
    exchange, frame, kcat, produce_frame, produce_lines, produced, py, python, run,
};
use common::{Blink, Workspace, sigterm, wait_for, workspace};

#[test]
fn kcat_lists_produces_with_every_codec_and_consumes() {
    let w = workspace();
    let mut blink = w.start();
    let mut expected = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("key-{codec}-{i}:value {codec} {i}"))
            .collect();
        produce_lines(&blink, "events", codec, &lines);
        expected.extend(lines);
    }
    let listed = String::from_utf8(run(kcat(&blink).args(["-L", "-t", "events"])).stdout).unwrap();
    assert!(
        listed.contains("topic \"events\" with 1 partitions"),
        "{listed}"
    );
    let consumed = run(kcat(&blink).args([
        "-C",
        "-t",
        "events",
        "-o",
        "beginning",
        "-e",
        "-f",
        "%o %k:%s\\n",
    ]));
    let lines: Vec<String> = String::from_utf8(consumed.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<String> = expected
        .iter()
        .enumerate()
        .map(|(offset, line)| format!("{offset} {line}"))
        .collect();
    assert_eq!(lines, want);
    // Any offset inside a compressed batch works: the whole batch is served, the client skips.
    let tail = run(kcat(&blink).args(["-C", "-t", "events", "-o", "-3", "-e", "-f", "%o\\n"]));
    assert_eq!(String::from_utf8(tail.stdout).unwrap(), "247\n248\n249\n");
    sigterm(&mut blink);
}

#[test]
fn a_waiting_consumer_gets_a_message_produced_later() {
    let w = workspace();
    let mut blink = w.start();
    produce_lines(&blink, "late", "none", &["k:first".into()]);
    let consumer = kcat(&blink)
        .args(["-C", "-t", "late", "-o", "1", "-c", "1", "-f", "%s\\n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let sent = Instant::now();
    produce_lines(&blink, "late", "none", &["k:second".into()]);
    let output = consumer.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "second\n");
    assert!(sent.elapsed() < Duration::from_secs(10));
    sigterm(&mut blink);
}

const KAFKA_PYTHON: &str = r#"
import json, sys
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

broker = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=broker)
admin.create_topics([NewTopic("py", num_partitions=3, replication_factor=1)])
try:
    admin.create_topics([NewTopic("py", num_partitions=3, replication_factor=1)])
    exists = "created twice"
except TopicAlreadyExistsError:
    exists = "already exists"
# kafka-python 3 producers are idempotent with acks=all by default.
producer = KafkaProducer(bootstrap_servers=broker)
for i in range(300):
    producer.send("py", key=b"k%03d" % i, value=bytes([i % 256]) * (i % 7) + b"v%03d" % i,
                  partition=i % 3, timestamp_ms=1_000_000 + i)
producer.flush()
consumer = KafkaConsumer(bootstrap_servers=broker, consumer_timeout_ms=5000)
parts = [TopicPartition("py", p) for p in range(3)]
consumer.assign(parts)
consumer.seek_to_beginning()
got = sorted((m.partition, m.offset, m.key.hex(), m.value.hex(), m.timestamp) for m in consumer)
by_time = consumer.offsets_for_times({TopicPartition("py", 1): 1_000_150})
ends = consumer.end_offsets(parts)
starts = consumer.beginning_offsets(parts)
print(json.dumps({
    "exists": exists,
    "topics": sorted(admin.list_topics()),
    "got": got,
    "by_time": [by_time[TopicPartition("py", 1)].offset, by_time[TopicPartition("py", 1)].timestamp],
    "ends": [ends[p] for p in parts],
    "starts": [starts[p] for p in parts],
}))
"#;

#[test]
fn kafka_python_creates_produces_idempotently_and_consumes() {
    let w = workspace();
    let mut blink = w.start();
    let out: serde_json::Value = serde_json::from_str(&py(&w, &blink, KAFKA_PYTHON)).unwrap();
    assert_eq!(out["exists"], "already exists");
    let topics: Vec<&str> = out["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        topics.contains(&"py") && topics.contains(&"blink.input"),
        "{topics:?}"
    );
    let got = out["got"].as_array().unwrap();
    assert_eq!(got.len(), 300);
    for (n, record) in got.iter().enumerate() {
        // Sorted by (partition, offset): partition p holds i = p, p+3, … at offsets 0, 1, …
        let (p, offset) = (n / 100, n % 100);
        let i = p + 3 * offset;
        let mut value = vec![(i % 256) as u8; i % 7];
        value.extend_from_slice(format!("v{i:03}").as_bytes());
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(record[0], p);
        assert_eq!(record[1], offset);
        assert_eq!(record[2], hex(format!("k{i:03}").as_bytes()));
        assert_eq!(record[3], hex(&value));
        assert_eq!(record[4], 1_000_000 + i as u64);
    }
    // Partition 1 holds i = 1, 4, …; the first at or after 1_000_150 is i = 151, offset 50.
    assert_eq!(out["by_time"], serde_json::json!([50, 1_000_151]));
    assert_eq!(out["ends"], serde_json::json!([100, 100, 100]));
    assert_eq!(out["starts"], serde_json::json!([0, 0, 0]));
    sigterm(&mut blink);
}

const CONFLUENT: &str = r#"
import json, sys
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaError

broker = sys.argv[1]
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
producer = Producer({"bootstrap.servers": broker, "enable.idempotence": True,
                     "compression.type": "zstd", "linger.ms": 5})
for i in range(5000):
    producer.produce("ck", key=str(i).encode(), value=("value %d " % i).encode() * 3, callback=report)
producer.flush(30)

# The queues take only Heka messages.
bad = []
plain = Producer({"bootstrap.servers": broker, "retries": 0})
plain.produce("blink.input", value=b"not a heka message",
              callback=lambda err, msg: bad.append(err.code() if err else None))
plain.flush(30)
# A minimal valid one: Uuid (16 bytes) and Timestamp.
heka = b"\x0a\x10" + bytes(range(16)) + b"\x10\x2a"
plain.produce("blink.input", value=heka, callback=lambda err, msg: bad.append(err.code() if err else msg.offset()))
plain.flush(30)
# Compressed batches for the queues are checked just the same (and stored decompressed).
packed = Producer({"bootstrap.servers": broker, "retries": 0, "compression.type": "lz4",
                   "linger.ms": 50})
for value in [heka, heka]:
    packed.produce("blink.input", value=value,
                   callback=lambda err, msg: bad.append(err.code() if err else msg.offset()))
packed.flush(30)
packed.produce("blink.input", value=b"compressed, still not heka" * 10,
               callback=lambda err, msg: bad.append(err.code() if err else None))
packed.flush(30)

consumer = Consumer({"bootstrap.servers": broker, "group.id": "assign-only",
                     "enable.auto.commit": False})
consumer.assign([TopicPartition("ck", 0, 0)])
seen = []
while len(seen) < 5000:
    m = consumer.poll(10)
    if m is None:
        break
    if m.error():
        errors.append(str(m.error()))
        break
    seen.append([m.offset(), m.key().decode(), m.value().decode()])
print(json.dumps({"errors": errors, "seen": seen, "queue": bad,
                  "invalid_record": KafkaError.INVALID_RECORD}))
"#;

#[test]
fn confluent_kafka_produces_compressed_and_idempotent_and_queues_take_only_heka() {
    let w = workspace();
    let mut blink = w.start();
    let out: serde_json::Value = serde_json::from_str(&py(&w, &blink, CONFLUENT)).unwrap();
    assert_eq!(out["errors"], serde_json::json!([]));
    let seen = out["seen"].as_array().unwrap();
    assert_eq!(seen.len(), 5000);
    for (i, record) in seen.iter().enumerate() {
        assert_eq!(record[0], i);
        assert_eq!(record[1], i.to_string());
        assert_eq!(record[2], format!("value {i} ").repeat(3));
    }
    // The plain text was refused with INVALID_RECORD and not written; the Heka messages got
    // offsets 0, 1 and 2 (the last two in an lz4 batch); the compressed text was refused too.
    let invalid = &out["invalid_record"];
    assert_eq!(
        out["queue"],
        serde_json::json!([invalid, 0, 1, 2, invalid]),
        "{out}"
    );
    let cat = run(Command::new(env!("CARGO_BIN_EXE_blink"))
        .args(["cat", "--config", "blink.toml", "blink.input", "--json"])
        .current_dir(w.path()));
    assert_eq!(String::from_utf8(cat.stdout).unwrap().lines().count(), 3);
    sigterm(&mut blink);
}

#[test]
fn detections_can_be_read_with_a_kafka_consumer() {
    let w = workspace();
    w.plugin(
        "input",
        "events",
        "",
        r#"function process_message()
            for i = 1, 10 do inject_message({Type = "login", Payload = "user" .. i}) end
            return 0
        end"#,
    );
    w.plugin(
        "analysis",
        "detect",
        "message_matcher = 'Type == \"login\"'\nprocess_message_inject_limit = 1",
        r#"function process_message()
            inject_message({Type = "detection", Payload = "suspicious " .. read_message("Payload")})
            return 0
        end"#,
    );
    let mut blink = w.start();
    let mut got = String::new();
    wait_for("ten detections over Kafka", Duration::from_secs(60), || {
        let out = kcat(&blink)
            .args([
                "-C",
                "-t",
                "blink.analysis",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%s\\n",
            ])
            .output()
            .unwrap();
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        (1..=10).all(|i| got.contains(&format!("suspicious user{i}")))
    });
    sigterm(&mut blink);
}

#[test]
fn broken_frames_close_only_their_connection() {
    let w = workspace();
    let mut blink = w.start();
    let address = blink.1.clone();

    // ApiVersions v99: UNSUPPORTED_VERSION in a v0 body, with the supported list (KIP-511).
    let answer = exchange(&address, &frame(&[0, 18, 0, 99, 0, 0, 0, 7, 0, 0])).unwrap();
    assert_eq!(&answer[..4], &[0, 0, 0, 7], "correlation id");
    assert_eq!(&answer[4..6], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
    // Unknown API key, Metadata v99, a truncated Produce, an oversized frame: closed, no answer.
    assert_eq!(
        exchange(&address, &frame(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1])),
        None
    );
    assert_eq!(
        exchange(&address, &frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0, 0])),
        None
    );
    assert_eq!(
        exchange(&address, &frame(&[0, 0, 0, 9, 0, 0, 0, 1, 0])),
        None
    );
    assert_eq!(exchange(&address, &[0x7f, 0xff, 0xff, 0xff]), None);
    assert_eq!(exchange(&address, &[0, 0, 0, 2, 1, 2]), None);

    // Counts of 2^31 - 1 in tiny frames (issue 13): each aborted the process by making the
    // decoder reserve room for that many elements. Now each closes only its connection.
    for (what, key, version, fields_before) in [
        ("Metadata v0 topics", 3i16, 0i16, &[][..]),
        (
            "Produce v3 topics",
            0,
            3,
            &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30][..],
        ),
        ("CreateTopics v2 topics", 19, 2, &[][..]),
        ("DeleteTopics v1 names", 20, 1, &[][..]),
        ("DescribeConfigs v1 resources", 32, 1, &[][..]),
        ("ListOffsets v1 topics", 2, 1, &[0xff, 0xff, 0xff, 0xff][..]),
        (
            "Fetch v4 topics",
            1,
            4,
            &[
                0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0,
            ][..],
        ),
        (
            "JoinGroup v0 protocols",
            11,
            0,
            &[0, 1, b'g', 0, 0, 0x75, 0x30, 0, 0, 0, 1, b'c'][..],
        ),
        (
            "OffsetCommit v2 topics",
            8,
            2,
            &[0, 1, b'g', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ),
    ] {
        let mut body = key.to_be_bytes().to_vec();
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, 1, 0, 2, b'f', b'z']); // correlation id, client id
        body.extend_from_slice(fields_before);
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(exchange(&address, &frame(&body)), None, "{what}");
    }
    // The frame from the report, byte for byte.
    let reported = b"\x00\x00\x00\x10\x00\x03\x00\x00\x00\x00\x00\x01\x00\x02fz\x7f\xff\xff\xff";
    assert_eq!(exchange(&address, reported), None);
    // Each was refused for its count, before decoding (the reason is logged).
    wait_for("the refusals logged", Duration::from_secs(10), || {
        blink.logged("an array of 2147483647 elements").len() == 10
    });

    // Random and truncated frames, bounded in count and time.
    let started = Instant::now();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let len = (next() % 200) as usize + 8;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // A known API key and a plausible version, so decoding goes deep before failing.
        let key = [0i16, 1, 2, 3, 18, 19, 22][(next() % 7) as usize];
        body[..2].copy_from_slice(&key.to_be_bytes());
        body[2..4].copy_from_slice(&((next() % 10) as i16).to_be_bytes());
        let mut raw = frame(&body);
        if next() % 4 == 0 {
            raw.truncate((next() as usize) % raw.len());
        }
        let _ = exchange(&address, &raw);
    }

    // The server still serves everyone.
    let listed = run(kcat(&blink).args(["-L"]));
    assert!(
        String::from_utf8(listed.stdout)
            .unwrap()
            .contains("blink.input")
    );
    sigterm(&mut blink);
}

/// Whether the server has closed `stream` within `within` (it reads end-of-stream).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    match stream.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[test]
fn idle_and_trickling_connections_are_closed_and_one_address_gets_its_share() {
    let w = workspace();
    w.kafka_config("max_connections_per_ip = 4\nconnections_max_idle_ms = 3000\nrequest_read_timeout_ms = 500\n");
    let mut blink = w.start();
    let address = blink.1.clone();

    // Four idle connections take this address's share: a fifth is closed at once.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = TcpStream::connect(&address).unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(2)),
        "the fifth connection is refused"
    );
    wait_for("the refusal logged", Duration::from_secs(10), || {
        !blink.logged("max_connections_per_ip reached").is_empty()
    });

    // The idle ones are closed after connections_max_idle_ms, which frees the slots.
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(10)),
            "an idle connection is closed"
        );
    }
    let versions = frame(&[0, 18, 0, 0, 0, 0, 0, 9, 0, 0]);
    let answer = exchange(&address, &versions).expect("a new connection is served");
    assert_eq!(&answer[..4], &[0, 0, 0, 9]);

    // Slowloris: two bytes of a size prefix, then nothing. Closed after request_read_timeout_ms,
    // long before the idle timeout.
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(&[0, 0]).unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(2)),
        "a trickled request is cut off"
    );
    // And a frame whose body stops short.
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(&versions[..7]).unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(2)),
        "a trickled body is cut off"
    );
    wait_for("the timeouts logged", Duration::from_secs(5), || {
        blink.logged("a request did not arrive in time").len() == 2
    });

    // Real clients were never locked out.
    let listed = run(kcat(&blink).args(["-L"]));
    assert!(
        String::from_utf8(listed.stdout)
            .unwrap()
            .contains("blink.input")
    );
    sigterm(&mut blink);
}

/// A producer that records each message the broker acknowledged, one line each, as soon as
/// it is acknowledged; it produces about 5,000 a second until the stop file appears (or
/// `count` messages).
const ACKED_PRODUCER: &str = r#"
import os, sys, time
from confluent_kafka import Producer
broker, name, count, acked_path, stop_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
acked = open(acked_path, "a", buffering=1)
def delivered(err, msg):
    if err is None:
        acked.write(msg.value().decode() + "\n")
p = Producer({"bootstrap.servers": broker, "acks": "all", "enable.idempotence": True,
              "linger.ms": 5, "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 200,
              "retry.backoff.ms": 50})
for n in range(count):
    if os.path.exists(stop_path):
        break
    while True:
        try:
            p.produce("durable", value=f"{name}-{n}".encode(), partition=n % 3, on_delivery=delivered)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if n % 50 == 0:
        time.sleep(0.01)  # about 5,000 a second: producing all through the kills
p.flush(120)
"#;

#[test]
fn acknowledged_writes_survive_kill_9_under_load_from_several_producers() {
    let w = workspace();
    // A fixed port, so the producers find Blink again after each restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = w.path().join("blink.toml");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&path, toml).unwrap();
    let mut blink = w.start();
    run(kcat(&blink).args(["-L"])); // up
    py(
        &w,
        &blink,
        "import sys\nfrom kafka.admin import KafkaAdminClient, NewTopic\n\
         KafkaAdminClient(bootstrap_servers=sys.argv[1]).create_topics([NewTopic('durable', 3, 1)])\n",
    );
    let script = w.file("producer.py");
    std::fs::write(&script, ACKED_PRODUCER).unwrap();
    let stop = w.file("stop");
    let producers: Vec<_> = (0..3)
        .map(|i| {
            Command::new(python())
                .arg(&script)
                .args([&blink.1, &format!("p{i}"), "1000000"])
                .arg(w.file(&format!("acked-{i}")))
                .arg(&stop)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill -9 at pseudo-random moments while they produce, restarting each time.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(700 + seed % 1500));
        blink.kill_9();
        eprintln!("round {round}: killed");
        blink = w.start();
    }
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&stop, "").unwrap();
    for mut producer in producers {
        let deadline = Instant::now() + Duration::from_secs(150);
        while producer.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "a producer did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let acked: Vec<String> = (0..3)
        .flat_map(|i| w.lines(&format!("acked-{i}")))
        .collect();
    assert!(acked.len() > 1000, "only {} acknowledged", acked.len());
    let stored = run(kcat(&blink).args(["-C", "-t", "durable", "-e", "-q", "-f", "%s\n"]));
    let stored = String::from_utf8(stored.stdout).unwrap();
    let mut counts = std::collections::HashMap::new();
    for line in stored.lines() {
        *counts.entry(line).or_insert(0u32) += 1;
    }
    let lost: Vec<&String> = acked
        .iter()
        .filter(|a| !counts.contains_key(a.as_str()))
        .collect();
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "{} acknowledged, {} stored, {} lost, {duplicates} duplicates over 4 kill -9 rounds",
        acked.len(),
        stored.lines().count(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but lost: {:?}",
        &lost[..lost.len().min(10)]
    );
    sigterm(&mut blink);
}

const GROUPS_PYTHON: &str = r#"
import json, sys, threading
from kafka import KafkaProducer, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import CommitFailedError

broker, phase = sys.argv[1], sys.argv[2]
if phase == "first":
    KafkaAdminClient(bootstrap_servers=broker).create_topics(
        [NewTopic("grouped", num_partitions=4, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=broker)
    for i in range(400):
        producer.send("grouped", value=b"%d" % i, partition=i % 4)
    producer.flush()
    seen = {}
    def consume(name):
        c = KafkaConsumer("grouped", bootstrap_servers=broker, group_id="two",
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          consumer_timeout_ms=8000, session_timeout_ms=6000,
                          heartbeat_interval_ms=500)
        got = []
        def commit():
            # A commit while the group rebalances is refused (REBALANCE_IN_PROGRESS), as
            # Kafka does; the next one goes through.
            try:
                c.commit()
            except CommitFailedError:
                pass
        try:
            for m in c:
                got.append(int(m.value))
                if len(got) % 25 == 0:
                    commit()
            commit()
        except Exception as e:
            seen[name + "-error"] = repr(e)
        seen[name] = got
        c.close()
    threads = [threading.Thread(target=consume, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admin = KafkaAdminClient(bootstrap_servers=broker)
    groups = sorted(g["group_id"] for g in admin.list_groups())
    described = admin.describe_groups(["two"])["two"]
    offsets = {str(tp.partition): meta.offset
               for tp, meta in admin.list_group_offsets("two")["two"].items()}
    print(json.dumps({"seen": seen, "groups": groups, "offsets": offsets,
                      "state": described["group_state"]}))
else:
    # After a restart of Blink: the group resumes at its committed offsets.
    producer = KafkaProducer(bootstrap_servers=broker)
    for i in range(400, 440):
        producer.send("grouped", value=b"%d" % i, partition=i % 4)
    producer.flush()
    c = KafkaConsumer("grouped", bootstrap_servers=broker, group_id="two",
                      auto_offset_reset="earliest", consumer_timeout_ms=6000)
    print(json.dumps({"seen": sorted(int(m.value) for m in c)}))
"#;

#[test]
fn kafka_python_groups_share_partitions_commit_and_resume_after_a_restart() {
    let w = workspace();
    let mut blink = w.start();
    let path = w.file("groups.py");
    std::fs::write(&path, GROUPS_PYTHON).unwrap();
    let first = run(Command::new(python()).arg(&path).arg(&blink.1).arg("first"));
    let out: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(
        out["seen"].get("a-error").is_none() && out["seen"].get("b-error").is_none(),
        "{out}"
    );
    let mut all: Vec<u64> = Vec::new();
    for name in ["a", "b"] {
        all.extend(
            out["seen"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap()),
        );
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all,
        (0..400).collect::<Vec<_>>(),
        "every message, by one of the two"
    );
    assert!(
        out["groups"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("two"))
    );
    assert_eq!(
        out["offsets"],
        serde_json::json!({"0": 100, "1": 100, "2": 100, "3": 100})
    );
    sigterm(&mut blink);

    let mut blink = w.start();
    let second = run(Command::new(python())
        .arg(&path)
        .arg(&blink.1)
        .arg("second"));
    let out: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        out["seen"],
        serde_json::json!((400..440).collect::<Vec<_>>())
    );
    sigterm(&mut blink);
}

const CONFLUENT_GROUPS: &str = r#"
import json, sys
from confluent_kafka import Producer, Consumer

broker = sys.argv[1]
producer = Producer({"bootstrap.servers": broker})
for i in range(200):
    producer.produce("assigned", value=b"%d" % i)
producer.flush(30)
counts = {}
for strategy in ["range", "roundrobin", "cooperative-sticky"]:
    c = Consumer({"bootstrap.servers": broker, "group.id": "ck-" + strategy,
                  "auto.offset.reset": "earliest", "partition.assignment.strategy": strategy})
    c.subscribe(["assigned"])
    # A new group's first rebalance waits 3 s for more members (as Kafka's does): be patient.
    got, idle = [], 0
    while idle < 15 and len(got) < 200:
        m = c.poll(1)
        if m is None:
            idle += 1
            continue
        if m.error():
            break
        got.append(int(m.value()))
    c.close()
    counts[strategy] = sorted(got)
print(json.dumps(counts))
"#;

#[test]
fn confluent_kafka_groups_with_every_assignor_and_kcat_groups() {
    let w = workspace();
    let mut blink = w.start();
    let out: serde_json::Value = serde_json::from_str(&py(&w, &blink, CONFLUENT_GROUPS)).unwrap();
    for strategy in ["range", "roundrobin", "cooperative-sticky"] {
        assert_eq!(
            out[strategy],
            serde_json::json!((0..200).collect::<Vec<_>>()),
            "{strategy}"
        );
    }
    let consumed = run(kcat(&blink).args([
        "-G",
        "kcat-group",
        "assigned",
        "-o",
        "beginning",
        "-e",
        "-q",
    ]));
    assert_eq!(
        String::from_utf8(consumed.stdout).unwrap().lines().count(),
        200
    );
    sigterm(&mut blink);
}

const END_TO_END: &str = r#"
import json, sys
from kafka import KafkaProducer, KafkaConsumer, TopicPartition

broker, phase = sys.argv[1], sys.argv[2]
codec = sys.argv[3] if len(sys.argv) > 3 else None
producer = KafkaProducer(bootstrap_servers=broker, value_serializer=lambda v: v.encode(),
                         compression_type=codec)
if phase == "produce":
    for user in ["alice", "bob", "mallory", "carol"]:
        producer.send("auth", key=user.encode(), value=json.dumps({"user": user, "action": "login"}),
                      headers=[("source", b"sshd")])
    producer.send("auth", value="this is not JSON")
    producer.flush()
    print("{}")
else:
    # Detections come back out of blink.analysis through any Kafka consumer.
    consumer = KafkaConsumer(bootstrap_servers=broker, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition("blink.analysis", 0)])
    consumer.seek_to_beginning()
    print(json.dumps([m.value.decode("utf-8", "replace") for m in consumer]))
"#;

/// The shipped Kafka bridge (`hs_run/input/kafka.lua` and `.cfg`), installed in `w` to read
/// `topics` (a Lua list) instead of the shipped `{"events"}`.
fn install_bridge(w: &Workspace, topics: &str) {
    let input = w.path().join("hs_run/input");
    std::fs::write(
        input.join("kafka.lua"),
        include_str!("../hs_run/input/kafka.lua"),
    )
    .unwrap();
    let shipped = include_str!("../hs_run/input/kafka.cfg");
    assert!(shipped.contains("topics            = {\"events\"}"));
    std::fs::write(
        input.join("kafka.cfg"),
        shipped.replace("{\"events\"}", topics),
    )
    .unwrap();
}

/// The row of `plugin` in `plugin_status.tsv`, by column name.
fn plugin_row(w: &Workspace, plugin: &str) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(w.file("data/plugin_status.tsv")).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cells| cells[0] == plugin)
        .map(|cells| {
            header
                .iter()
                .zip(cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_record_too_large_to_inject_is_a_bad_record_and_ingest_goes_on() {
    let w = workspace();
    install_bridge(&w, "{\"events\"}"); // as shipped
    let mut blink = w.start();
    let huge = "x".repeat(1 << 20);
    // Under output_limit alone, over it once it is a message with fields.
    let near = format!("{{\"pad\": \"{}\"}}", "y".repeat(65_000));
    let mut child = kcat(&blink)
        .args([
            "-P",
            "-t",
            "events",
            "-K",
            ":",
            "-X",
            "message.max.bytes=4000000",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        r#"a:{"n": 1}"#.to_owned(),
        format!("b:{huge}"),
        format!("c:{near}"),
        r#"d:{"n": 4}"#.to_owned(),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    // Another topic is not the bridge's.
    produce_lines(&blink, "other", "none", &[r#"k:{"n": 99}"#.to_owned()]);

    wait_for("four bridged messages", Duration::from_secs(60), || {
        input_queue(&w).len() >= 4
    });
    let bridged = input_queue(&w);
    assert_eq!(bridged.len(), 4, "{bridged:?}");
    assert_eq!(bridged[0]["Fields"]["n"], 1.0);
    for (i, size) in [(1, 1usize << 20), (2, near.len())] {
        let m = &bridged[i];
        assert_eq!(m["Fields"]["kafka_size"], size as f64, "{m}");
        assert_eq!(m["Fields"]["kafka_offset"], i as f64);
        assert!(m.get("Payload").is_none(), "the value is left out: {m}");
        let error = m["Fields"]["decode_error"].as_str().unwrap();
        assert!(
            error.contains("bytes") || error.contains("output_limit"),
            "{error}"
        );
    }
    assert_eq!(bridged[3]["Fields"]["n"], 4.0, "ingest went on");

    // The bridge, which never returns from process_message, shows its counts while it runs.
    wait_for(
        "the bridge's counts in plugins.tsv",
        Duration::from_secs(30),
        || {
            let row = plugin_row(&w, "input.kafka");
            row.get("Inject Message Count").is_some_and(|c| c == "4")
                && row.get("Notes").is_some_and(|n| {
                    n.contains("bad_records=2") && n.contains("oversized_records=1")
                })
        },
    );
    assert_eq!(plugin_row(&w, "input.kafka")["State"], "running");
    sigterm(&mut blink);
}

#[test]
fn detections_an_output_forwards_to_a_topic_do_not_come_back_in() {
    let w = workspace();
    // The bridge reads every topic, the one alerts are forwarded to included.
    install_bridge(&w, "{\"*\"}");
    w.plugin(
        "analysis",
        "alert",
        "message_matcher = 'Type == \"kafka\"'\nprocess_message_inject_limit = 1",
        r#"function process_message()
            inject_message({Type = "detection", Payload = read_message("Payload")})
            return 0
        end"#,
    );
    w.plugin(
        "output",
        "forward",
        "message_matcher = 'Type == \"detection\"'",
        r#"require "kafka"
        local producer = kafka.producer()
        function process_message()
            producer:send("alerts", read_message("Payload"))
            return 0
        end"#,
    );
    let mut blink = w.start();
    produce_lines(&blink, "events", "none", &[r#"k:{"n": 1}"#.to_owned()]);
    // The detection reaches "alerts"…
    wait_for("the forwarded detection", Duration::from_secs(60), || {
        plugin_row(&w, "input.kafka")
            .get("Notes")
            .is_some_and(|n| n.contains("own_records_skipped=1"))
    });
    // …and a record another client produces there is still bridged: only Blink's own are not.
    produce_lines(&blink, "alerts", "none", &[r#"k:{"n": 2}"#.to_owned()]);
    wait_for("the client's record", Duration::from_secs(60), || {
        input_queue(&w).len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let bridged = input_queue(&w);
    let loggers: Vec<&str> = bridged
        .iter()
        .map(|m| m["Logger"].as_str().unwrap())
        .collect();
    assert_eq!(loggers, ["events", "alerts"], "{bridged:?}");
    assert_eq!(bridged[1]["Fields"]["n"], 2.0);
    sigterm(&mut blink);
}

/// Every message in `blink.input`, as `blink cat --json` prints them.
fn input_queue(w: &Workspace) -> Vec<serde_json::Value> {
    let out = run(Command::new(env!("CARGO_BIN_EXE_blink"))
        .args(["cat", "--config", "blink.toml", "blink.input", "--json"])
        .current_dir(w.path()));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect()
}

#[test]
fn json_produced_with_kafka_becomes_detections_read_with_kafka() {
    let w = workspace();
    install_bridge(&w, "{\"auth\"}");
    w.plugin(
        "analysis",
        "mallory",
        "message_matcher = 'Type == \"kafka\" && Fields[user] == \"mallory\"'\nprocess_message_inject_limit = 1",
        r#"function process_message()
            inject_message({Type = "detection", Payload = "mallory logged in via " ..
                read_message("Fields[header.source]") .. " key " .. read_message("Fields[kafka_key]")})
            return 0
        end"#,
    );
    let mut blink = w.start();
    let script = w.file("e2e.py");
    std::fs::write(&script, END_TO_END).unwrap();
    // Producers compress (gzip here, zstd below): the bridge reads compressed batches.
    run(Command::new(python())
        .arg(&script)
        .arg(&blink.1)
        .args(["produce", "gzip"]));
    let mut detections = serde_json::Value::Null;
    wait_for("the detection", Duration::from_secs(60), || {
        let out = run(Command::new(python())
            .arg(&script)
            .arg(&blink.1)
            .arg("consume"));
        detections = serde_json::from_slice(&out.stdout).unwrap();
        detections.as_array().is_some_and(|d| !d.is_empty())
    });
    let detections = detections.as_array().unwrap();
    assert_eq!(detections.len(), 1, "{detections:?}");
    assert!(
        detections[0]
            .as_str()
            .unwrap()
            .contains("mallory logged in via sshd key mallory")
    );
    // Every record reached blink.input; the one that is not JSON carries its error.
    let cat = || input_queue(&w);
    let bridged = cat();
    assert_eq!(bridged.len(), 5);
    assert_eq!(bridged[0]["Logger"], "auth");
    assert_eq!(bridged[0]["Fields"]["user"], "alice");
    assert_eq!(bridged[4]["Payload"], "this is not JSON");
    assert!(
        bridged[4]["Fields"]["decode_error"]
            .as_str()
            .unwrap()
            .starts_with("cjson.decode:")
    );

    // A restart resumes after the last bridged record: nothing twice, nothing missed.
    sigterm(&mut blink);
    let mut blink = w.start();
    run(Command::new(python())
        .arg(&script)
        .arg(&blink.1)
        .args(["produce", "zstd"]));
    wait_for("the second round", Duration::from_secs(60), || {
        cat().len() >= 10
    });
    std::thread::sleep(Duration::from_millis(500));
    let offsets: Vec<u64> = cat()
        .iter()
        .map(|m| m["Fields"]["kafka_offset"].as_f64().unwrap() as u64)
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    sigterm(&mut blink);
}

#[test]
fn an_idempotent_batch_retried_across_a_restart_is_written_once() {
    let w = workspace();
    // Batches of producer 4242, epoch 0, sequences 0, 1, 2, ...
    let batch = |sequence: i32| {
        let mut builder = blink::log::batch::BatchBuilder::new();
        builder.push(0, None, format!("record {sequence}").as_bytes());
        let mut batch = builder.finish();
        batch[43..51].copy_from_slice(&4242i64.to_be_bytes());
        batch[51..53].copy_from_slice(&0i16.to_be_bytes());
        batch[53..57].copy_from_slice(&sequence.to_be_bytes());
        let crc = blink::log::batch::compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    };
    let mut blink = w.start();
    produce_lines(&blink, "idem", "none", &["k:created".to_owned()]);
    let send = |blink: &Blink, sequence: i32| {
        produced(&exchange(&blink.1, &produce_frame("idem", batch(sequence))).expect("an answer"))
    };
    let first = send(&blink, 0);
    assert_eq!(first.0, 0);
    assert_eq!(send(&blink, 1).0, 0);
    // The answer to sequence 1 was "lost"; Blink is killed; the producer retries after the
    // restart: the retry gets the first write's offset and nothing is written again.
    blink.kill_9();
    let mut blink = w.start();
    assert_eq!(send(&blink, 1), (0, first.1 + 1), "after kill -9");
    assert_eq!(send(&blink, 2), (0, first.1 + 2));
    sigterm(&mut blink);
    let mut blink = w.start();
    assert_eq!(send(&blink, 2), (0, first.1 + 2), "after a clean stop");
    // A gap is still refused: OUT_OF_ORDER_SEQUENCE_NUMBER.
    assert_eq!(send(&blink, 9).0, 45);
    let listed = run(kcat(&blink).args(["-C", "-t", "idem", "-e", "-f", "%s\n"]));
    let values = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(values.matches("record 1").count(), 1, "{values}");
    assert_eq!(values.matches("record 2").count(), 1, "{values}");
    sigterm(&mut blink);
}

#[test]
fn the_bridge_hands_over_a_batch_it_cannot_read_and_goes_on() {
    let w = workspace();
    install_bridge(&w, "{\"raw\"}");
    let mut blink = w.start();
    produce_lines(&blink, "raw", "none", &[r#"k:{"n": 1}"#.to_owned()]);
    // A batch whose CRC is right but whose "gzip" records are not gzip: a broken producer.
    // Blink stores a user topic's batches as sent, so Produce takes it.
    let mut builder = blink::log::batch::BatchBuilder::new();
    builder.push(
        1_700_000_000_000,
        None,
        b"these bytes were never compressed",
    );
    let mut batch = builder.finish();
    batch[22] |= 1; // attributes: gzip
    let crc = blink::log::batch::compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let answer = exchange(&blink.1, &produce_frame("raw", batch)).expect("an answer");
    let response = {
        use kafka_protocol::protocol::Decodable;
        let mut body = bytes::Bytes::from(answer[4..].to_vec()); // after the correlation id
        kafka_protocol::messages::ProduceResponse::decode(&mut body, 7).unwrap()
    };
    let stored = &response.responses[0].partition_responses[0];
    assert_eq!((stored.error_code, stored.base_offset), (0, 1));
    produce_lines(&blink, "raw", "gzip", &[r#"k:{"n": 2}"#.to_owned()]);

    let cat = || input_queue(&w);
    wait_for("three bridged messages", Duration::from_secs(60), || {
        cat().len() >= 3
    });
    let bridged = cat();
    assert_eq!(bridged.len(), 3, "{bridged:?}");
    assert_eq!(bridged[0]["Fields"]["n"], 1.0);
    let error = bridged[1]["Fields"]["decode_error"].as_str().unwrap();
    assert!(
        error.contains("raw-0") && error.contains("does not decompress (gzip)"),
        "{error}"
    );
    assert_eq!(bridged[1]["Fields"]["kafka_offset"], 1.0);
    assert_eq!(bridged[2]["Fields"]["n"], 2.0, "the bridge went on");
    assert_eq!(bridged[2]["Fields"]["kafka_offset"], 2.0);
    sigterm(&mut blink);
}

#[test]
fn an_output_plugin_produces_into_a_topic_kafka_clients_read() {
    let w = workspace();
    w.plugin(
        "input",
        "alerts",
        "",
        r#"function process_message(checkpoint)
            if checkpoint then return 0 end
            for i = 1, 5 do inject_message({Type = "alert", Payload = "alert " .. i}, "done") end
            return 0
        end"#,
    );
    w.plugin(
        "output",
        "forward",
        "message_matcher = 'Type == \"alert\"'",
        r#"require "kafka"
        local producer = kafka.producer()
        -- A partition that is not a partition number is an error, never partition 0.
        for _, p in ipairs({-1, 0/0, 1.5}) do
            local ok, err = pcall(producer.send, producer, "alerts", "bad", "k", p)
            assert(not ok and tostring(err):match("not a partition number"), tostring(err))
        end
        function process_message()
            local ok, err = pcall(producer.send, producer, "alerts", read_message("Payload"), "k")
            if not ok then return -3, err end
            return 0
        end"#,
    );
    // lua_sandbox_extensions' kafka output, as written for Hindsight: asynchronous checkpoints.
    w.plugin(
        "output",
        "forward_async",
        "message_matcher = 'Type == \"alert\"'\nasync_buffer_size = 100",
        r#"require "kafka"
        local producer = kafka.producer(nil, {["queue.buffering.max.ms"] = 1})
        local bad, code = producer:send("blink.input", -1, 0, "x")
        assert(bad == 22 and code:match("queues"), tostring(bad))
        for _, p in ipairs({-2, 0/0, 0.5}) do
            local ret, err = producer:send("async-alerts", p, 0, "bad")
            assert(ret == 22 and err:match("not a partition number"), tostring(err))
        end
        function process_message(sequence_id)
            -- As the heka encoders hand it over: a zero-copy reference to the field.
            local ret = producer:send("async-alerts", -1, sequence_id, read_message("Payload", nil, nil, true))
            if ret ~= 0 then return -1, "send failed " .. ret end
            producer:poll()
            return -5
        end
        function timer_event(ns) producer:poll() end"#,
    );
    let mut blink = w.start();
    let read = |blink: &Blink, topic: &str| {
        let out = kcat(blink)
            .args(["-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k %s\\n"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut got = String::new();
    wait_for("five alerts on each topic", Duration::from_secs(60), || {
        got = read(&blink, "alerts");
        got.lines().count() >= 5 && read(&blink, "async-alerts").lines().count() >= 5
    });
    assert_eq!(
        got,
        (1..=5)
            .map(|i| format!("k alert {i}\n"))
            .collect::<String>()
    );
    let sent = |i| format!(" alert {i}\n");
    assert_eq!(
        read(&blink, "async-alerts"),
        (1..=5).map(sent).collect::<String>()
    );
    // poll() confirmed every sequence id: after a restart nothing is sent again.
    sigterm(&mut blink);
    let mut blink = w.start();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        read(&blink, "async-alerts"),
        (1..=5).map(sent).collect::<String>()
    );
    sigterm(&mut blink);
}

const ADMIN: &str = r#"
import json, sys
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic, NewPartitions, ConfigResource, ConfigResourceType
from kafka.errors import InvalidPartitionsError, UnknownTopicOrPartitionError

broker = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=broker)
admin.create_topics([NewTopic("grow", 1, 1), NewTopic("doomed", 2, 1)])
admin.create_partitions({"grow": NewPartitions(total_count=3)})
try:
    admin.create_partitions({"grow": NewPartitions(total_count=2)})
    shrink = "allowed"
except InvalidPartitionsError:
    shrink = "refused"
producer = KafkaProducer(bootstrap_servers=broker)
producer.send("grow", value=b"into the new partition", partition=2).get(timeout=10)
configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "grow")], config_filter="all")
admin.delete_topics(["doomed"])
try:
    admin.delete_topics(["blink.input"])
    queue = "deleted"
except Exception as e:
    queue = type(e).__name__
print(json.dumps({"topics": sorted(admin.list_topics()), "shrink": shrink,
                  "partitions": len(admin.describe_topics(["grow"])[0]["partitions"]),
                  "configs": {k: v["value"] for k, v in configs["topic"]["grow"].items()},
                  "queue": queue}, default=str))
"#;

#[test]
fn kafka_python_admin_grows_describes_and_deletes_topics() {
    let w = workspace();
    let mut blink = w.start();
    let out: serde_json::Value = serde_json::from_str(&py(&w, &blink, ADMIN)).unwrap();
    let topics: Vec<&str> = out["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        topics.contains(&"grow") && !topics.contains(&"doomed"),
        "{topics:?}"
    );
    assert!(topics.contains(&"blink.input"), "a queue cannot be deleted");
    assert_ne!(out["queue"], "deleted");
    assert_eq!(out["shrink"], "refused");
    assert_eq!(out["partitions"], 3);
    assert_eq!(out["configs"]["cleanup.policy"], "delete");
    assert_eq!(out["configs"]["segment.bytes"], "67108864");
    assert!(
        !w.path().join("data/doomed-0").exists(),
        "the deleted topic's files are gone"
    );
    let consumed = run(kcat(&blink).args([
        "-C",
        "-t",
        "grow",
        "-p",
        "2",
        "-o",
        "beginning",
        "-e",
        "-f",
        "%s\\n",
    ]));
    assert_eq!(
        String::from_utf8(consumed.stdout).unwrap(),
        "into the new partition\n"
    );
    sigterm(&mut blink);
}

const TOPIC_CONFIGS: &str = r#"
import json, sys
from kafka.admin import KafkaAdminClient, NewTopic, ConfigResource, ConfigResourceType

admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
out = {}
def attempt(name, f):
    try:
        out[name] = str(f())
    except Exception as e:
        out[name] = type(e).__name__ + ": " + str(e)
if sys.argv[2] == "set":
    attempt("create", lambda: admin.create_topics([NewTopic("kept", 1, 1, topic_configs={"retention.ms": "60000"})]))
    attempt("compact", lambda: admin.create_topics([NewTopic("compacted", 1, 1, topic_configs={"cleanup.policy": "compact"})]))
    attempt("segment", lambda: admin.create_topics([NewTopic("odd", 1, 1, topic_configs={"segment.bytes": "1024"})]))
    kept = ConfigResource(ConfigResourceType.TOPIC, "kept", configs={"retention.bytes": "1048576"})
    attempt("alter", lambda: admin.alter_configs([kept]))
    bad = ConfigResource(ConfigResourceType.TOPIC, "kept", configs={"retention.bytes": "-5"})
    attempt("alter_bad", lambda: admin.alter_configs([bad]))
    broker = ConfigResource(ConfigResourceType.BROKER, "0", configs={"log.retention.ms": "1"})
    attempt("alter_broker", lambda: admin.alter_configs([broker], raise_on_unknown=False))
d = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kept")], config_filter="all")
out["described"] = {k: [v["value"], str(v["config_source"]), v["read_only"]] for k, v in d["topic"]["kept"].items()}
out["topics"] = sorted(admin.list_topics())
print(json.dumps(out, default=str))
"#;

#[test]
fn kafka_python_sets_a_topics_own_retention_which_survives_a_restart() {
    let w = workspace();
    let mut blink = w.start();
    let script = w.file("configs.py");
    std::fs::write(&script, TOPIC_CONFIGS).unwrap();
    let configs = |blink: &Blink, mode: &str| -> serde_json::Value {
        let output = run(Command::new(python()).arg(&script).arg(&blink.1).arg(mode));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let out = configs(&blink, "set");
    assert!(!out["create"].as_str().unwrap().contains("Error"), "{out}");
    for (key, says) in [
        ("compact", "no compaction"),
        ("segment", "segment.bytes cannot be set per topic"),
        ("alter_bad", "retention.bytes=-5"),
        ("alter_broker", "read from cfg/blink.toml"),
    ] {
        assert!(out[key].as_str().unwrap().contains(says), "{key}: {out}");
    }
    let topics = out["topics"].to_string();
    assert!(
        !topics.contains("compacted") && !topics.contains("odd"),
        "{topics}"
    );
    for out in [out, {
        sigterm(&mut blink);
        blink = w.start();
        configs(&blink, "describe")
    }] {
        let described = &out["described"];
        assert_eq!(
            described["retention.ms"],
            serde_json::json!(["60000", "DYNAMIC_TOPIC_CONFIG", false]),
            "{out}"
        );
        assert_eq!(
            described["retention.bytes"],
            serde_json::json!(["1048576", "DYNAMIC_TOPIC_CONFIG", false]),
            "{out}"
        );
        assert_eq!(described["segment.bytes"][1], "DEFAULT_CONFIG", "{out}");
        assert_eq!(described["segment.bytes"][2], true, "{out}");
    }
    sigterm(&mut blink);
}

const KAFKAJS: &str = r#"
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')
const kafka = new Kafka({ clientId: 'blink-test', brokers: [process.argv[2]], logLevel: logLevel.ERROR })
async function main() {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'js', numPartitions: 2 }] })
  const topics = await admin.listTopics()
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < 100; i++) messages.push({ key: 'k' + i, value: 'v' + i, partition: i % 2 })
  await producer.send({ topic: 'js', messages, compression: CompressionTypes.GZIP })
  await producer.disconnect()
  const seen = []
  const consumer = kafka.consumer({ groupId: 'js-group' })
  await consumer.connect()
  await consumer.subscribe({ topic: 'js', fromBeginning: true })
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 30000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.push([partition, Number(message.offset), message.key.toString(), message.value.toString()])
        if (seen.length === 100) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  seen.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  console.log(JSON.stringify({ topics: topics.sort(), seen }))
}
main().catch(e => { console.error(e); process.exit(1) })
"#;

#[test]
fn kafkajs_creates_produces_gzip_and_consumes_in_a_group() {
    let modules = std::env::var("BLINK_TEST_NODE_MODULES").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-node/node_modules").into()
    });
    assert!(
        std::path::Path::new(&modules).join("kafkajs").exists(),
        "kafkajs is missing from {modules}: run ./scripts/test, which installs it"
    );
    let w = workspace();
    let mut blink = w.start();
    let script = w.file("test.js");
    std::fs::write(&script, KAFKAJS).unwrap();
    let output = run(Command::new("node")
        .arg(&script)
        .arg(&blink.1)
        .env("NODE_PATH", &modules));
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        out["topics"],
        serde_json::json!(["blink.analysis", "blink.input", "js"])
    );
    let seen = out["seen"].as_array().unwrap();
    assert_eq!(seen.len(), 100);
    for (n, record) in seen.iter().enumerate() {
        let (partition, offset) = (n / 50, n % 50);
        let i = partition + 2 * offset;
        assert_eq!(
            record,
            &serde_json::json!([partition, offset, format!("k{i}"), format!("v{i}")])
        );
    }
    sigterm(&mut blink);
}

#[test]
fn the_shipped_pipeline_forwards_detections_to_a_topic_as_json() {
    let w = workspace();
    for (kind, name) in [
        ("input", "auth_events"),
        ("analysis", "ssh_brute_force"),
        ("output", "detections_kafka"),
    ] {
        for ext in ["lua", "cfg"] {
            let file = format!("{name}.{ext}");
            let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hs_run")
                .join(kind)
                .join(&file);
            std::fs::copy(shipped, w.path().join("hs_run").join(kind).join(&file)).unwrap();
        }
    }
    // The detection is written with blink.rule.
    std::fs::create_dir_all(w.path().join("lua_modules/blink")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/lua_modules/blink/rule.lua"),
        w.path().join("lua_modules/blink/rule.lua"),
    )
    .unwrap();
    let mut blink = w.start();
    let mut detections = Vec::new();
    wait_for(
        "a detection on the detections topic",
        Duration::from_secs(90),
        || {
            // Fails until the first detection creates the topic.
            let out = kcat(&blink)
                .args(["-C", "-t", "detections", "-e", "-q"])
                .output()
                .unwrap();
            detections = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .collect();
            !detections.is_empty()
        },
    );
    let d = &detections[0];
    assert_eq!(d["Type"], "blink.alert", "{d}");
    assert_eq!(d["Fields"]["rule_id"], "ssh_brute_force", "{d}");
    assert_eq!(d["Fields"]["status"], "new", "{d}");
    assert_eq!(d["Fields"]["count"], 5, "{d}");
    // The simulated attacker, usually; now and then a normal address fails five times too.
    let src_ip = d["Fields"]["dedup"].as_str().unwrap();
    assert!(
        d["Payload"]
            .as_str()
            .unwrap()
            .contains(&format!("failed SSH logins from {src_ip}")),
        "{d}"
    );
    assert_eq!(d["Uuid"].as_str().unwrap().len(), 36, "{d}");
    assert!(d["time"].as_str().unwrap().ends_with('Z'), "{d}");
    sigterm(&mut blink);
}

/// Produces `count` 1 KB messages `{tag}-{n}` with acks=all; prints "acked N failed N codes".
const PRODUCE_UNTIL_FULL: &str = r#"
import sys
from confluent_kafka import Producer
broker, tag, count, acked_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
acked, failed, codes = open(acked_path, "a", buffering=1), [0], set()
def delivered(err, msg):
    if err is None:
        acked.write(msg.value()[:40].decode().strip() + "\n")
    else:
        failed[0] += 1
        codes.add(err.name())
p = Producer({"bootstrap.servers": broker, "acks": "all", "linger.ms": 5,
              "message.timeout.ms": 8000, "retries": 0})
for n in range(count):
    p.produce("full", value=f"{tag}-{n}".ljust(1024).encode(), on_delivery=delivered)
    p.poll(0)
p.flush(60)
print(failed[0], ",".join(sorted(codes)))
"#;

#[test]
fn a_full_disk_refuses_produce_loses_nothing_acknowledged_and_resumes_when_freed() {
    // The "disk" is RLIMIT_FSIZE on Blink's process: no file may grow past 2 MiB, so the
    // segment's writes fail as they would on a full disk (with EFBIG for ENOSPC; SIGXFSZ is
    // ignored, so the failed write is an error, not a signal). Raising the limit frees it.
    let w = workspace();
    let limit = 2u64 << 20;
    let mut blink = w.start_with("info", |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit and signal are async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    produce_lines(&blink, "full", "none", &["k:first".to_owned()]);
    let script = w.file("fill.py");
    std::fs::write(&script, PRODUCE_UNTIL_FULL).unwrap();
    let acked = w.file("acked");
    let produce = |blink: &Blink, tag: &str, count: &str| {
        let out = run(Command::new(python())
            .arg(&script)
            .args([&blink.1, tag, count])
            .arg(&acked));
        String::from_utf8(out.stdout).unwrap()
    };
    // 3 MB into a 2 MiB "disk": the rest is refused with KAFKA_STORAGE_ERROR.
    let full = produce(&blink, "a", "3000");
    let failed: u32 = full.split_whitespace().next().unwrap().parse().unwrap();
    assert!(failed > 0, "nothing was refused: {full}");
    assert!(full.contains("KAFKA_STORAGE_ERROR"), "{full}");
    wait_for(
        "kafka: produce failed logged",
        Duration::from_secs(10),
        || !blink.logged("kafka: produce failed").is_empty(),
    );
    // Space is freed: the same process takes writes again.
    let pid = blink.0.id() as libc::pid_t;
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads the new limit and writes no old one (null).
    let raised =
        unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) };
    assert_eq!(raised, 0, "prlimit: {}", std::io::Error::last_os_error());
    let after = produce(&blink, "b", "500");
    assert!(after.starts_with("0 "), "after freeing space: {after}");
    // Everything acknowledged, before and after, is stored.
    let stored = run(kcat(&blink).args(["-C", "-t", "full", "-e", "-q", "-f", "%s\n"]));
    let stored: std::collections::HashSet<String> = String::from_utf8(stored.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    let acked = w.lines("acked");
    assert!(acked.iter().any(|a| a.starts_with("b-")));
    let lost: Vec<&String> = acked
        .iter()
        .filter(|a| !stored.contains(a.trim()))
        .collect();
    eprintln!(
        "{} acknowledged, {failed} refused while full, {} lost",
        acked.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but lost: {:?}",
        &lost[..lost.len().min(10)]
    );
    sigterm(&mut blink);
}
