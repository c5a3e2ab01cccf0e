//! Running real Kafka clients against the binary: the test venv's Python (kafka-python,
//! confluent-kafka), kcat, raw frames, TLS certificates and SASL credentials for tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{Blink, Workspace};

/// The Python with kafka-python and confluent-kafka (`./scripts/test` makes it).
pub fn python() -> String {
    let python = std::env::var("BLINK_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-venv/bin/python").into()
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run ./scripts/test, which installs the Kafka clients the tests use"
    );
    python
}

pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn kcat(blink: &Blink) -> Command {
    let mut command = Command::new("kcat");
    command.args(["-b", &blink.1]);
    command
}

/// Runs a Python script with the broker address as its first argument; its stdout.
pub fn py(w: &Workspace, blink: &Blink, script: &str) -> String {
    py_args(w, script, &[&blink.1])
}

/// [`py`] with arguments of the test's choosing.
pub fn py_args(w: &Workspace, script: &str, args: &[&str]) -> String {
    let path = w.file("script.py");
    std::fs::write(&path, script).unwrap();
    let output = run(Command::new(python()).arg(&path).args(args));
    String::from_utf8(output.stdout).unwrap()
}

/// Sends one raw frame and reads the answer, if any (`None`: the connection was closed).
pub fn exchange(address: &str, frame: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(frame).ok()?;
    // Nothing more will come: a truncated frame then ends at once rather than by a timeout.
    stream.shutdown(std::net::Shutdown::Write).ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost: (ca.pem,
/// server.pem, server.key) in `dir`.
pub fn test_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Blink test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "blink");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// `blink credential USER` with `password` on stdin: the `[[kafka.users]]` entry.
pub fn credential(user: &str, password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blink"))
        .args(["credential", user, "--iterations", "4096"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let entry = String::from_utf8(out.stdout).unwrap();
    assert!(!entry.contains(password), "the password is not kept");
    entry
}

/// Produces `key:value` lines with kcat, compressed with `codec`.
pub fn produce_lines(blink: &Blink, topic: &str, codec: &str, lines: &[String]) {
    let mut child = kcat(blink)
        .args(["-P", "-t", topic, "-z", codec, "-K", ":"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "kcat -P -z {codec} failed");
}

/// A JWT with `claims`, signed HS256 with `secret` or RS256 with the test key
/// `tests/fixtures/jwt/{rsa_key}.pk8` (`secret` empty).
pub fn jwt(secret: &str, rsa_key: &str, claims: &serde_json::Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use ring::{hmac, signature};
    let alg = if secret.is_empty() { "RS256" } else { "HS256" };
    let input = format!(
        "{}.{}",
        B64URL.encode(serde_json::json!({"alg": alg, "typ": "JWT"}).to_string()),
        B64URL.encode(claims.to_string())
    );
    let signature = if secret.is_empty() {
        let path = format!(
            "{}/tests/fixtures/jwt/{rsa_key}.pk8",
            env!("CARGO_MANIFEST_DIR")
        );
        let key = signature::RsaKeyPair::from_pkcs8(&std::fs::read(path).unwrap()).unwrap();
        let mut out = vec![0; key.public().modulus_len()];
        key.sign(
            &signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut out,
        )
        .unwrap();
        out
    } else {
        hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            input.as_bytes(),
        )
        .as_ref()
        .to_vec()
    };
    format!("{input}.{}", B64URL.encode(signature))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A Produce v7 request of one batch to partition 0 of `topic`, framed.
pub fn produce_frame(topic: &str, batch: Vec<u8>) -> Vec<u8> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes::Bytes::from(batch))),
                ]),
        ]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(7)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("garbage-producer")));
    let mut body = bytes::BytesMut::new();
    header
        .encode(&mut body, ApiKey::Produce.request_header_version(7))
        .unwrap();
    request.encode(&mut body, 7).unwrap();
    frame(&body)
}

/// The (error code, base offset) of a produce answer for one partition.
pub fn produced(answer: &[u8]) -> (i16, i64) {
    use kafka_protocol::protocol::Decodable;
    let mut body = bytes::Bytes::from(answer[4..].to_vec()); // after the correlation id
    let response = kafka_protocol::messages::ProduceResponse::decode(&mut body, 7).unwrap();
    let stored = &response.responses[0].partition_responses[0];
    (stored.error_code, stored.base_offset)
}
