//! Wrappers that keep secrets out of `Debug` output and logs: `Secret` for keys and passwords,
//! `SecretUrl` for connection URLs that may carry a password.

use serde::{Deserialize, Deserializer};

/// Holds a secret value (API key, SMTP password, signing key). `Debug` prints `[redacted]`;
/// the value is reached only through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

/// A connection URL that may carry credentials (`postgres://user:pw@db/latchkey`). `Debug` and
/// `Display` show it with the password replaced by `***`; the real URL is reached only through
/// `expose`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_string())
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A URL with its password replaced by `***` (unparseable text is hidden whole if it looks
/// like it carries credentials). A comma-separated list of URLs (the nodes of a RabbitMQ
/// cluster) has each one redacted: parsed whole, the later URLs would pass for the first
/// one's path, their passwords in plain sight.
pub fn redact_url(raw: &str) -> String {
    if raw.contains(',') {
        let credentials = raw.contains('@');
        return raw
            .split(',')
            .map(|piece| match url::Url::parse(piece.trim()) {
                Ok(_) => redact_one(piece),
                Err(_) if credentials => "***".to_string(),
                Err(_) => piece.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    redact_one(raw)
}

fn redact_one(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) if raw.contains('@') => "***".to_string(),
        Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_no_password() {
        let u = SecretUrl::new("postgres://latchkey:hunter2@db/latchkey?sslmode=require");
        for shown in [format!("{u:?}"), u.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("latchkey:***@db"), "{shown}");
        }
        assert!(u.expose().contains("hunter2"));
        assert_eq!(redact_url("amqp://guest:s3cret@[bad"), "***");
    }

    #[test]
    fn every_url_of_a_list_shows_no_password() {
        let nodes = SecretUrl::new(
            "amqp://lk:pw1@rabbit1:5672/%2f, amqp://lk:pw2@rabbit2:5672/%2f,amqp://rabbit3/%2f",
        );
        let shown = nodes.to_string();
        for secret in ["pw1", "pw2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("lk:***@rabbit1"), "{shown}");
        assert!(shown.contains("lk:***@rabbit2"), "{shown}");
        assert!(shown.contains("amqp://rabbit3/%2f"), "{shown}");
        // A password with an unescaped comma splits into pieces that are not URLs: hidden.
        assert_eq!(redact_url("amqp://lk:a,b@rabbit1/%2f"), "***,***");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk_live_123".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "sk_live_123");
    }
}
