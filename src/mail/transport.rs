//! Where a built message goes: SMTP ([`super::smtp::SmtpPool`]) or the file outbox.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::address::Envelope;

/// The server's answer to an accepted message, as recorded in the attempt row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub code: Option<u16>,
    pub detail: String,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// 5xx replies and invalid addresses: retrying will not help.
    pub permanent: bool,
    pub code: Option<u16>,
    /// The server's reply, or what went wrong on the way (connection refused, timeout).
    pub detail: String,
}

impl SendFailure {
    pub fn temporary(detail: impl Into<String>) -> Self {
        Self {
            permanent: false,
            code: None,
            detail: detail.into(),
        }
    }
}

#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn send(
        &self,
        envelope: &Envelope,
        raw: &[u8],
        delivery_id: i64,
    ) -> Result<SentReply, SendFailure>;
    /// Whether sign-in links should also be printed to the console (the embedded default).
    fn is_outbox(&self) -> bool {
        false
    }
}

/// The embedded default's transport: one `.eml` file per email in a directory. Emails hold
/// sign-in links, so the directory and its files are readable by their owner only.
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[async_trait]
impl Transport for Outbox {
    async fn send(
        &self,
        _envelope: &Envelope,
        raw: &[u8],
        delivery_id: i64,
    ) -> Result<SentReply, SendFailure> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
        let name = format!("{stamp}-delivery-{delivery_id}.eml");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let raw = raw.to_vec();
        let written = tokio::task::spawn_blocking(move || {
            crate::crypto::write_private(&tmp, &raw)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| SendFailure::temporary(e.to_string()))?;
        match written {
            Ok(()) => Ok(SentReply {
                code: None,
                detail: format!("written to the outbox as {name}"),
            }),
            Err(e) => Err(SendFailure::temporary(format!(
                "could not write to the outbox {}: {e}",
                self.dir.display()
            ))),
        }
    }

    fn is_outbox(&self) -> bool {
        true
    }
}
