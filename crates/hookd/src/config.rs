//! Server configuration: defaults, then a TOML file (`--config`), then `HOOKD_*` environment variables,
//! then command-line flags; later sources win. Unknown keys in the file are an error naming the key.

use crate::store::sqlite::Synchronous;
use crate::ui::brand::{Brand, BrandSettings};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use hookd_core::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every option hookd reads. README.md documents each one; keep the two in step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory holding the SQLite database (created on first start).
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://` or `postgresql://`): use that database instead of SQLite, so
    /// that several nodes can share it. Unset: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// PostgreSQL connection pool size of this node.
    pub database_max_connections: u32,
    /// Development mode: plain-http and loopback/private endpoint URLs are allowed.
    pub dev: bool,
    /// Allow plain `http://` endpoint URLs outside development mode.
    pub allow_http: bool,
    /// An API key accepted in addition to the stored ones; when set, no admin key is generated.
    pub api_key: Option<String>,
    /// Largest accepted `data` payload of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Refuse to publish event types that are not in the catalog (422).
    pub strict_event_types: bool,
    /// SQLite durability: `full` (default), `normal` or `extra`.
    pub sqlite_synchronous: Synchronous,
    /// SQLite connection pool size (reads and non-publish writes).
    pub sqlite_max_connections: u32,
    /// How long SQLite waits for a lock before the request fails with 503, in milliseconds.
    pub sqlite_busy_timeout_ms: u64,
    /// Log filter in `tracing` syntax (e.g. `info`, `hookd=debug`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// What this process runs: the HTTP API, the delivery worker, or both.
    pub role: Role,
    /// Per-attempt timeout when the subscription sets none, in ms.
    pub delivery_timeout_ms: u64,
    /// TCP/TLS connect timeout, in ms.
    pub connect_timeout_ms: u64,
    /// Delivery requests in flight at once, all endpoints together.
    pub max_in_flight: usize,
    /// Delivery requests in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Deliveries leased ahead of a free request slot, all endpoints together (0: none).
    pub prefetch: usize,
    /// Most bytes of event data and request bodies the delivery worker holds at once, leased
    /// ahead and in flight; a single larger event is still sent, alone.
    pub worker_memory_budget_bytes: u64,
    /// Retry policy when the subscription sets none (TOML table `[retry]`); unset means the
    /// original webhook specification's policy (5 attempts, 2 s doubling). An `Option` so that a
    /// file's table replaces the default instead of being merged into it.
    pub retry: Option<RetryPolicy>,
    /// Consecutive dead deliveries after which a subscription is disabled.
    pub disable_after_failures: i64,
    /// Lease = request timeout + this margin, in ms; an expired lease is retried by any worker.
    pub lease_margin_ms: u64,
    /// Longest idle sleep of the worker between looks at the queue, in ms.
    pub poll_interval_ms: u64,
    /// How often expired leases are returned to the queue, in ms.
    pub rescue_interval_ms: u64,
    /// How often a worker node renews its heartbeat, in ms.
    pub heartbeat_interval_ms: u64,
    /// A node whose heartbeat is older than this is dead: its leases return to the queue, in ms.
    pub node_timeout_ms: u64,
    /// On SIGTERM, how long in-flight deliveries may finish before their leases are released, in ms.
    pub shutdown_grace_ms: u64,
    /// Serve `/metrics` without an API key.
    pub public_metrics: bool,
    /// Base64 of the 32-byte key sealing subscription secrets at rest; default: `<data_dir>/master.key`.
    pub master_key: Option<String>,
    /// Failed authentications allowed per client address per minute before answering 429.
    pub auth_failures_per_minute: u32,
    /// Non-public networks deliveries may reach anyway (CIDRs or addresses, e.g. `10.1.0.0/16`).
    pub allow_targets: Vec<String>,
    /// Origins that may show the subscriber portal in a frame (CSP `frame-ancestors`), e.g.
    /// `https://app.example.com`. Empty: no framing.
    pub portal_frame_ancestors: Vec<String>,
    /// Logo in the dashboard and portal header: an `https://` URL or a path on this server.
    pub portal_logo_url: Option<String>,
    /// Accent colour of the dashboard and portal, `#rrggbb`.
    pub accent_color: Option<String>,
    /// Where users reach hookd (`https://hooks.example.com`): the base of absolute portal links.
    pub public_url: Option<String>,
    /// Open client connections at most (capped at half the open-file limit); beyond it a new
    /// connection is answered 503 and closed.
    pub http_max_connections: usize,
    /// A request's headers must arrive within this time of the connection being ready for them, in ms.
    pub http_header_timeout_ms: u64,
    /// A connection that moves no byte for this long is closed (after its request, if any), in ms.
    pub http_idle_timeout_ms: u64,
    /// A request's body must arrive within this time of its headers, in ms (408 otherwise).
    pub http_body_timeout_ms: u64,
    /// How long delivered deliveries are kept, with their attempts and events (once every
    /// delivery of an event is finished and expired), in ms. Unset: forever.
    pub retention_delivered_ms: Option<u64>,
    /// How long dead letters are kept, in ms. Unset: forever.
    pub retention_dead_ms: Option<u64>,
    /// How long attempts keep their response excerpt and headers, in ms. Unset: forever.
    pub retention_excerpts_ms: Option<u64>,
    /// How often the retention purge runs, in ms.
    pub retention_interval_ms: u64,
}

/// Which parts of hookd a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The HTTP API only (plus health and metrics).
    Api,
    /// The delivery worker only (plus health and metrics).
    Worker,
    /// Both.
    #[default]
    All,
}

impl Role {
    pub fn runs_api(self) -> bool {
        matches!(self, Self::Api | Self::All)
    }

    pub fn runs_worker(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("hookd-data"),
            database_url: None,
            database_max_connections: 16,
            dev: false,
            allow_http: false,
            api_key: None,
            max_payload_bytes: 256 * 1024,
            strict_event_types: false,
            sqlite_synchronous: Synchronous::Full,
            sqlite_max_connections: 8,
            sqlite_busy_timeout_ms: 5_000,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            role: Role::All,
            delivery_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            max_in_flight: 256,
            max_in_flight_per_endpoint: 16,
            prefetch: 1024,
            worker_memory_budget_bytes: 32 * 1024 * 1024,
            retry: None,
            disable_after_failures: 10,
            lease_margin_ms: 30_000,
            poll_interval_ms: 1_000,
            rescue_interval_ms: 5_000,
            heartbeat_interval_ms: 2_000,
            node_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
            public_metrics: false,
            allow_targets: Vec::new(),
            master_key: None,
            auth_failures_per_minute: crate::auth::AUTH_FAILURES_PER_MINUTE,
            portal_frame_ancestors: Vec::new(),
            portal_logo_url: None,
            accent_color: None,
            public_url: None,
            http_max_connections: 1024,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 5_000,
            http_body_timeout_ms: 60_000,
            retention_delivered_ms: None,
            retention_dead_ms: None,
            retention_excerpts_ms: None,
            retention_interval_ms: 60_000,
        }
    }
}

/// The `HOOKD_*` variables that map onto config keys (other `HOOKD_*` variables, such as the CLI's
/// `HOOKD_URL`, are not configuration and are ignored here).
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "database_max_connections",
    "dev",
    "allow_http",
    "api_key",
    "max_payload_bytes",
    "strict_event_types",
    "sqlite_synchronous",
    "sqlite_max_connections",
    "sqlite_busy_timeout_ms",
    "log_level",
    "log_format",
    "role",
    "delivery_timeout_ms",
    "connect_timeout_ms",
    "max_in_flight",
    "max_in_flight_per_endpoint",
    "prefetch",
    "worker_memory_budget_bytes",
    "disable_after_failures",
    "lease_margin_ms",
    "poll_interval_ms",
    "rescue_interval_ms",
    "heartbeat_interval_ms",
    "node_timeout_ms",
    "shutdown_grace_ms",
    "public_metrics",
    "auth_failures_per_minute",
    "master_key",
    "portal_logo_url",
    "accent_color",
    "public_url",
    "http_max_connections",
    "http_header_timeout_ms",
    "http_idle_timeout_ms",
    "http_body_timeout_ms",
    "retention_delivered_ms",
    "retention_dead_ms",
    "retention_excerpts_ms",
    "retention_interval_ms",
];

/// Values given as command-line flags; `None` means "not given".
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl Config {
    /// Resolves the configuration from all sources. `env` is the process environment, passed in so
    /// that tests can supply their own.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: FlagOverrides,
    ) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env_values: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("HOOKD_")?.to_ascii_lowercase();
                ENV_KEYS.contains(&key.as_str()).then_some((key, v))
            })
            .collect();
        for (key, value) in env_values {
            figment = figment.merge(Serialized::global(&key, parse_env_value(&key, &value)));
        }
        figment = figment.merge(Serialized::globals(flags));
        let config: Config = figment.extract().map_err(|e| describe(&e))?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks that serde cannot express.
    fn validate(&self) -> Result<(), String> {
        self.retry_policy()
            .validate()
            .map_err(|e| format!("retry: {e}"))?;
        if !(1_000..=60_000).contains(&self.delivery_timeout_ms) {
            return Err("delivery_timeout_ms: must be 1000 to 60000".into());
        }
        if self.heartbeat_interval_ms < 100 || self.node_timeout_ms < 3 * self.heartbeat_interval_ms
        {
            return Err(format!(
                "node_timeout_ms ({}) must be at least three heartbeat intervals \
                 (heartbeat_interval_ms: {}, at least 100)",
                self.node_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight_per_endpoint == 0 {
            return Err("max_in_flight and max_in_flight_per_endpoint must be at least 1".into());
        }
        hookd_core::TargetPolicy::parse_networks(&self.allow_targets)
            .map_err(|e| format!("allow_targets: {e}"))?;
        if self.disable_after_failures < 1 {
            return Err("disable_after_failures: must be at least 1".into());
        }
        if let Some(url) = &self.database_url {
            check_database_url(url)?;
        }
        if self.database_max_connections == 0 {
            return Err("database_max_connections: must be at least 1".into());
        }
        self.brand()?;
        self.check_retention()?;
        if self.http_max_connections == 0 {
            return Err("http_max_connections: must be at least 1".into());
        }
        for (key, value) in [
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_idle_timeout_ms", self.http_idle_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&value) {
                return Err(format!("{key}: must be 100 to 3600000"));
            }
        }
        Ok(())
    }

    /// Each retention is at least 1 ms and at least the default retry policy's longest schedule;
    /// the purge runs every 0.1 s to 1 day.
    fn check_retention(&self) -> Result<(), String> {
        for (key, value) in [
            ("retention_delivered_ms", self.retention_delivered_ms),
            ("retention_dead_ms", self.retention_dead_ms),
            ("retention_excerpts_ms", self.retention_excerpts_ms),
        ] {
            if value == Some(0) {
                return Err(format!("{key}: must be at least 1 (unset keeps forever)"));
            }
        }
        if !(100..=86_400_000).contains(&self.retention_interval_ms) {
            return Err("retention_interval_ms: must be 100 to 86400000".into());
        }
        self.retention()
            .check_retry_policy(&self.retry_policy(), "the default retry policy")
    }

    /// The retention in force.
    pub fn retention(&self) -> crate::retention::RetentionSettings {
        crate::retention::RetentionSettings {
            delivered_ms: self.retention_delivered_ms,
            dead_ms: self.retention_dead_ms,
            excerpts_ms: self.retention_excerpts_ms,
            interval: std::time::Duration::from_millis(self.retention_interval_ms),
        }
    }

    /// The dashboard's and portal's look, checked (each value ends up in a header or a stylesheet).
    pub fn brand(&self) -> Result<Brand, String> {
        Brand::parse(BrandSettings {
            portal_logo_url: self.portal_logo_url.as_deref(),
            accent_color: self.accent_color.as_deref(),
            portal_frame_ancestors: &self.portal_frame_ancestors,
            public_url: self.public_url.as_deref(),
        })
    }

    /// Where deliveries may connect: public addresses, `allow_targets`, anything in `--dev`.
    pub fn target_policy(&self) -> hookd_core::TargetPolicy {
        hookd_core::TargetPolicy {
            allow_non_public: self.dev,
            // Validated in `validate`, so nothing is dropped here.
            allowed_networks: hookd_core::TargetPolicy::parse_networks(&self.allow_targets)
                .unwrap_or_default(),
        }
    }

    /// The server-wide default retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.clone().unwrap_or_default()
    }

    /// The HTTP listener's limits on connections (before the cap to the open-file limit).
    pub fn connection_limits(&self) -> crate::listener::ConnectionLimits {
        let ms = std::time::Duration::from_millis;
        crate::listener::ConnectionLimits {
            max_connections: self.http_max_connections,
            header_read_timeout: ms(self.http_header_timeout_ms),
            idle_timeout: ms(self.http_idle_timeout_ms),
            request_body_timeout: ms(self.http_body_timeout_ms),
        }
    }

    /// The delivery worker's settings.
    pub fn worker_config(&self, owner: String) -> crate::worker::WorkerConfig {
        let ms = std::time::Duration::from_millis;
        crate::worker::WorkerConfig {
            owner,
            default_timeout: ms(self.delivery_timeout_ms),
            connect_timeout: ms(self.connect_timeout_ms),
            max_in_flight: self.max_in_flight,
            max_in_flight_per_subscription: self.max_in_flight_per_endpoint,
            prefetch: self.prefetch,
            memory_budget_bytes: self.worker_memory_budget_bytes,
            default_retry: self.retry_policy(),
            disable_after_failures: self.disable_after_failures,
            lease_margin: ms(self.lease_margin_ms),
            poll_interval: ms(self.poll_interval_ms.max(1)),
            rescue_interval: ms(self.rescue_interval_ms.max(1)),
            heartbeat_interval: ms(self.heartbeat_interval_ms),
            node_timeout: ms(self.node_timeout_ms),
            role: format!("{:?}", self.role).to_lowercase(),
            shutdown_grace: ms(self.shutdown_grace_ms),
            targets: self.target_policy(),
            ..crate::worker::WorkerConfig::new(String::new())
        }
    }

    pub fn sqlite_options(&self) -> crate::store::sqlite::SqliteOptions {
        crate::store::sqlite::SqliteOptions {
            path: self.database_path(),
            synchronous: self.sqlite_synchronous,
            max_connections: self.sqlite_max_connections,
            busy_timeout: std::time::Duration::from_millis(self.sqlite_busy_timeout_ms),
        }
    }

    /// The SQLite database file inside the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("hookd.db")
    }

    /// The PostgreSQL settings, when `database_url` is set.
    pub fn postgres_options(&self) -> Option<crate::store::postgres::PgOptions> {
        let url = self.database_url.clone()?;
        Some(crate::store::postgres::PgOptions {
            url,
            max_connections: self.database_max_connections,
        })
    }

    /// Which database this configuration uses, for messages and logs (never the password).
    pub fn store_description(&self) -> String {
        let Some(url) = &self.database_url else {
            return format!("SQLite {}", self.database_path().display());
        };
        match url.parse::<sqlx::postgres::PgConnectOptions>() {
            Ok(options) => format!(
                "PostgreSQL {}@{}:{}/{}",
                options.get_username(),
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or(options.get_username())
            ),
            Err(_) => "PostgreSQL (unparsable URL)".into(),
        }
    }

    /// Plain http allowed for endpoint URLs.
    pub fn allows_http(&self) -> bool {
        self.dev || self.allow_http
    }
}

/// `database_url` must name PostgreSQL; SQLite is what an unset `database_url` means. The URL is not
/// repeated in the error: it may hold a password.
pub fn check_database_url(url: &str) -> Result<(), String> {
    match url.starts_with("postgres://") || url.starts_with("postgresql://") {
        true => Ok(()),
        false => Err("database_url: must be a postgres:// or postgresql:// URL \
                      (leave it unset to use SQLite in data_dir)"
            .into()),
    }
}

/// Environment values are strings; let `true`, numbers and the like become typed values so that the
/// same parsing applies as in the TOML file.
fn parse_env_value(key: &str, raw: &str) -> figment::value::Value {
    // Keys whose values are text stay text even when they look like numbers (`HOOKD_API_KEY=123`).
    const TEXT_KEYS: &[&str] = &[
        "listen",
        "data_dir",
        "api_key",
        "database_url",
        "log_level",
        "master_key",
        "portal_logo_url",
        "accent_color",
        "public_url",
    ];
    if TEXT_KEYS.contains(&key) {
        return figment::value::Value::from(raw.to_owned());
    }
    match raw.parse::<figment::value::Value>() {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn zero_config_defaults() {
        let config = Config::load(None, env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_path(), PathBuf::from("hookd-data/hookd.db"));
        assert_eq!(config.sqlite_synchronous, Synchronous::Full);
        assert!(!config.dev);
    }

    #[test]
    fn file_then_env_then_flags() {
        let file = toml_file(
            "listen = \"127.0.0.1:1001\"\ndata_dir = \"/from/file\"\nmax_payload_bytes = 1000\n\
             strict_event_types = true\nsqlite_synchronous = \"normal\"\n",
        );
        let from_file =
            Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(from_file.listen.port(), 1001);
        assert_eq!(from_file.data_dir, PathBuf::from("/from/file"));
        assert_eq!(from_file.max_payload_bytes, 1000);
        assert!(from_file.strict_event_types);
        assert_eq!(from_file.sqlite_synchronous, Synchronous::Normal);

        let variables = env(&[
            ("HOOKD_LISTEN", "127.0.0.1:1002"),
            ("HOOKD_DATA_DIR", "/from/env"),
            ("HOOKD_DEV", "true"),
            ("HOOKD_MAX_PAYLOAD_BYTES", "2000"),
            ("HOOKD_URL", "http://not-config"),
            ("OTHER", "x"),
        ]);
        let from_env = Config::load(
            Some(file.path()),
            variables.clone(),
            FlagOverrides::default(),
        )
        .unwrap();
        assert_eq!(from_env.listen.port(), 1002);
        assert_eq!(from_env.data_dir, PathBuf::from("/from/env"));
        assert!(from_env.dev);
        assert_eq!(from_env.max_payload_bytes, 2000);
        assert!(
            from_env.strict_event_types,
            "file value kept where env is silent"
        );

        let flags = FlagOverrides {
            listen: Some("127.0.0.1:1003".parse().unwrap()),
            data_dir: Some("/from/flag".into()),
            ..FlagOverrides::default()
        };
        let from_flags = Config::load(Some(file.path()), variables, flags).unwrap();
        assert_eq!(from_flags.listen.port(), 1003);
        assert_eq!(from_flags.data_dir, PathBuf::from("/from/flag"));
        assert!(from_flags.dev, "env value kept where flags are silent");
    }

    #[test]
    fn database_settings_from_every_source() {
        let config = Config::load(None, env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(config.database_url, None);
        assert_eq!(config.database_max_connections, 16);
        assert!(config.postgres_options().is_none());
        assert!(config.store_description().starts_with("SQLite "));

        let file = toml_file(
            "database_url = \"postgres://file@db1:5432/hookd\"\ndatabase_max_connections = 4\n",
        );
        let from_file =
            Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap();
        let options = from_file.postgres_options().unwrap();
        assert_eq!(options.url, "postgres://file@db1:5432/hookd");
        assert_eq!(options.max_connections, 4);

        let url =
            "postgresql://env:s3cret@db2:6543/hookd?sslmode=disable&options=-c%20lock_timeout%3D5s";
        let from_env = Config::load(
            Some(file.path()),
            env(&[
                ("HOOKD_DATABASE_URL", url),
                ("HOOKD_DATABASE_MAX_CONNECTIONS", "32"),
            ]),
            FlagOverrides::default(),
        )
        .unwrap();
        assert_eq!(from_env.database_url.as_deref(), Some(url));
        assert_eq!(from_env.database_max_connections, 32);
        let described = from_env.store_description();
        assert_eq!(described, "PostgreSQL env@db2:6543/hookd");
        assert!(!described.contains("s3cret"));

        let flags = FlagOverrides {
            database_url: Some("postgres://flag@db3/hookd".into()),
            ..FlagOverrides::default()
        };
        let from_flag = Config::load(
            Some(file.path()),
            env(&[("HOOKD_DATABASE_URL", url)]),
            flags,
        );
        assert_eq!(
            from_flag.unwrap().database_url.as_deref(),
            Some("postgres://flag@db3/hookd")
        );
    }

    #[test]
    fn delivery_settings_from_file() {
        let file =
            toml_file("role = \"worker\"\nmax_in_flight = 8\n[retry]\nschedule_ms = [100, 200]\n");
        let config = Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(config.role, Role::Worker);
        assert_eq!(config.max_in_flight, 8);
        assert_eq!(config.retry_policy().max_attempts(), 3);
        let worker = config.worker_config("w".into());
        assert_eq!(worker.max_in_flight, 8);
        assert_eq!(worker.default_retry, config.retry_policy());
        let from_env = Config::load(
            None,
            env(&[("HOOKD_ROLE", "api")]),
            FlagOverrides::default(),
        );
        assert_eq!(from_env.unwrap().role, Role::Api);
    }

    #[test]
    fn retention_from_env_and_file_and_its_limits() {
        let config = Config::load(None, env(&[]), FlagOverrides::default()).unwrap();
        assert!(!config.retention().is_enabled(), "kept forever unless set");
        let from_env = Config::load(
            None,
            env(&[
                ("HOOKD_RETENTION_DELIVERED_MS", "86400000"),
                ("HOOKD_RETENTION_DEAD_MS", "604800000"),
                ("HOOKD_RETENTION_EXCERPTS_MS", "3600000"),
            ]),
            FlagOverrides::default(),
        )
        .unwrap();
        let retention = from_env.retention();
        assert_eq!(retention.delivered_ms, Some(86_400_000));
        assert_eq!(retention.dead_ms, Some(604_800_000));
        assert_eq!(retention.excerpts_ms, Some(3_600_000));
        let file = toml_file("retention_dead_ms = 1000\n[retry]\nschedule_ms = [100]\n");
        let from_file =
            Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap();
        assert_eq!(from_file.retention().dead_ms, Some(1_000));
        for (key, value, wanted) in [
            (
                "HOOKD_RETENTION_DEAD_MS",
                "0",
                "retention_dead_ms: must be at least 1",
            ),
            ("HOOKD_RETENTION_INTERVAL_MS", "10", "retention_interval_ms"),
            (
                "HOOKD_RETENTION_DEAD_MS",
                "1000",
                "the default retry policy",
            ),
        ] {
            let error =
                Config::load(None, env(&[(key, value)]), FlagOverrides::default()).unwrap_err();
            assert!(error.contains(wanted), "{error}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let file = toml_file("listen = \"127.0.0.1:1\"\nlisten_port = 9\n");
        let error =
            Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap_err();
        assert!(error.contains("listen_port"), "{error}");

        let file = toml_file("sqlite_synchronous = \"sometimes\"\n");
        let error =
            Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap_err();
        assert!(error.contains("sqlite_synchronous"), "{error}");

        let error = Config::load(
            None,
            env(&[("HOOKD_LISTEN", "not an address")]),
            FlagOverrides::default(),
        )
        .unwrap_err();
        assert!(error.contains("listen"), "{error}");

        let file = toml_file("[retry]\nmax_attempts = 0\nbase_delay_ms = 100\n");
        let error =
            Config::load(Some(file.path()), env(&[]), FlagOverrides::default()).unwrap_err();
        assert!(error.contains("retry"), "{error}");

        for url in ["mysql://h/db", "sqlite://x.db", "localhost:5432"] {
            let error = Config::load(
                None,
                env(&[("HOOKD_DATABASE_URL", url)]),
                FlagOverrides::default(),
            )
            .unwrap_err();
            assert!(
                error.contains("database_url") && error.contains("postgres://"),
                "{error}"
            );
        }

        let missing = Config::load(
            Some(Path::new("/no/such/hookd.toml")),
            env(&[]),
            FlagOverrides::default(),
        );
        assert!(missing.unwrap_err().contains("does not exist"));
    }
}
