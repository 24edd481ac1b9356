//! Layered configuration: `config/default.toml` (compiled in, so the binary runs anywhere), the
//! on-disk `config/default.toml` and `config/{LATCHKEY_ENV}.toml` when present, then
//! environment variables (`LATCHKEY_<KEY>`, `LATCHKEY_<SECTION>__<KEY>`).
//!
//! A bad setting stops start-up with one line that names the key and what is wrong.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use url::Url;

use crate::domain::{Secret, SecretUrl};

const DEFAULTS: &str = include_str!("../../config/default.toml");

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
    pub console_from_email: crate::domain::EmailAddress,
    pub resend_cooldown_seconds: u64,
    pub database: DatabaseSettings,
    pub sign_in: SignInSettings,
    pub rate_limit: RateLimitSettings,
    pub mail: MailSettings,
    pub queue: QueueSettings,
    pub webhooks: WebhookSettings,
    pub bounces: BounceSettings,
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
    /// The AMQP heartbeat asked for: a connection silent for two heartbeats is given up.
    pub heartbeat_seconds: u64,
}

/// Signed event webhooks to the operator's systems (SPEC §9).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Send to loopback and private-network targets (tests, a private deployment).
    pub allow_private_targets: bool,
    /// The pauses after each failed try; the last one repeats until `give_up_hours`.
    pub retry_delays_seconds: Vec<u64>,
    /// An endpoint whose deliveries have failed this long is disabled.
    pub give_up_hours: u64,
    /// One POST, connection included.
    pub timeout_seconds: u64,
    /// Event deliveries in flight per worker process.
    pub concurrency: u16,
    /// How often the relay looks for event deliveries the queue never got.
    pub relay_interval_seconds: f64,
}

/// Bounces and complaints coming back (SPEC §9): the VERP Return-Path's domain and the inbound
/// SMTP listener that receives the reports sent to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BounceSettings {
    /// Where the bounce listener listens (`latchkey worker`, `latchkey serve` with workers,
    /// `latchkey bounces`); unset or empty: no listener.
    #[serde(default, deserialize_with = "optional_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// The domain of every email's VERP Return-Path (`bounces+{id}-{mac}@{domain}`); unset or
    /// empty: emails keep the sender's address as their Return-Path.
    #[serde(default, deserialize_with = "optional_text")]
    pub domain: Option<String>,
    /// A storefront's own bounce domain, by slug, instead of `domain`.
    #[serde(default)]
    pub storefront_domains: BTreeMap<String, String>,
    /// The largest report the listener accepts (at most 1 MiB, the largest one read).
    pub max_message_bytes: usize,
    /// Connections the listener serves at once; more are told to come back later.
    pub max_connections: usize,
    /// How long the listener waits for a client's next line.
    pub idle_timeout_seconds: u64,
    /// How long one connection may last in all.
    pub session_timeout_seconds: u64,
}

impl BounceSettings {
    /// The bounce domain of a storefront's emails (its own, else the global one); `None` for
    /// no VERP. Console emails (no storefront) pass `None` and get the global domain.
    pub fn domain_for(&self, slug: Option<&str>) -> Option<&str> {
        slug.and_then(|s| self.storefront_domains.get(s))
            .or(self.domain.as_ref())
            .map(String::as_str)
    }

    /// Every domain the listener accepts VERP addresses at.
    pub fn domains(&self) -> Vec<String> {
        self.domain
            .iter()
            .chain(self.storefront_domains.values())
            .cloned()
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(domain) = &self.domain {
            check_domain("bounces.domain", domain)?;
        }
        for (slug, domain) in &self.storefront_domains {
            let key = format!("bounces.storefront_domains.{slug}");
            if crate::domain::StorefrontSlug::parse(slug).is_err() {
                return Err(ConfigError::new(&key, "not a storefront slug"));
            }
            check_domain(&key, domain)?;
        }
        if self.listen.is_some() && self.domains().is_empty() {
            return Err(ConfigError::new(
                "bounces.listen",
                "set bounces.domain (or bounces.storefront_domains): the listener accepts mail only for VERP addresses at those domains",
            ));
        }
        positive("bounces.max_message_bytes", self.max_message_bytes as u64)?;
        positive("bounces.max_connections", self.max_connections as u64)?;
        positive("bounces.idle_timeout_seconds", self.idle_timeout_seconds)?;
        positive(
            "bounces.session_timeout_seconds",
            self.session_timeout_seconds,
        )?;
        Ok(())
    }
}

/// A host name: letters, digits, dashes and dots, no empty label.
fn check_domain(key: &str, domain: &str) -> Result<(), ConfigError> {
    let ok = domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("`{domain}` is not a domain name (like bounces.example.com)"),
        ))
    }
}

/// An optional setting that an empty value (`LATCHKEY_BOUNCES__DOMAIN=`) turns off.
fn optional_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// An optional socket address; empty is unset.
fn optional_socket_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    match optional_text(d)? {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{v}` is not a socket address (like 0.0.0.0:2525 or [::]:25)"
            ))
        }),
    }
}

/// One line naming the setting and what is wrong with it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
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
        positive("queue.heartbeat_seconds", self.queue.heartbeat_seconds)?;
        if self.queue.heartbeat_seconds > u16::MAX as u64 {
            return Err(ConfigError::new(
                "queue.heartbeat_seconds",
                "must be at most 65535",
            ));
        }
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
        self.bounces.validate()?;
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

    /// How long before its relay time a worker must still be able to send a fresh row's email
    /// and record the outcome to take the row without writing a claim (see
    /// `ClaimRules::hold_until`): a whole SMTP dialogue (`mail.smtp_timeout_seconds`) and half
    /// the relay delay for the outcome's write (a database briefly away is waited for). A
    /// delivery picked up later, or about to be sent later, is claimed with a lease first.
    pub fn claim_hold_margin(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.mail.smtp_timeout_seconds as i64) + self.relay_after() / 2
    }

    /// The pauses between tries of an event delivery.
    pub fn webhook_retry_delays(&self) -> Vec<Duration> {
        self.webhooks
            .retry_delays_seconds
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect()
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

mod targets;
#[cfg(test)]
mod tests;

pub use targets::*;
