//! The global configuration, `cfg/blink.toml`.
//!
//! Every key is optional and has the default shown in the shipped file; option names are
//! Hindsight's where Hindsight has one (`output_path`, `output_size`, `max_message_size`,
//! `backpressure`, `hostname`, …) and Kafka's topic settings otherwise (`segment_ms`,
//! `retention_ms`, `retention_bytes`). Unknown keys are errors that name the file and the key,
//! because a misspelt durability setting silently ignored is worse than a refusal to start.
//! Relative paths resolve against the directory Blink is started in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::log::{BatchPolicy, FsyncPolicy, LogConfig};
use crate::plugin::{KindDefaults, PluginDefaults, PluginKind};

use serde::Deserialize;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// The global configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the log, checkpoints and stats live.
    pub output_path: PathBuf,
    /// Hot-load directory watched for new plugin files.
    pub sandbox_load_path: PathBuf,
    /// Directory of the running plugins' files.
    pub sandbox_run_path: PathBuf,
    /// Where `require` finds Lua modules: a directory, or a list searched in order.
    #[serde(deserialize_with = "one_or_many")]
    pub lua_path: Vec<PathBuf>,
    /// More module directories for input and output plugins only (Hindsight's
    /// `io_lua_path`): modules that do I/O, kept from analysis plugins.
    #[serde(deserialize_with = "one_or_many")]
    pub io_lua_path: Vec<PathBuf>,
    /// Where a cfg's `filename` is looked for (`<dir>/<kind>/<filename>`) when the plugin's
    /// directory in `sandbox_run_path` does not have it: Hindsight's `sandbox_install_path`,
    /// for plugins installed once and configured by many cfgs. Empty: nowhere else.
    pub sandbox_install_path: PathBuf,
    /// Keys every plugin of a kind gets when its cfg does not set them (Hindsight's).
    pub input_defaults: KindDefaults,
    pub analysis_defaults: KindDefaults,
    pub output_defaults: KindDefaults,
    /// Threads shared by the analysis plugins.
    pub analysis_threads: usize,
    /// Segment size in bytes: a segment rolls before it would grow past this.
    pub output_size: u64,
    /// Largest Heka message, in protobuf bytes, that may be injected.
    pub max_message_size: u32,
    /// Segments the slowest plugin reader may lag behind the end of `blink.input` before input
    /// plugins are slowed down; 0 turns backpressure off.
    pub backpressure: u64,
    /// Hostname stamped on messages; the machine's own when empty.
    pub hostname: String,
    pub fsync: FsyncPolicy,
    /// How often dirty segments are fsynced and checkpoints written under `fsync = "interval"`.
    pub fsync_interval_ms: u64,
    /// A segment also rolls once it is this old, so retention can remove old data.
    pub segment_ms: u64,
    /// Delete segments whose newest data is older than this; -1 keeps them.
    pub retention_ms: i64,
    /// Delete the oldest segments while a partition is larger than this; -1 means no limit.
    pub retention_bytes: i64,
    /// Bytes of each partition's newest data kept in the OS page cache; older data is written
    /// back and dropped from the cache, and dropped again after a reader reads it. -1 leaves
    /// the page cache to the kernel.
    pub page_cache_window: i64,
    /// Longest time an injected message waits to be written with others in one batch.
    pub linger_ms: u64,
    /// Messages per batch at most.
    pub batch_messages: usize,
    /// Bytes per batch at most.
    pub batch_bytes: usize,
    /// Partitions of all topics together, at most (Kafka clients create topics; each partition
    /// holds open files).
    pub max_partitions: usize,
    /// The Kafka protocol server (`[kafka]`).
    pub kafka: KafkaConfig,
    /// Where this configuration was read from, for error messages.
    #[serde(skip)]
    pub source: PathBuf,
}

/// `[kafka]`: the Kafka wire protocol server over the log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Address to listen on; empty turns the server off. Port 0 picks a free port (logged).
    pub listen: String,
    /// Host name or IPv4 address clients are told to connect to; empty = the listen address
    /// (127.0.0.1 when listening on all addresses).
    pub advertised_host: String,
    /// PEM certificate chain and private key: `listen` then speaks TLS. Both empty: plaintext.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// SASL mechanisms `listen` requires (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`); empty:
    /// no authentication.
    pub sasl_mechanisms: Vec<String>,
    /// More listeners (`[[kafka.listeners]]`), e.g. a TLS one for other hosts beside a
    /// plaintext one on loopback. They share everything but their address, TLS and SASL.
    pub listeners: Vec<ListenerConfig>,
    /// The users SASL knows (`[[kafka.users]]`), with SCRAM credentials, never passwords.
    pub users: Vec<UserConfig>,
    /// How OAUTHBEARER tokens (JWTs) are checked (`[kafka.oauthbearer]`).
    pub oauthbearer: OAuthBearerConfig,
    /// Principals (`User:name`) that may do what `admin_networks` may, from anywhere.
    pub admin_principals: Vec<String>,
    /// Who may do what to which topic or group (`[[kafka.acls]]`). None: producing and
    /// consuming are open to every client, administration to administrators only; with any,
    /// every operation needs an ACL allowing it (docs/security.md).
    pub acls: Vec<AclConfig>,
    /// Create a topic a client asks for (Metadata or Produce) if it does not exist.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic.
    pub default_partitions: u32,
    /// Largest request frame accepted; a larger one closes its connection.
    pub max_request_bytes: usize,
    /// Connections served at once; more are closed at once (and logged).
    pub max_connections: usize,
    /// Connections served at once from one IP address (Kafka's `max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Networks (`a.b.c.d/n`, `x::y/n`) whose clients may create topics and partitions
    /// explicitly, delete topics and consumer groups, and change topic settings; everyone
    /// else gets an authorisation error for those (docs/security.md).
    pub admin_networks: Vec<String>,
    /// A connection with no request for this long is closed (Kafka's
    /// `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Once a request's first byte has arrived, the rest must arrive within this long, or the
    /// connection is closed: a client trickling bytes cannot hold a slot forever.
    pub request_read_timeout_ms: u64,
    /// An authenticated session lasts at most this long; the client authenticates again on
    /// the same connection before it ends (Kafka's `connections.max.reauth.ms`, KIP-368), so a
    /// removed user or a revoked token loses access within it. 0: sessions last as long as
    /// their connection (a token's: until it expires).
    pub connections_max_reauth_ms: u64,
    /// How long a new consumer group's first rebalance waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`), so consumers started together share one generation.
    pub group_initial_rebalance_delay_ms: u64,
}

/// One more Kafka listener.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    pub listen: String,
    pub advertised_host: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub sasl_mechanisms: Vec<String>,
}

/// A SASL user: a name and its SCRAM credentials (`iterations:salt:stored_key:server_key`,
/// made by `blink credential`); either may be empty, not both.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    pub name: String,
    pub scram_sha256: String,
    pub scram_sha512: String,
}

/// One ACL: `principal` may (or, with `permission = "deny"`, may not) do `operations` to the
/// topic, group or cluster named, from `hosts` (networks; empty: anywhere).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// `User:name`, or `User:*` for every principal (`User:ANONYMOUS` without SASL).
    pub principal: String,
    /// The resource: a topic name, a group name, or the cluster; exactly one.
    pub topic: String,
    pub group: String,
    pub cluster: bool,
    /// `literal` (the default) or `prefixed`; the name `*` matches every name.
    pub pattern: String,
    /// `read`, `write`, `create`, `delete`, `alter`, `describe`, `all`.
    pub operations: Vec<String>,
    /// `allow` (the default) or `deny`; a deny wins over any allow.
    pub permission: String,
    pub hosts: Vec<String>,
}

/// `[kafka.oauthbearer]`: the identity provider whose JWTs SASL/OAUTHBEARER accepts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthBearerConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry (or list).
    pub audience: String,
    /// The shared secret of HS256 tokens ("": HS256 tokens are refused).
    pub hs256_secret: String,
    /// PEM files with the RSA public keys of RS256 tokens; every one is tried (key rotation).
    pub rs256_public_keys: Vec<PathBuf>,
    /// The claim naming the principal (`User:` + its value).
    pub principal_claim: String,
    /// How far clocks may disagree when `exp` and `nbf` are checked.
    pub clock_skew_s: u64,
}

impl Default for OAuthBearerConfig {
    fn default() -> Self {
        OAuthBearerConfig {
            issuer: String::new(),
            audience: String::new(),
            hs256_secret: String::new(),
            rs256_public_keys: Vec::new(),
            principal_claim: "sub".into(),
            clock_skew_s: 30,
        }
    }
}

/// The SASL mechanisms Blink serves.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

impl KafkaConfig {
    /// Every listener, `listen` first; none when `listen` is empty (the server is off).
    pub fn all_listeners(&self) -> Vec<ListenerConfig> {
        if self.listen.is_empty() {
            return Vec::new();
        }
        let main = ListenerConfig {
            listen: self.listen.clone(),
            advertised_host: self.advertised_host.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            sasl_mechanisms: self.sasl_mechanisms.clone(),
        };
        std::iter::once(main)
            .chain(self.listeners.iter().cloned())
            .collect()
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            listen: "127.0.0.1:9092".into(),
            advertised_host: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            sasl_mechanisms: Vec::new(),
            listeners: Vec::new(),
            users: Vec::new(),
            oauthbearer: OAuthBearerConfig::default(),
            admin_principals: Vec::new(),
            acls: Vec::new(),
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 << 20,
            max_connections: 1024,
            max_connections_per_ip: 256,
            admin_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            connections_max_idle_ms: 600_000,
            request_read_timeout_ms: 30_000,
            connections_max_reauth_ms: 0,
            group_initial_rebalance_delay_ms: 3000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            output_path: "data".into(),
            sandbox_load_path: "hs_load".into(),
            sandbox_run_path: "hs_run".into(),
            lua_path: vec!["lua_modules".into()],
            io_lua_path: Vec::new(),
            sandbox_install_path: PathBuf::new(),
            input_defaults: KindDefaults::default(),
            analysis_defaults: KindDefaults::default(),
            output_defaults: KindDefaults::default(),
            analysis_threads: 1,
            output_size: 64 << 20,
            max_message_size: 64 << 10,
            backpressure: 0,
            hostname: String::new(),
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
            segment_ms: 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            page_cache_window: 64 << 20,
            linger_ms: 1,
            batch_messages: 4096,
            batch_bytes: 1 << 20,
            max_partitions: 10_000,
            kafka: KafkaConfig::default(),
            source: PathBuf::from("<defaults>"),
        }
    }
}

impl Config {
    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.source = path.to_owned();
        config.validate()?;
        if config.hostname.is_empty() {
            config.hostname = system_hostname();
        }
        Ok(config)
    }

    /// The `[<kind>_defaults]` tables, checked when the config was loaded.
    pub fn plugin_defaults(&self) -> Result<PluginDefaults, ConfigError> {
        let of = |key: &'static str, kind, table: &KindDefaults| {
            table.values(kind).map_err(|message| ConfigError::Invalid {
                path: self.source.clone(),
                key,
                message,
            })
        };
        Ok(PluginDefaults::new(
            of("input_defaults", PluginKind::Input, &self.input_defaults)?,
            of(
                "analysis_defaults",
                PluginKind::Analysis,
                &self.analysis_defaults,
            )?,
            of("output_defaults", PluginKind::Output, &self.output_defaults)?,
        ))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.plugin_defaults()?;
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                path: self.source.clone(),
                key,
                message: message.into(),
            })
        };
        // Index entries hold 32-bit positions, and a batch must fit a segment.
        if self.output_size < 1024 || self.output_size > i32::MAX as u64 {
            return invalid("output_size", "must be between 1024 and 2147483647 bytes");
        }
        if self.max_partitions < 2 {
            return invalid("max_partitions", "must be at least 2 (Blink's two queues)");
        }
        if self.max_message_size < 64 {
            return invalid("max_message_size", "must be at least 64 bytes");
        }
        if self.max_message_size as u64 + 1024 > self.output_size {
            return invalid(
                "max_message_size",
                "must be smaller than output_size by 1 KiB or more",
            );
        }
        if self.analysis_threads == 0 || self.analysis_threads > 64 {
            return invalid("analysis_threads", "must be between 1 and 64");
        }
        if self.fsync_interval_ms == 0 {
            return invalid("fsync_interval_ms", "must be at least 1");
        }
        if self.segment_ms == 0 {
            return invalid("segment_ms", "must be at least 1");
        }
        if self.retention_ms < -1 || self.retention_ms == 0 {
            return invalid(
                "retention_ms",
                "must be -1 (keep) or a positive number of milliseconds",
            );
        }
        if self.retention_bytes < -1 || self.retention_bytes == 0 {
            return invalid(
                "retention_bytes",
                "must be -1 (no limit) or a positive number of bytes",
            );
        }
        if self.page_cache_window < -1 {
            return invalid(
                "page_cache_window",
                "must be -1 (leave the page cache to the kernel) or a number of bytes",
            );
        }
        if self.batch_messages == 0 {
            return invalid("batch_messages", "must be at least 1");
        }
        let kafka = &self.kafka;
        if !kafka.listen.is_empty() && kafka.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid(
                "kafka.listen",
                "must be an IP address and port, like \"127.0.0.1:9092\", or \"\" for no server",
            );
        }
        for (i, l) in kafka.listeners.iter().enumerate() {
            if l.listen.parse::<std::net::SocketAddr>().is_err() {
                return invalid(
                    "kafka.listeners",
                    &format!("listener {}: listen must be an IP address and port", i + 1),
                );
            }
        }
        for l in kafka.all_listeners() {
            if let Some(m) = l
                .sasl_mechanisms
                .iter()
                .find(|m| !SASL_MECHANISMS.contains(&m.as_str()))
            {
                return invalid(
                    "kafka.sasl_mechanisms",
                    &format!("{m:?} is not one of {SASL_MECHANISMS:?}"),
                );
            }
            let by_password = l.sasl_mechanisms.iter().any(|m| m != "OAUTHBEARER");
            if by_password && kafka.users.is_empty() {
                return invalid(
                    "kafka.users",
                    &format!(
                        "the listener on {} offers {} but no user is configured",
                        l.listen,
                        l.sasl_mechanisms.join(", ")
                    ),
                );
            }
            let by_token = l.sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER");
            if by_token && kafka.oauthbearer.issuer.is_empty() {
                return invalid(
                    "kafka.oauthbearer",
                    &format!(
                        "the listener on {} offers OAUTHBEARER but [kafka.oauthbearer] names no \
                         issuer",
                        l.listen
                    ),
                );
            }
            if l.tls_cert.as_os_str().is_empty() != l.tls_key.as_os_str().is_empty() {
                return invalid(
                    "kafka.tls_cert",
                    &format!(
                        "the listener on {} needs both tls_cert and tls_key, or neither",
                        l.listen
                    ),
                );
            }
        }
        if kafka.default_partitions == 0 || kafka.default_partitions > 10_000 {
            return invalid("kafka.default_partitions", "must be between 1 and 10000");
        }
        if kafka.max_request_bytes < 1024 {
            return invalid("kafka.max_request_bytes", "must be at least 1024");
        }
        if kafka.max_connections == 0 {
            return invalid("kafka.max_connections", "must be at least 1");
        }
        if kafka.max_connections_per_ip == 0 {
            return invalid("kafka.max_connections_per_ip", "must be at least 1");
        }
        if kafka.connections_max_idle_ms < 1000 {
            return invalid("kafka.connections_max_idle_ms", "must be at least 1000");
        }
        if kafka.connections_max_reauth_ms != 0 && kafka.connections_max_reauth_ms < 1000 {
            return invalid(
                "kafka.connections_max_reauth_ms",
                "must be 0 (sessions last as long as their connection) or at least 1000",
            );
        }
        if kafka.request_read_timeout_ms < 100 {
            return invalid("kafka.request_read_timeout_ms", "must be at least 100");
        }
        if kafka.group_initial_rebalance_delay_ms > 300_000 {
            return invalid(
                "kafka.group_initial_rebalance_delay_ms",
                "must be at most 300000 (five minutes)",
            );
        }
        Ok(())
    }

    /// The settings the log needs.
    pub fn log(&self) -> LogConfig {
        LogConfig {
            dir: self.output_path.clone(),
            segment_bytes: self.output_size,
            segment_age: Duration::from_millis(self.segment_ms),
            fsync: self.fsync,
            retention_age: u64::try_from(self.retention_ms)
                .ok()
                .map(Duration::from_millis),
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
            page_cache_window: u64::try_from(self.page_cache_window).ok(),
            max_message_size: self.max_message_size as usize,
            batch: BatchPolicy {
                max_messages: self.batch_messages,
                // A batch holds at least one message of the largest size (a Hindsight config
                // raising max_message_size need not know batch_bytes), and fits in a segment.
                max_bytes: self
                    .batch_bytes
                    .max(self.max_message_size as usize)
                    .min(self.output_size as usize - 512),
                linger: Duration::from_millis(self.linger_ms),
            },
            max_partitions: self.max_partitions,
        }
    }
}

/// The machine's hostname, as Hindsight stamps it on messages.
/// A path, or a list of paths (`lua_path = "lua_modules"` or `lua_path = ["a", "b"]`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("cfg/test.toml"))
    }

    #[test]
    fn listeners_tls_and_sasl_are_checked() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let e = err("[kafka]\nsasl_mechanisms = [\"GSSAPI\"]\n");
        assert!(
            e.contains("kafka.sasl_mechanisms") && e.contains("GSSAPI"),
            "{e}"
        );
        let e = err("[kafka]\nsasl_mechanisms = [\"PLAIN\"]\n");
        assert!(e.contains("kafka.users") && e.contains("no user"), "{e}");
        let e = err("[kafka]\nsasl_mechanisms = [\"OAUTHBEARER\"]\n");
        assert!(
            e.contains("kafka.oauthbearer") && e.contains("issuer"),
            "{e}"
        );
        // Tokens alone need no users.
        parse(
            "[kafka]\nsasl_mechanisms = [\"OAUTHBEARER\"]\n\
             [kafka.oauthbearer]\nissuer = \"i\"\naudience = \"a\"\n",
        )
        .unwrap();
        let e = err("[kafka]\ntls_cert = \"a.pem\"\n");
        assert!(e.contains("tls_cert") && e.contains("both"), "{e}");
        let e = err("[kafka]\n[[kafka.listeners]]\nlisten = \"nowhere\"\n");
        assert!(
            e.contains("kafka.listeners") && e.contains("listener 1"),
            "{e}"
        );
        let c = parse(
            "[kafka]\nsasl_mechanisms = [\"SCRAM-SHA-256\"]\n\
             [[kafka.users]]\nname = \"a\"\nscram_sha256 = \"x\"\n\
             [[kafka.listeners]]\nlisten = \"127.0.0.1:9093\"\n",
        )
        .unwrap();
        let all = c.kafka.all_listeners();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].sasl_mechanisms, ["SCRAM-SHA-256"]);
        assert!(all[1].sasl_mechanisms.is_empty());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.output_path, Path::new("data"));
        assert_eq!(c.output_size, 67108864);
        assert_eq!(c.max_message_size, 65536);
        assert_eq!(c.fsync, FsyncPolicy::Interval);
        assert!(!c.hostname.is_empty());
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse("output_path = 'x'\nfsink = 'always'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cfg/test.toml"), "{err}");
        assert!(err.contains("fsink"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_values_name_the_key() {
        let err = parse("output_size = 'big'").unwrap_err().to_string();
        assert!(err.contains("output_size"), "{err}");
        let err = parse("fsync = 'sometimes'").unwrap_err().to_string();
        assert!(err.contains("fsync") && err.contains("sometimes"), "{err}");
        let err = parse("output_size = 10").unwrap_err().to_string();
        assert!(err.contains("`output_size`"), "{err}");
        let err = parse("retention_ms = 0").unwrap_err().to_string();
        assert!(err.contains("`retention_ms`"), "{err}");
        let err = parse("page_cache_window = -2").unwrap_err().to_string();
        assert!(err.contains("`page_cache_window`"), "{err}");
    }

    #[test]
    fn page_cache_window_of_minus_one_leaves_the_cache_to_the_kernel() {
        assert_eq!(parse("").unwrap().log().page_cache_window, Some(64 << 20));
        let c = parse("page_cache_window = -1").unwrap();
        assert_eq!(c.log().page_cache_window, None);
        let c = parse("page_cache_window = 0").unwrap();
        assert_eq!(c.log().page_cache_window, Some(0));
    }

    #[test]
    fn the_logs_own_defaults_are_the_configs() {
        let defaults = Config {
            output_path: "somewhere".into(),
            ..Config::default()
        };
        assert_eq!(defaults.log(), LogConfig::in_dir("somewhere"));
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfg/blink.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.log().retention_bytes, None);
    }
}
