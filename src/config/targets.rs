//! What the database, queue and mail URLs select, parsed once at start-up: the store, the
//! queue and the transport take these, never the raw strings. PostgreSQL URLs carry libpq's
//! TLS options ([`PgTarget`]).

use std::path::PathBuf;

use url::Url;

use super::{Config, ConfigError};
use crate::domain::{Secret, SecretUrl};

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
    /// RabbitMQ: the AMQP URL of each node to try, in the order listed (one for a single
    /// broker, several for the nodes of a cluster).
    Amqp(Vec<SecretUrl>),
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
            PgTarget::parse(url, ca_file.as_deref())
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

    /// `local`, or one AMQP URL, or several separated by commas (the nodes of a RabbitMQ
    /// cluster, tried in the order listed). An entry is named by its position, never shown:
    /// it may carry a password.
    pub fn queue_kind(&self) -> Result<QueueKind, ConfigError> {
        let raw = self.queue_url.expose();
        if raw.trim() == "local" {
            return Ok(QueueKind::Local);
        }
        let entries: Vec<&str> = raw.split(',').map(str::trim).collect();
        let several = entries.len() > 1;
        let which = |i: usize| {
            if several {
                format!("node {} of {}: ", i + 1, entries.len())
            } else {
                String::new()
            }
        };
        let mut nodes: Vec<SecretUrl> = Vec::with_capacity(entries.len());
        for (i, url) in entries.iter().enumerate() {
            if url.is_empty() {
                return Err(ConfigError::new(
                    "queue_url",
                    if several {
                        format!(
                            "{}empty (separate the nodes' amqp:// URLs with single commas; \
                             a comma in a password is written %2C)",
                            which(i)
                        )
                    } else {
                        "must be `local` or an amqp:// URL".to_string()
                    },
                ));
            }
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return Err(ConfigError::new(
                    "queue_url",
                    format!(
                        "{}must be `local` or an amqp:// URL (several amqp:// URLs, separated by \
                         commas, for the nodes of a cluster)",
                        which(i)
                    ),
                ));
            }
            url.parse::<lapin::uri::AMQPUri>().map_err(|e| {
                ConfigError::new("queue_url", format!("{}not an AMQP URL: {e}", which(i)))
            })?;
            if let Some(first) = nodes.iter().position(|n| n.expose() == *url) {
                return Err(ConfigError::new(
                    "queue_url",
                    format!("{}the same URL as node {}", which(i), first + 1),
                ));
            }
            nodes.push(SecretUrl::new(*url));
        }
        Ok(QueueKind::Amqp(nodes))
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
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// A parsed PostgreSQL URL: what tokio-postgres takes, and how to secure the connection.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio_postgres::Config's Debug hides the password already.
        f.debug_struct("PgTarget")
            .field("config", &self.config)
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

impl PgTarget {
    /// Parses a `postgres://` URL with optional `sslmode` and `sslrootcert` query options;
    /// `ca_file` applies when the URL names no `sslrootcert`.
    pub fn parse(url: &str, ca_file: Option<&std::path::Path>) -> Result<Self, String> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let mut ssl_mode = SslMode::Disable;
        let mut root_cert = ca_file.map(PathBuf::from);
        let mut rest = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| format!("{key}: not UTF-8"))
            };
            match key {
                "sslmode" => ssl_mode = SslMode::parse(&decoded()?)?,
                "sslrootcert" => root_cert = Some(PathBuf::from(decoded()?)),
                _ => rest.push(pair),
            }
        }
        let stripped = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = stripped
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(Self {
            config,
            ssl_mode,
            root_cert,
        })
    }
}
