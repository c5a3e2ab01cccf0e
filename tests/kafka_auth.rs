//! Who may reach Blink's Kafka server and what they may do: TLS listeners, SASL (PLAIN,
//! SCRAM, OAUTHBEARER), administrators by network or principal, and ACLs, driven by real
//! clients (confluent-kafka, kafka-python, kcat) against the real binary on loopback.

mod common;

use std::process::Command;
use std::time::Duration;

use common::clients::{
    credential, exchange, frame, kcat, produce_lines, py, py_args, run, test_certificates,
};
use common::{sigterm, wait_for, workspace};

#[test]
fn only_admin_networks_may_create_delete_or_reconfigure() {
    let w = workspace();
    // Loopback is not an admin network here: this test's client is "anyone else".
    w.kafka_config("admin_networks = [\"10.0.0.0/8\"]\n");
    let mut blink = w.start();
    produce_lines(&blink, "kept", "none", &["k:v".to_owned()]); // auto-creation stays open
    let out = py(
        &w,
        &blink,
        r#"
import sys
from kafka.admin import KafkaAdminClient, NewTopic, NewPartitions, ConfigResource, ConfigResourceType
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
def attempt(name, f):
    try:
        result = f()
        print(name, "returned", repr(result)[:300])
    except Exception as e:
        print(name, type(e).__name__)
attempt("create", lambda: admin.create_topics([NewTopic("new", 1, 1)]))
attempt("delete", lambda: admin.delete_topics(["kept"]))
attempt("partitions", lambda: admin.create_partitions({"kept": NewPartitions(2)}))
attempt("alter", lambda: admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kept", configs={"retention.ms": "1000"})]))
attempt("groups", lambda: admin.delete_groups(["g"]))
"#,
    );
    for (what, error) in [
        ("create", "TopicAuthorizationFailedError"),
        ("delete", "TopicAuthorizationFailedError"),
        ("partitions", "TopicAuthorizationFailedError"),
        ("alter", "TopicAuthorizationFailedError"),
        ("groups", "GroupAuthorizationFailedError"),
    ] {
        // Errors are raised, or (alter, groups) returned per resource.
        let line = out
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_default();
        assert!(line.contains(error), "{what}: {out}");
    }
    // Nothing changed, and producing and consuming still work.
    let listed = String::from_utf8(run(kcat(&blink).args(["-L"])).stdout).unwrap();
    assert!(
        listed.contains("\"kept\"") && !listed.contains("\"new\""),
        "{listed}"
    );
    let consumed = run(kcat(&blink).args(["-C", "-t", "kept", "-e", "-q", "-f", "%s\n"]));
    assert_eq!(String::from_utf8(consumed.stdout).unwrap(), "v\n");
    sigterm(&mut blink);
}

const TLS_CLIENTS: &str = r#"
import sys, json
from confluent_kafka import Producer, Consumer
from kafka import KafkaProducer, KafkaConsumer
broker, ca = sys.argv[1], sys.argv[2]
out = {}
p = Producer({"bootstrap.servers": broker, "security.protocol": "SSL", "ssl.ca.location": ca, "acks": "all"})
for i in range(5):
    p.produce("secure", value=b"librdkafka %d" % i)
out["librdkafka unflushed"] = p.flush(30)
kp = KafkaProducer(bootstrap_servers=broker, security_protocol="SSL", ssl_cafile=ca, acks="all")
for i in range(5):
    kp.send("secure", b"kafka-python %d" % i)
kp.flush()
c = Consumer({"bootstrap.servers": broker, "security.protocol": "SSL", "ssl.ca.location": ca,
              "group.id": "tls", "auto.offset.reset": "earliest"})
c.subscribe(["secure"])
got = []
while len(got) < 10:
    m = c.poll(15)
    if m is None:
        break
    if m.error() is None:
        got.append(m.value().decode())
c.close()
out["librdkafka consumed"] = sorted(got)
kc = KafkaConsumer("secure", bootstrap_servers=broker, security_protocol="SSL", ssl_cafile=ca,
                   auto_offset_reset="earliest", consumer_timeout_ms=8000)
out["kafka-python consumed"] = sorted(m.value.decode() for m in kc)
print(json.dumps(out))
"#;

#[test]
fn clients_produce_and_consume_over_tls_beside_a_plaintext_listener() {
    let w = workspace();
    let (ca, cert, key) = test_certificates(w.path());
    w.kafka_config(&format!(
        "[[kafka.listeners]]\nlisten = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    ));
    let mut blink = w.start();
    let tls_line = blink
        .logged("kafka server listening")
        .into_iter()
        .find(|l| l.contains("tls=true"))
        .expect("a TLS listener");
    let tls_address = common::kafka_address(&tls_line);
    assert_ne!(tls_address, blink.1);
    // Clients bootstrapped on the TLS listener are told its address, and stay on TLS.
    let metadata = run(Command::new("kcat").args([
        "-b",
        &tls_address,
        "-X",
        "security.protocol=ssl",
        "-X",
        &format!("ssl.ca.location={}", ca.display()),
        "-L",
    ]));
    let metadata = String::from_utf8(metadata.stdout).unwrap();
    assert!(metadata.contains(&tls_address), "{metadata}");
    let out = py_args(&w, TLS_CLIENTS, &[&tls_address, ca.to_str().unwrap()]);
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out["librdkafka unflushed"], 0, "{out}");
    let expected: Vec<String> = (0..5)
        .map(|i| format!("kafka-python {i}"))
        .chain((0..5).map(|i| format!("librdkafka {i}")))
        .collect();
    assert_eq!(
        out["librdkafka consumed"],
        serde_json::json!(expected),
        "{out}"
    );
    assert_eq!(
        out["kafka-python consumed"],
        serde_json::json!(expected),
        "{out}"
    );
    // The plaintext listener serves the same topics.
    let plain = run(kcat(&blink).args(["-C", "-t", "secure", "-e", "-q", "-f", "%s\n"]));
    assert_eq!(String::from_utf8(plain.stdout).unwrap().lines().count(), 10);
    // Plaintext spoken to the TLS listener is only a failed handshake for that connection.
    assert_eq!(
        exchange(&tls_address, &frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 0])),
        None
    );
    run(kcat(&blink).args(["-L"]));
    sigterm(&mut blink);
}

#[test]
fn a_listener_whose_tls_files_are_wrong_stops_blink_from_starting_and_says_which() {
    let w = workspace();
    let (_, cert, _) = test_certificates(w.path());
    w.kafka_config(&format!(
        "tls_cert = {:?}\ntls_key = \"missing.key\"\n",
        cert.to_str().unwrap()
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_blink"))
        .args(["run", "--config", "blink.toml"])
        .current_dir(w.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("missing.key") && stderr.contains("TLS"),
        "{stderr}"
    );
    assert!(!w.path().join("data").exists(), "nothing was created");
}

const SASL_CLIENTS: &str = r#"
import sys, json
from confluent_kafka import Producer, Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer, KafkaConsumer
tls, plain, ca = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
def rd(address, protocol, mechanism, user, password):
    c = {"bootstrap.servers": address, "security.protocol": protocol, "sasl.mechanisms": mechanism,
         "sasl.username": user, "sasl.password": password}
    if protocol == "SASL_SSL":
        c["ssl.ca.location"] = ca
    return c
cases = [("SASL_SSL", tls, "SCRAM-SHA-256"), ("SASL_SSL", tls, "SCRAM-SHA-512"),
         ("SASL_SSL", tls, "PLAIN"), ("SASL_PLAINTEXT", plain, "SCRAM-SHA-256")]
for protocol, address, mechanism in cases:
    p = Producer(dict(rd(address, protocol, mechanism, "alice", "alice-pw"), **{"message.timeout.ms": 10000}))
    p.produce("authed", value=f"{protocol} {mechanism}".encode())
    out[f"librdkafka {protocol} {mechanism} unflushed"] = p.flush(20)
# A wrong password and an unknown user are refused.
for user, password in [("alice", "wrong"), ("mallory", "alice-pw")]:
    p = Producer(dict(rd(tls, "SASL_SSL", "SCRAM-SHA-256", user, password), **{"message.timeout.ms": 3000}))
    outcome = []
    p.produce("authed", value=b"must not arrive",
              on_delivery=lambda err, msg: outcome.append("delivered" if err is None else err.name()))
    p.flush(6)
    out[f"librdkafka {user}/{password}"] = outcome
# kafka-python: SCRAM over TLS, PLAIN in the clear.
kp = KafkaProducer(bootstrap_servers=tls, security_protocol="SASL_SSL", ssl_cafile=ca,
                   sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password="alice-pw")
kp.send("authed", b"kafka-python SASL_SSL SCRAM-SHA-512")
kp.flush()
kp = KafkaProducer(bootstrap_servers=plain, security_protocol="SASL_PLAINTEXT",
                   sasl_mechanism="PLAIN", sasl_plain_username="alice", sasl_plain_password="alice-pw")
kp.send("authed", b"kafka-python SASL_PLAINTEXT PLAIN")
kp.flush()
try:
    KafkaProducer(bootstrap_servers=plain, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                  sasl_plain_username="alice", sasl_plain_password="nope", max_block_ms=3000)
    out["kafka-python wrong password"] = "accepted"
except Exception as e:
    out["kafka-python wrong password"] = type(e).__name__
kc = KafkaConsumer("authed", bootstrap_servers=tls, security_protocol="SASL_SSL", ssl_cafile=ca,
                   sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice", sasl_plain_password="alice-pw",
                   auto_offset_reset="earliest", consumer_timeout_ms=8000)
out["consumed"] = sorted(m.value.decode() for m in kc)
# Admin: alice is not an admin principal (and loopback is not an admin network here); admin is.
for user in ["alice", "admin"]:
    a = AdminClient(rd(tls, "SASL_SSL", "SCRAM-SHA-256", user, user + "-pw"))
    try:
        a.create_topics([NewTopic("by-" + user, 1, 1)])["by-" + user].result(15)
        out[f"create by {user}"] = "created"
    except KafkaException as e:
        out[f"create by {user}"] = e.args[0].name()
print(json.dumps(out))
"#;

#[test]
fn sasl_scram_and_plain_over_tls_and_plaintext_with_admin_principals() {
    let w = workspace();
    let (ca, cert, key) = test_certificates(w.path());
    w.kafka_config(&format!(
        "admin_networks = [\"10.0.0.0/8\"]\nadmin_principals = [\"User:admin\"]\n\
         [[kafka.listeners]]\nlisten = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n\
         sasl_mechanisms = [\"SCRAM-SHA-256\", \"SCRAM-SHA-512\", \"PLAIN\"]\n\
         [[kafka.listeners]]\nlisten = \"127.0.0.1:0\"\nsasl_mechanisms = [\"SCRAM-SHA-256\", \"PLAIN\"]\n\
         {}\n{}\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        credential("alice", "alice-pw"),
        credential("admin", "admin-pw"),
    ));
    let mut blink = w.start();
    let listening = blink.logged("kafka server listening");
    let address_of = |needle: &str| {
        common::kafka_address(listening.iter().find(|l| l.contains(needle)).unwrap())
    };
    let tls = address_of("tls=true");
    let plain_sasl = address_of("tls=false sasl=SCRAM-SHA-256,PLAIN");
    // Without authenticating, a SASL listener answers ApiVersions and nothing else.
    let versions = frame(&[0, 18, 0, 0, 0, 0, 0, 5, 0, 0]);
    assert!(exchange(&plain_sasl, &versions).is_some());
    assert_eq!(
        exchange(
            &plain_sasl,
            &frame(&[0, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0xff, 0xff, 0xff, 0xff])
        ),
        None
    );
    wait_for(
        "this listener requires SASL logged",
        Duration::from_secs(10),
        || !blink.logged("this listener requires SASL").is_empty(),
    );

    // kcat (Debian's librdkafka): SCRAM-SHA-512 over TLS, and a wrong password refused.
    let kcat_as = |password: &str| {
        Command::new("kcat")
            .args(["-b", &tls, "-L", "-m", "5"])
            .args(["-X", "security.protocol=SASL_SSL"])
            .args(["-X", &format!("ssl.ca.location={}", ca.display())])
            .args(["-X", "sasl.mechanisms=SCRAM-SHA-512"])
            .args(["-X", "sasl.username=alice"])
            .args(["-X", &format!("sasl.password={password}")])
            .output()
            .unwrap()
    };
    let listed = kcat_as("alice-pw");
    assert!(
        listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains(&tls),
        "kcat over SASL_SSL: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        !kcat_as("wrong").status.success(),
        "kcat with a wrong password"
    );

    let out = py_args(&w, SASL_CLIENTS, &[&tls, &plain_sasl, ca.to_str().unwrap()]);
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for case in [
        "SASL_SSL SCRAM-SHA-256",
        "SASL_SSL SCRAM-SHA-512",
        "SASL_SSL PLAIN",
        "SASL_PLAINTEXT SCRAM-SHA-256",
    ] {
        assert_eq!(
            out[format!("librdkafka {case} unflushed")],
            0,
            "{case}: {out}"
        );
    }
    for refused in ["librdkafka alice/wrong", "librdkafka mallory/alice-pw"] {
        let outcome = out[refused].to_string();
        assert!(
            !outcome.contains("delivered") && outcome != "[]",
            "{refused}: {out}"
        );
    }
    assert_ne!(out["kafka-python wrong password"], "accepted", "{out}");
    let consumed: Vec<String> = serde_json::from_value(out["consumed"].clone()).unwrap();
    assert_eq!(consumed.len(), 6, "{out}");
    assert!(!consumed.iter().any(|m| m.contains("must not arrive")));
    assert_eq!(
        out["create by alice"], "TOPIC_AUTHORIZATION_FAILED",
        "{out}"
    );
    assert_eq!(out["create by admin"], "created", "{out}");
    wait_for(
        "authentication failed logged",
        Duration::from_secs(10),
        || !blink.logged("authentication failed").is_empty(),
    );
    // No password in the log.
    assert!(
        blink.logged("alice-pw").is_empty()
            && blink
                .logged("wrong")
                .iter()
                .all(|l| !l.contains("password="))
    );
    sigterm(&mut blink);
}

const ACL_CLIENTS: &str = r#"
import sys, json, time
from confluent_kafka import Producer, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
sasl, anonymous = sys.argv[1], sys.argv[2]
out = {}
def rd(user):
    return {"bootstrap.servers": sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": user, "sasl.password": user + "-pw"}
def produce(conf, topic, value):
    p = Producer(dict(conf, **{"message.timeout.ms": 8000}))
    outcome = []
    p.produce(topic, value=value, on_delivery=lambda err, msg: outcome.append("delivered" if err is None else err.name()))
    p.flush(12)
    return outcome[0] if outcome else "no report"
def consume(conf, topic, group):
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got, deadline = [], time.time() + 15
    while time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        if m.error() is not None:
            got.append(m.error().name())
            break
        got.append(m.value().decode())
        if len(got) == 2:
            break
    c.close()
    return got
out["alice writes logs.app"] = produce(rd("alice"), "logs.app", b"one")
out["alice writes logs.app again"] = produce(rd("alice"), "logs.app", b"two")
out["alice writes logs.secret"] = produce(rd("alice"), "logs.secret", b"hidden")
out["alice writes other"] = produce(rd("alice"), "other", b"no")
out["bob writes logs.app"] = produce(rd("bob"), "logs.app", b"no")
out["anonymous writes logs.app"] = produce({"bootstrap.servers": anonymous}, "logs.app", b"no")
out["bob reads logs.app in readers"] = consume(rd("bob"), "logs.app", "readers")
out["bob reads logs.app in others"] = consume(rd("bob"), "logs.app", "others")
out["bob reads logs.secret"] = consume(rd("bob"), "logs.secret", "readers")
out["alice reads logs.app"] = consume(rd("alice"), "logs.app", "readers")
for user in ["alice", "bob"]:
    topics = AdminClient(rd(user)).list_topics(timeout=10).topics
    out[f"{user} sees"] = sorted(t for t, m in topics.items() if m.error is None)
# Committed offsets: bob's group is visible to bob only.
c = Consumer(dict(rd("bob"), **{"group.id": "readers"}))
out["bob committed"] = [tp.offset for tp in c.committed([TopicPartition("logs.app", 0)], timeout=10)]
c.close()
for user in ["bob", "admin"]:
    try:
        admin = AdminClient(rd(user))
        admin.delete_topics(["logs.secret"])["logs.secret"].result(15)
        out[f"{user} deletes logs.secret"] = "deleted"
    except KafkaException as e:
        out[f"{user} deletes logs.secret"] = e.args[0].name()
print(json.dumps(out))
"#;

#[test]
fn acls_decide_who_produces_consumes_sees_and_deletes() {
    let w = workspace();
    w.kafka_config(&format!(
        "admin_networks = []\nadmin_principals = [\"User:admin\"]\n\
         [[kafka.listeners]]\nlisten = \"127.0.0.1:0\"\nsasl_mechanisms = [\"PLAIN\"]\n\
         {}\n{}\n{}\n\
         [[kafka.acls]]\nprincipal = \"User:alice\"\ntopic = \"logs.\"\npattern = \"prefixed\"\n\
         operations = [\"write\", \"create\"]\n\
         [[kafka.acls]]\nprincipal = \"User:bob\"\ntopic = \"logs.\"\npattern = \"prefixed\"\n\
         operations = [\"read\"]\n\
         [[kafka.acls]]\nprincipal = \"User:bob\"\ntopic = \"logs.secret\"\noperations = [\"all\"]\n\
         permission = \"deny\"\n\
         [[kafka.acls]]\nprincipal = \"User:bob\"\ngroup = \"readers\"\noperations = [\"read\"]\n",
        credential("alice", "alice-pw"),
        credential("bob", "bob-pw"),
        credential("admin", "admin-pw"),
    ));
    let mut blink = w.start();
    let sasl = common::kafka_address(
        &blink
            .logged("kafka server listening")
            .into_iter()
            .find(|l| l.contains("sasl=PLAIN"))
            .expect("the SASL listener"),
    );
    let out = py_args(&w, ACL_CLIENTS, &[&sasl, &blink.1]);
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let expect = |key: &str, value: serde_json::Value| {
        assert_eq!(out[key], value, "{key}: {out:#}");
    };
    use serde_json::json;
    expect("alice writes logs.app", json!("delivered"));
    expect("alice writes logs.app again", json!("delivered"));
    expect("alice writes logs.secret", json!("delivered"));
    expect("alice writes other", json!("TOPIC_AUTHORIZATION_FAILED"));
    expect("bob writes logs.app", json!("TOPIC_AUTHORIZATION_FAILED"));
    expect(
        "anonymous writes logs.app",
        json!("TOPIC_AUTHORIZATION_FAILED"),
    );
    expect("bob reads logs.app in readers", json!(["one", "two"]));
    expect(
        "bob reads logs.app in others",
        json!(["GROUP_AUTHORIZATION_FAILED"]),
    );
    expect(
        "bob reads logs.secret",
        json!(["TOPIC_AUTHORIZATION_FAILED"]),
    );
    expect(
        "alice reads logs.app",
        json!(["GROUP_AUTHORIZATION_FAILED"]),
    );
    // Writing implies seeing; a deny hides the topic from bob.
    expect("alice sees", json!(["logs.app", "logs.secret"]));
    expect("bob sees", json!(["logs.app"]));
    expect("bob committed", json!([2]));
    expect(
        "bob deletes logs.secret",
        json!("TOPIC_AUTHORIZATION_FAILED"),
    );
    expect("admin deletes logs.secret", json!("deleted"));
    // "other" was never created: auto-creation needs `create` on the topic.
    let listed = String::from_utf8(run(kcat(&blink).args(["-L"])).stdout).unwrap();
    assert!(!listed.contains("\"other\""), "{listed}");
    // Refusals are logged, with who, what and why.
    let refused = blink.logged("request refused");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("User:") && l.contains("no ACL allows it")),
        "{refused:?}"
    );
    sigterm(&mut blink);
}

const OAUTH_CLIENTS: &str = r#"
import sys, json, time, base64, hmac, hashlib
from confluent_kafka import Producer, Consumer
from kafka import KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider
address, ca, secret = sys.argv[1], sys.argv[2], sys.argv[3]
tokens = json.loads(sys.argv[4])
out = {}
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
def hs256(sub, seconds):
    claims = {"sub": sub, "iss": "https://idp.test", "aud": "blink", "exp": int(time.time()) + seconds}
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())
def rd(token_cb, **extra):
    c = {"bootstrap.servers": address, "security.protocol": "SASL_SSL", "ssl.ca.location": ca,
         "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": token_cb}
    c.update(extra)
    return c
def static(token):
    return lambda _config: (token, time.time() + 300, "client")
def produce(conf, value):
    p = Producer(dict(conf, **{"message.timeout.ms": 5000}))
    outcome = []
    p.produce("tokens", value=value, on_delivery=lambda err, msg: outcome.append("delivered" if err is None else err.name()))
    p.flush(12)
    return outcome[0] if outcome else "no report"
out["RS256"] = produce(rd(static(tokens["rs256"])), b"rs256")
out["HS256"] = produce(rd(static(hs256("fluentbit", 300))), b"hs256")
for case in ["expired", "wrong audience", "wrong key"]:
    out[case] = produce(rd(static(tokens[case])), case.encode())
# A token that lives 6 s, renewed by the client: producing for 14 s goes on across the
# session's end (re-authentication on the same connection, KIP-368).
issued = []
def short(_config):
    issued.append(time.time())
    return (hs256("fluentbit", 6), time.time() + 6, "fluentbit")
p = Producer(rd(short, **{"message.timeout.ms": 10000}))
results = []
deadline = time.time() + 14
while time.time() < deadline:
    p.produce("tokens", value=b"renewed", on_delivery=lambda err, msg: results.append(err is None))
    p.poll(0.5)
p.flush(15)
out["renewed delivered"] = sum(results)
out["renewed failed"] = len(results) - sum(results)
out["tokens issued"] = len(issued)
class Provider(AbstractTokenProvider):
    def token(self):
        return hs256("kafka-python", 300)
kp = KafkaProducer(bootstrap_servers=address, security_protocol="SASL_SSL", ssl_cafile=ca,
                   sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider())
kp.send("tokens", b"kafka-python").get(timeout=15)
kp.flush()
out["kafka-python"] = "delivered"
c = Consumer(rd(static(tokens["rs256"]), **{"group.id": "token-readers", "auto.offset.reset": "earliest"}))
c.subscribe(["tokens"])
got, deadline = [], time.time() + 15
while time.time() < deadline and len(got) < 3 + out["renewed delivered"]:
    m = c.poll(1)
    if m is not None and m.error() is None:
        got.append(m.value().decode())
c.close()
out["consumed"] = sorted(set(got))
print(json.dumps(out))
"#;

#[test]
fn oauthbearer_tokens_hs256_and_rs256_are_checked_and_sessions_renew() {
    use common::clients::{jwt, unix_now};
    use serde_json::json;
    let w = workspace();
    let (ca, cert, key) = test_certificates(w.path());
    let secret = "a shared secret of at least 32 bytes";
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
    w.kafka_config(&format!(
        "[[kafka.listeners]]\nlisten = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n\
         sasl_mechanisms = [\"OAUTHBEARER\"]\n\
         [kafka.oauthbearer]\nissuer = \"https://idp.test\"\naudience = \"blink\"\n\
         hs256_secret = {secret:?}\nrs256_public_keys = [\"{keys}/idp.pub.pem\"]\nclock_skew_s = 0\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    ));
    let mut blink = w.start();
    let address = common::kafka_address(
        &blink
            .logged("kafka server listening")
            .into_iter()
            .find(|l| l.contains("sasl=OAUTHBEARER"))
            .expect("the OAUTHBEARER listener"),
    );
    let claims = |sub: &str, aud: &str, exp: u64| json!({"sub": sub, "iss": "https://idp.test", "aud": aud, "exp": exp});
    let later = unix_now() + 300;
    let tokens = json!({
        "rs256": jwt("", "idp", &claims("siem", "blink", later)),
        "expired": jwt(secret, "", &claims("siem", "blink", unix_now() - 60)),
        "wrong audience": jwt("", "idp", &claims("siem", "grafana", later)),
        "wrong key": jwt("", "other", &claims("siem", "blink", later)),
    });
    let out = py_args(
        &w,
        OAUTH_CLIENTS,
        &[&address, ca.to_str().unwrap(), secret, &tokens.to_string()],
    );
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out["RS256"], "delivered", "{out:#}");
    assert_eq!(out["HS256"], "delivered", "{out:#}");
    for refused in ["expired", "wrong audience", "wrong key"] {
        assert_ne!(out[refused], "delivered", "{refused}: {out:#}");
    }
    assert_eq!(out["renewed failed"], 0, "{out:#}");
    assert!(out["renewed delivered"].as_u64().unwrap() >= 20, "{out:#}");
    assert!(out["tokens issued"].as_u64().unwrap() >= 2, "{out:#}");
    assert_eq!(out["kafka-python"], "delivered", "{out:#}");
    assert_eq!(
        out["consumed"],
        json!(["hs256", "kafka-python", "renewed", "rs256"]),
        "{out:#}"
    );
    // Why each was refused is logged, without the token.
    for reason in ["has expired", "audience", "does not verify"] {
        wait_for(reason, Duration::from_secs(10), || {
            blink
                .logged("authentication failed")
                .iter()
                .any(|l| l.contains(reason))
        });
    }
    assert!(blink.logged("eyJ").is_empty(), "no token in the log");
    // librdkafka's unsecured development tokens (alg "none") are refused.
    let kcat = Command::new("kcat")
        .args(["-b", &address, "-L", "-m", "5"])
        .args(["-X", "security.protocol=SASL_SSL"])
        .args(["-X", &format!("ssl.ca.location={}", ca.display())])
        .args(["-X", "sasl.mechanisms=OAUTHBEARER"])
        .args(["-X", "enable.sasl.oauthbearer.unsecure.jwt=true"])
        .args(["-X", "sasl.oauthbearer.config=principal=admin"])
        .output()
        .unwrap();
    assert!(!kcat.status.success(), "an unsigned token was accepted");
    eprintln!("KCAT {}", String::from_utf8_lossy(&kcat.stderr));
    for l in blink.logged("kafka") {
        eprintln!("LOG {l}");
    }
    wait_for("alg none refused", Duration::from_secs(10), || {
        blink
            .logged("authentication failed")
            .iter()
            .any(|l| l.contains("\"none\" is not accepted"))
    });
    sigterm(&mut blink);
}
