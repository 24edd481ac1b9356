//! Layered configuration: `config/default.toml` (compiled in, so the binary runs anywhere), the
//! on-disk `config/default.toml` and `config/{LATCHKEY_ENV}.toml` when present, then
//! environment variables (`LATCHKEY_<KEY>`, `LATCHKEY_<SECTION>__<KEY>`).
//!
//! A bad setting stops start-up with one line that names the key and what is wrong.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use url::Url;

use crate::domain::{Secret, SecretUrl};

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: SecretUrl,
    pub queue_url: SecretUrl,
    pub mail_url: SecretUrl,
    pub data_dir: PathBuf,
    pub secret_key: Option<Secret<String>>,
    /// A developer's machine: accepts a development secret key (one with a placeholder
    /// marker, like docker-compose.yml's default) with PostgreSQL.
    pub development: bool,
    pub run_workers: bool,
    pub threads: usize,
    pub migrate_on_start: bool,
    pub demo_on_first_start: bool,
    pub log_format: LogFormat,
    pub log_level: String,
    pub trusted_proxies: Vec<IpAddr>,
    /// The operations listener: `/metrics` and the detailed `/readyz` (never the public port).
    pub ops_listen: SocketAddr,
    /// On SIGTERM, how long open requests (and, in a worker, the sends in flight) may take.
    pub shutdown_grace_seconds: u64,
    /// Open connections the public listener holds at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a request body may take to arrive, from the end of its headers.
    pub body_read_timeout_seconds: u64,
    pub stripe_secret_key: Option<Secret<String>>,
    pub stripe_webhook_secret: Option<Secret<String>>,
    pub stripe_api_base: Option<SecretUrl>,
    pub stripe_timeout_seconds: u64,
    pub console_from_name: String,
    pub console_from_email: String,
    pub resend_cooldown_seconds: u64,
    pub database: DatabaseSettings,
    pub sign_in: SignInSettings,
    pub rate_limit: RateLimitSettings,
    pub mail: MailSettings,
    pub queue: QueueSettings,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub pool_size: usize,
    /// PEM CA certificate(s) for `sslmode=verify-ca|verify-full` (or `require`), unless the
    /// URL has `sslrootcert`.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInSettings {
    pub link_ttl_minutes: u32,
    pub session_hours: u32,
    /// Links for one account from one client (IP, IPv6 /64, or signed-in device) per window.
    pub per_account_max: u32,
    pub per_account_window_minutes: u32,
    /// Links for one account from all clients without a device cookie, per window.
    pub account_ceiling_max: u32,
    pub account_ceiling_window_minutes: u32,
    /// How long the device cookie of a browser that signed in lasts.
    pub device_cookie_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub ip_per_second: u32,
    pub ip_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub concurrency: u16,
    pub smtp_pool_size: u32,
    pub smtp_timeout_seconds: u64,
    pub hello_name: String,
    pub retry_delays_seconds: Vec<f64>,
    pub lease_seconds: u64,
    pub relay_interval_seconds: f64,
    pub relay_after_seconds: f64,
    pub global_per_second: u32,
    pub per_domain_per_second: u32,
    pub per_storefront_per_second: u32,
    pub print_links: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub prefix: String,
    pub quorum: bool,
    pub connect_timeout_seconds: u64,
}

/// One line naming the setting and what is wrong with it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Which store the database URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite(PathBuf),
    Postgres {
        url: SecretUrl,
        /// The CA certificate(s) to check the server against, when the URL names none.
        ca_file: Option<PathBuf>,
    },
}

/// Which queue the queue URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueKind {
    Local,
    Amqp(SecretUrl),
}

/// Which transport the mail URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailKind {
    Outbox(PathBuf),
    Smtp(SmtpSettings),
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection (local relays and test servers).
    None,
    /// STARTTLS upgrade, required.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

impl Config {
    /// Loads from `config_dir` (usually `./config`), the environment's file and the process
    /// environment.
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        let env_name = std::env::var("LATCHKEY_ENV").ok();
        Self::load_from(config_dir, env_name.as_deref(), Env::prefixed("LATCHKEY_"))
    }

    /// The compiled-in defaults only (tests start from these).
    pub fn defaults() -> Self {
        Self::extract(Figment::from(Toml::string(DEFAULTS)))
            .expect("the compiled-in defaults are valid")
    }

    fn load_from(config_dir: &Path, env_name: Option<&str>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        let default_file = config_dir.join("default.toml");
        if default_file.exists() {
            figment = figment.merge(Toml::file(&default_file));
        }
        if let Some(name) = env_name.filter(|n| !n.is_empty()) {
            let file = config_dir.join(format!("{name}.toml"));
            if !file.exists() {
                return Err(ConfigError::new(
                    "LATCHKEY_ENV",
                    format!("no configuration file {}", file.display()),
                ));
            }
            figment = figment.merge(Toml::file(file));
        }
        // LATCHKEY_ENV and LATCHKEY_CONFIG_DIR choose the files; LATCHKEY_TEST_* configure the
        // test suite, not the application.
        let env = env
            .ignore(&["env", "config_dir"])
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
            .split("__");
        Self::extract(figment.merge(env))
    }

    fn extract(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                match &e.kind {
                    figment::error::Kind::UnknownField(field, _) => field.clone(),
                    figment::error::Kind::MissingField(field) => field.to_string(),
                    _ => "configuration".to_string(),
                }
            } else {
                e.path.join(".")
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            ConfigError::new(&key, format!("{}{source}", e.kind))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: URLs, ranges, combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let public = Url::parse(&self.public_url)
            .map_err(|e| ConfigError::new("public_url", format!("not a URL: {e}")))?;
        if !matches!(public.scheme(), "http" | "https") || public.host_str().is_none() {
            return Err(ConfigError::new(
                "public_url",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if public.query().is_some() || public.fragment().is_some() {
            return Err(ConfigError::new(
                "public_url",
                "must not have a query or fragment",
            ));
        }
        let db = self.database_kind()?;
        self.queue_kind()?;
        self.mail_kind()?;
        if matches!(db, DatabaseKind::Postgres { .. }) && self.secret_key.is_none() {
            return Err(ConfigError::new(
                "secret_key",
                "required with PostgreSQL (set LATCHKEY_SECRET_KEY; every web and worker node must share it)",
            ));
        }
        if let Some(key) = &self.secret_key
            && key.expose().len() < 32
        {
            return Err(ConfigError::new(
                "secret_key",
                "must be at least 32 characters (for example `openssl rand -base64 48`)",
            ));
        }
        if let Some(key) = &self.secret_key
            && matches!(db, DatabaseKind::Postgres { .. })
            && !self.development
            && is_development_key(key.expose())
        {
            return Err(ConfigError::new(
                "secret_key",
                "this is a development placeholder (set your own, e.g. `openssl rand -base64 48`; \
                 `development = true` allows it on a developer's machine)",
            ));
        }
        if let Some(base) = &self.stripe_api_base {
            Url::parse(base.expose())
                .map_err(|e| ConfigError::new("stripe_api_base", format!("not a URL: {e}")))?;
        }
        positive("stripe_timeout_seconds", self.stripe_timeout_seconds)?;
        crate::domain::EmailAddress::parse(&self.console_from_email)
            .map_err(|e| ConfigError::new("console_from_email", e.to_string()))?;
        if self.console_from_name.trim().is_empty()
            || self.console_from_name.chars().any(char::is_control)
        {
            return Err(ConfigError::new(
                "console_from_name",
                "must be a name on one line",
            ));
        }
        if self.stripe_secret_key.is_some() != self.stripe_webhook_secret.is_some() {
            return Err(ConfigError::new(
                if self.stripe_secret_key.is_some() {
                    "stripe_webhook_secret"
                } else {
                    "stripe_secret_key"
                },
                "set both stripe_secret_key and stripe_webhook_secret, or neither",
            ));
        }
        if self.ops_listen == self.listen && self.listen.port() != 0 {
            return Err(ConfigError::new(
                "ops_listen",
                "must differ from listen (metrics stay off the public port)",
            ));
        }
        positive("max_connections", self.max_connections as u64)?;
        positive("body_read_timeout_seconds", self.body_read_timeout_seconds)?;
        positive("database.pool_size", self.database.pool_size as u64)?;
        positive(
            "sign_in.link_ttl_minutes",
            self.sign_in.link_ttl_minutes as u64,
        )?;
        positive("sign_in.session_hours", self.sign_in.session_hours as u64)?;
        positive(
            "sign_in.per_account_max",
            self.sign_in.per_account_max as u64,
        )?;
        positive(
            "sign_in.per_account_window_minutes",
            self.sign_in.per_account_window_minutes as u64,
        )?;
        positive(
            "sign_in.account_ceiling_max",
            self.sign_in.account_ceiling_max as u64,
        )?;
        positive(
            "sign_in.account_ceiling_window_minutes",
            self.sign_in.account_ceiling_window_minutes as u64,
        )?;
        positive(
            "sign_in.device_cookie_days",
            self.sign_in.device_cookie_days as u64,
        )?;
        positive(
            "rate_limit.ip_per_second",
            self.rate_limit.ip_per_second as u64,
        )?;
        positive("rate_limit.ip_burst", self.rate_limit.ip_burst as u64)?;
        positive("mail.concurrency", self.mail.concurrency as u64)?;
        positive("mail.smtp_pool_size", self.mail.smtp_pool_size as u64)?;
        positive("mail.smtp_timeout_seconds", self.mail.smtp_timeout_seconds)?;
        positive("mail.lease_seconds", self.mail.lease_seconds)?;
        positive("mail.global_per_second", self.mail.global_per_second as u64)?;
        positive(
            "mail.per_domain_per_second",
            self.mail.per_domain_per_second as u64,
        )?;
        positive(
            "mail.per_storefront_per_second",
            self.mail.per_storefront_per_second as u64,
        )?;
        positive(
            "queue.connect_timeout_seconds",
            self.queue.connect_timeout_seconds,
        )?;
        if self.mail.retry_delays_seconds.is_empty()
            || self
                .mail
                .retry_delays_seconds
                .iter()
                .any(|d| !d.is_finite() || *d <= 0.0 || *d > 7.0 * 86400.0)
        {
            return Err(ConfigError::new(
                "mail.retry_delays_seconds",
                "must list one or more delays between 0 and 7 days, in seconds",
            ));
        }
        for (key, v) in [
            (
                "mail.relay_interval_seconds",
                self.mail.relay_interval_seconds,
            ),
            ("mail.relay_after_seconds", self.mail.relay_after_seconds),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(ConfigError::new(
                    key,
                    "must be a positive number of seconds",
                ));
            }
        }
        if self.mail.hello_name.is_empty()
            || !self
                .mail
                .hello_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(ConfigError::new("mail.hello_name", "must be a host name"));
        }
        if self.queue.prefix.is_empty()
            || !self
                .queue
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(ConfigError::new(
                "queue.prefix",
                "must be letters, digits, dots, dashes or underscores",
            ));
        }
        Ok(())
    }

    pub fn public_url(&self) -> Url {
        Url::parse(self.public_url.trim_end_matches('/')).expect("validated")
    }

    /// Cookies get `Secure` when the portal is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn database_kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.database_url.expose();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::new(
                    "database_url",
                    "sqlite:// needs a file path",
                ));
            }
            Ok(DatabaseKind::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let ca_file = self.database.ca_file.clone();
            crate::store::postgres_tls::PgTarget::parse(url, ca_file.as_deref())
                .map_err(|e| ConfigError::new("database_url", e))?;
            Ok(DatabaseKind::Postgres {
                url: self.database_url.clone(),
                ca_file,
            })
        } else {
            Err(ConfigError::new(
                "database_url",
                "must start with sqlite:// or postgres://",
            ))
        }
    }

    pub fn queue_kind(&self) -> Result<QueueKind, ConfigError> {
        let url = self.queue_url.expose();
        if url == "local" {
            Ok(QueueKind::Local)
        } else if url.starts_with("amqp://") || url.starts_with("amqps://") {
            url.parse::<lapin::uri::AMQPUri>()
                .map_err(|e| ConfigError::new("queue_url", format!("not an AMQP URL: {e}")))?;
            Ok(QueueKind::Amqp(self.queue_url.clone()))
        } else {
            Err(ConfigError::new(
                "queue_url",
                "must be `local` or an amqp:// URL",
            ))
        }
    }

    pub fn mail_kind(&self) -> Result<MailKind, ConfigError> {
        let raw = self.mail_url.expose();
        if let Some(path) = raw.strip_prefix("file://") {
            if path.is_empty() {
                return Err(ConfigError::new("mail_url", "file:// needs a directory"));
            }
            return Ok(MailKind::Outbox(PathBuf::from(path)));
        }
        let url =
            Url::parse(raw).map_err(|e| ConfigError::new("mail_url", format!("not a URL: {e}")))?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            _ => {
                return Err(ConfigError::new(
                    "mail_url",
                    "must be smtp://, smtps:// or file://",
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError::new("mail_url", "needs a host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut tls = if implicit {
            SmtpTls::Implicit
        } else {
            SmtpTls::StartTls
        };
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") if !implicit => tls = SmtpTls::None,
                ("tls", "starttls") if !implicit => tls = SmtpTls::StartTls,
                ("tls", "implicit" | "required") => tls = SmtpTls::Implicit,
                (key, value) => {
                    return Err(ConfigError::new(
                        "mail_url",
                        format!("unknown option {key}={value} (use tls=none|starttls|implicit)"),
                    ));
                }
            }
        }
        let port = url.port().unwrap_or(match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ConfigError::new("mail_url", "user or password is not UTF-8"))
        };
        let username = if url.username().is_empty() {
            None
        } else {
            Some(decode(url.username())?)
        };
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        Ok(MailKind::Smtp(SmtpSettings {
            host,
            port,
            tls,
            username,
            password,
        }))
    }

    pub fn retry_delays(&self) -> Vec<Duration> {
        self.mail
            .retry_delays_seconds
            .iter()
            .map(|s| Duration::from_secs_f64(*s))
            .collect()
    }

    /// The configuration as `latchkey config` prints it: secrets and URL passwords hidden
    /// (the types of those fields redact them in `Debug`).
    pub fn describe(&self) -> String {
        format!("{self:#?}")
    }

    /// How long a `queued` delivery may wait before the relay publishes it again.
    pub fn relay_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(Duration::from_secs_f64(self.mail.relay_after_seconds))
            .unwrap_or(chrono::Duration::seconds(60))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn stripe_enabled(&self) -> bool {
        self.stripe_secret_key.is_some()
    }
}

/// Placeholder secrets (docker-compose.yml's default, copied examples) that must not sign
/// anything outside a developer's machine.
fn is_development_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["change-me", "changeme", "development-only"]
        .iter()
        .any(|marker| key.contains(marker))
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError::new(key, "must be greater than zero"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::result_large_err)]
    /// Loads with the given environment variables set, under figment's `Jail`, which
    /// serialises environment changes between tests and restores them afterwards.
    fn load_env(
        dir: &Path,
        env_name: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in env {
                jail.set_env(k, v);
            }
            out = Some(Config::load_from(dir, env_name, Env::prefixed("LATCHKEY_")));
            Ok(())
        });
        out.expect("jail ran")
    }

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        load_env(dir.path(), None, env)
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.ops_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.shutdown_grace(), Duration::from_secs(30));
        assert_eq!(
            c.database_kind().unwrap(),
            DatabaseKind::Sqlite("./data/latchkey.db".into())
        );
        assert_eq!(c.queue_kind().unwrap(), QueueKind::Local);
        assert_eq!(
            c.mail_kind().unwrap(),
            MailKind::Outbox("./data/outbox".into())
        );
        assert_eq!(c.sign_in.link_ttl_minutes, 60);
        assert_eq!(c.sign_in.session_hours, 24);
        assert_eq!(c.retry_delays().len(), 5);
        assert!(!c.stripe_enabled());
    }

    #[test]
    fn environment_overrides_files() {
        let c = load(&[
            ("LATCHKEY_LISTEN", "0.0.0.0:9000"),
            ("LATCHKEY_MAIL__CONCURRENCY", "64"),
            (
                "LATCHKEY_QUEUE_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            (
                "LATCHKEY_MAIL_URL",
                "smtp://u:p%40ss@mail.example.com:2525?tls=none",
            ),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.mail.concurrency, 64);
        assert!(matches!(c.queue_kind().unwrap(), QueueKind::Amqp(_)));
        let MailKind::Smtp(smtp) = c.mail_kind().unwrap() else {
            panic!()
        };
        assert_eq!(smtp.host, "mail.example.com");
        assert_eq!(smtp.port, 2525);
        assert_eq!(smtp.tls, SmtpTls::None);
        assert_eq!(smtp.password.unwrap().expose(), "p@ss");
        assert!(!format!("{:?}", c.mail_kind().unwrap()).contains("p@ss"));
    }

    #[test]
    fn a_bad_setting_names_its_key() {
        let cases = [
            (("LATCHKEY_LISTEN", "nowhere"), "listen"),
            (("LATCHKEY_PUBLIC_URL", "ftp://x"), "public_url"),
            (("LATCHKEY_DATABASE_URL", "mysql://x"), "database_url"),
            (("LATCHKEY_QUEUE_URL", "redis://x"), "queue_url"),
            (("LATCHKEY_MAIL_URL", "smtp://x?tls=maybe"), "mail_url"),
            (("LATCHKEY_MAIL__CONCURRENCY", "lots"), "mail.concurrency"),
            (("LATCHKEY_MAIL__CONCURRENCY", "0"), "mail.concurrency"),
            (
                ("LATCHKEY_SIGN_IN__LINK_TTL_MINUTES", "0"),
                "sign_in.link_ttl_minutes",
            ),
            (
                ("LATCHKEY_DATABASE_URL", "postgres://localhost/x"),
                "secret_key",
            ),
            (("LATCHKEY_SECRET_KEY", "short"), "secret_key"),
            (("LATCHKEY_LOG_FORMAT", "xml"), "log_format"),
            (("LATCHKEY_OPS_LISTEN", "127.0.0.1:8080"), "ops_listen"),
            (("LATCHKEY_MAX_CONNECTIONS", "0"), "max_connections"),
        ];
        for ((k, v), key) in cases {
            let err = load(&[(k, v)]).unwrap_err();
            assert_eq!(err.key, key, "{k}={v}: {err}");
            let line = err.to_string();
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(line.starts_with("configuration error: "), "{line}");
        }
    }

    #[test]
    fn describe_hides_passwords() {
        let mut c = Config::defaults();
        c.database_url = "postgres://latchkey:hunter2@db/latchkey".into();
        c.queue_url = "amqp://guest:s3cret@rabbit:5672/%2f".into();
        c.mail_url = "smtp://apikey:topsecret@smtp.example.com:587".into();
        c.secret_key = Some(Secret::new(
            "a-very-long-secret-key-of-32-chars-or-more".into(),
        ));
        let shown = c.describe();
        for secret in ["hunter2", "s3cret", "topsecret", "a-very-long-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("postgres://latchkey:***@db/latchkey"));
    }

    #[test]
    fn test_variables_are_not_settings() {
        let c = load(&[("LATCHKEY_TEST_DATABASE_URL", "postgres://x@y/z")]).unwrap();
        assert_eq!(c.database_url.expose(), "sqlite://./data/latchkey.db");
    }

    #[test]
    fn debug_output_hides_every_password_and_secret() {
        let mut c = Config::defaults();
        c.database_url = "postgres://latchkey:hunter2@db/latchkey?sslmode=require".into();
        c.queue_url = "amqps://guest:s3cret@rabbit:5671/%2f".into();
        c.mail_url = "smtps://apikey:topsecret@smtp.example.com".into();
        c.stripe_api_base = Some("https://user:stripepw@stripe.internal".into());
        c.stripe_secret_key = Some(Secret::new("sk_live_abcdef".into()));
        c.stripe_webhook_secret = Some(Secret::new("whsec_abcdef".into()));
        let debug = format!("{c:?} {:?} {:?}", c.database_kind(), c.mail_kind());
        for secret in [
            "hunter2",
            "s3cret",
            "topsecret",
            "stripepw",
            "sk_live",
            "whsec_",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn the_development_secret_key_needs_the_development_setting_with_postgres() {
        let compose_key = "change-me-development-only-0123456789abcdef";
        let pg = [
            ("LATCHKEY_DATABASE_URL", "postgres://latchkey@db/latchkey"),
            ("LATCHKEY_SECRET_KEY", compose_key),
        ];
        let err = load(&pg).unwrap_err();
        assert_eq!(err.key, "secret_key");
        assert!(err.message.contains("development"), "{err}");
        let mut dev = pg.to_vec();
        dev.push(("LATCHKEY_DEVELOPMENT", "true"));
        assert!(load(&dev).is_ok());
        // The embedded default (SQLite) is a developer's machine already.
        assert!(load(&[("LATCHKEY_SECRET_KEY", compose_key)]).is_ok());
        // A real key is fine.
        let real = [
            ("LATCHKEY_DATABASE_URL", "postgres://latchkey@db/latchkey"),
            (
                "LATCHKEY_SECRET_KEY",
                "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
            ),
        ];
        assert!(load(&real).is_ok());
    }

    #[test]
    fn postgres_tls_options_are_checked_at_start() {
        let ok = load(&[
            (
                "LATCHKEY_DATABASE_URL",
                "postgres://u@db/x?sslmode=verify-full",
            ),
            (
                "LATCHKEY_SECRET_KEY",
                "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
            ),
        ]);
        assert!(ok.is_ok(), "{ok:?}");
        let err = load(&[
            ("LATCHKEY_DATABASE_URL", "postgres://u@db/x?sslmode=often"),
            (
                "LATCHKEY_SECRET_KEY",
                "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
            ),
        ])
        .unwrap_err();
        assert_eq!(err.key, "database_url");
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("staging.toml"), "listn = \"0.0.0.0:1\"\n").unwrap();
        let err = load_env(dir.path(), Some("staging"), &[]).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let err = load_env(dir.path(), Some("prod"), &[]).unwrap_err();
        assert_eq!(err.key, "LATCHKEY_ENV");
    }
}
