//! Entry points for the fuzzers: each takes arbitrary bytes, runs them through one of the
//! parsers that face untrusted input, and checks what must hold of any input. None may panic,
//! hang or allocate beyond what its input can hold.
//!
//! They are driven two ways: by `tests/fuzz.rs` (part of the test suite: a bounded number of
//! mutations of the committed corpus in `fuzz/corpus/`, plus every crash found, kept as a
//! regression case in `fuzz/regressions/`), and by the coverage-guided targets in `fuzz/`
//! (`cargo fuzz run TARGET`, for long runs outside CI; see docs/security.md).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::kafka::Broker;
use crate::log::batch::{self, Batch};
use crate::log::{Log, LogConfig};
use crate::matcher::Matcher;
use crate::message::{Message, MessageView};
use crate::plugin::{PluginConfig, PluginKind};

/// The fuzz targets, by name (the names of `fuzz/corpus/` folders and `cargo fuzz` targets).
pub const TARGETS: &[&str] = &[
    "kafka_request",
    "heka_message",
    "record_batch",
    "matcher",
    "plugin_config",
    "blink_config",
    "sasl_exchange",
    "stream_frames",
    "json_document",
    "injection",
];

/// A broker over a log of its own, answering one frame at a time.
pub struct KafkaTarget {
    broker: Arc<Broker>,
    runtime: tokio::runtime::Runtime,
}

/// How long one request may take; a fetch or join that waits for more is cut off here.
const REQUEST_LIMIT: Duration = Duration::from_millis(20);

impl KafkaTarget {
    /// A broker whose log lives in `dir`.
    pub fn new(dir: &Path) -> Self {
        let log = Arc::new(Log::open(LogConfig::in_dir(dir)).expect("a log in a fresh directory"));
        let address = "127.0.0.1:9092".parse().expect("an address");
        let config = crate::config::KafkaConfig::default();
        let broker = Arc::new(Broker::new(config, address, log).expect("a broker"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        KafkaTarget { broker, runtime }
    }

    /// Answers `frame` (a request without its size prefix). An answer carries the request's
    /// correlation id.
    pub fn request(&self, frame: &[u8]) {
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(
                REQUEST_LIMIT,
                crate::kafka::answer(&self.broker, Bytes::copy_from_slice(frame)),
            )
            .await
        });
        if let Ok(Some(answer)) = answer
            && frame.len() >= 8
            && frame[..2] != [0, 18]
        {
            // ApiVersions may answer an unknown version with correlation id first as well.
            assert_eq!(
                answer[..4],
                frame[4..8],
                "an answer carries its correlation id"
            );
        }
    }
}

/// A Heka message: parsed, and if it parses, rebuilt and re-encoded to the same fields.
pub fn heka_message(data: &[u8]) {
    let Ok(view) = MessageView::parse(data) else {
        return;
    };
    let encoded = Message::from(&view).to_bytes();
    let again = MessageView::parse(&encoded).expect("an encoded message parses");
    // Bytes, not values: a NaN field is not equal to itself.
    assert_eq!(
        Message::from(&again).to_bytes(),
        encoded,
        "a re-encoded message reads the same"
    );
}

/// A record batch: verified, and if it verifies, its records read (decompressed if need be).
pub fn record_batch(data: &[u8]) {
    let Ok(header) = batch::verify(data) else {
        return;
    };
    let plain = match batch::decompressed(&header, data) {
        Ok(plain) => plain,
        Err(_) => return,
    };
    let Ok(header) = batch::verify(&plain) else {
        return;
    };
    let batch = Batch::new(header, Bytes::from(plain));
    if let Ok(records) = batch.records() {
        for record in records {
            let Ok(record) = record else { break };
            for (_key, _value) in record.headers() {}
        }
    }
}

/// A message matcher expression: compiled, and if it compiles, run on a message.
pub fn matcher(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(matcher) = Matcher::new(text) else {
        return;
    };
    let sample = sample_message();
    let view = MessageView::parse(&sample).expect("the sample parses");
    let _ = matcher.matches(&view);
}

/// A plugin's cfg file, for each kind.
pub fn plugin_config(data: &[u8]) {
    for kind in [PluginKind::Input, PluginKind::Analysis, PluginKind::Output] {
        let _ = PluginConfig::parse(kind, Path::new("hs_load/input/fuzz.cfg"), data);
    }
}

/// A SASL exchange on a listener offering every mechanism (see [`crate::kafka::sasl_exchange`]).
pub fn sasl_exchange(data: &[u8]) {
    crate::kafka::sasl_exchange(data);
}

/// A framed Heka stream (Hindsight's files) read by a plugin's stream reader.
pub fn stream_frames(data: &[u8]) {
    crate::sandbox::fuzz_stream_frames(data);
}

/// A JSON document for `rjson`: parsed, written back, checked against a schema.
pub fn json_document(data: &[u8]) {
    crate::sandbox::fuzz_json_document(data);
}

/// A request parameter for the `libinjection` module: SQL injection and XSS detection.
pub fn injection(data: &[u8]) {
    crate::sandbox::fuzz_injection(data);
}

/// Blink's own configuration file.
pub fn blink_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::Config::parse(text, Path::new("blink.toml"));
}

fn sample_message() -> Vec<u8> {
    use crate::message::{Field, FieldValues};
    let mut m = Message {
        uuid: [7; 16],
        timestamp: 1_700_000_000_000_000_000,
        r#type: Some(b"login".to_vec()),
        logger: Some(b"fuzz".to_vec()),
        severity: Some(6),
        payload: Some(b"user=alice".to_vec()),
        env_version: None,
        pid: Some(42),
        hostname: Some(b"host".to_vec()),
        fields: Vec::new(),
    };
    m.fields.push(Field {
        name: b"user".to_vec(),
        representation: None,
        values: FieldValues::String(vec![b"alice".to_vec()]),
    });
    m.fields.push(Field {
        name: b"n".to_vec(),
        representation: None,
        values: FieldValues::Double(vec![3.0]),
    });
    m.to_bytes()
}
