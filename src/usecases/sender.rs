//! A storefront's sender settings: the name and address its emails come from, the reply-to
//! address, and DKIM signing (domain, selector, private key). Read with the state of DKIM (a
//! key that does not open with this server's secret key is *misconfigured*) and the DNS TXT
//! record to publish; changed by the API (`PATCH /api/v1/sender`) and the command line
//! (`latchkey admin storefront`), both audited. The private key is sealed here with the secret
//! key before it reaches the store, and is never shown back.
//!
//! Rules: the DKIM domain is the sender's domain or a parent of it (see
//! [`check_alignment`]); domain, selector and key are set together the first time, and later
//! each may change alone (a new selector for the same key, a new key under the same
//! selector); a change of sender address is refused when the DKIM domain would no longer fit.
//!
//! Also here: sealing, at start, the plaintext keys an earlier version stored.

use chrono::{DateTime, Utc};

use crate::crypto::Keys;
use crate::domain::dkim::{DkimAlgorithm, DkimKey, DkimRecord, DnsName, check_alignment};
use crate::domain::{EmailAddress, Secret};
use crate::error::AppError;
use crate::mail::dkim_signer;
use crate::services::Services;
use crate::store::{
    DbError, DbResult, DkimSettings, SealedDkimKey, SenderSettings, Store, Storefront,
};

/// What to do with DKIM.
#[derive(Debug, Clone, Default)]
pub enum DkimChange {
    #[default]
    Keep,
    Remove,
    /// Set (or change) what is given; what is not given stays as it is.
    Set {
        domain: Option<DnsName>,
        selector: Option<DnsName>,
        key: Option<DkimKey>,
    },
}

/// A change of the sender settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SenderChange {
    pub from_name: Option<String>,
    pub from_email: Option<EmailAddress>,
    /// `Some(None)` removes the reply-to address.
    pub reply_to: Option<Option<EmailAddress>>,
    pub dkim: DkimChange,
}

impl SenderChange {
    pub fn is_empty(&self) -> bool {
        self.from_name.is_none()
            && self.from_email.is_none()
            && self.reply_to.is_none()
            && matches!(self.dkim, DkimChange::Keep)
    }

    /// The settings changed, by their API names (for the audit log).
    fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.from_name.is_some() {
            out.push("from_name");
        }
        if self.from_email.is_some() {
            out.push("from_email");
        }
        if self.reply_to.is_some() {
            out.push("reply_to");
        }
        match &self.dkim {
            DkimChange::Keep => {}
            DkimChange::Remove => out.push("dkim"),
            DkimChange::Set {
                domain,
                selector,
                key,
            } => {
                if domain.is_some() {
                    out.push("dkim.domain");
                }
                if selector.is_some() {
                    out.push("dkim.selector");
                }
                if key.is_some() {
                    out.push("dkim.private_key");
                }
            }
        }
        out
    }
}

/// DKIM as the console, API and command line show it.
#[derive(Debug, Clone)]
pub struct DkimView {
    pub domain: String,
    pub selector: String,
    pub algorithm: Option<DkimAlgorithm>,
    /// The TXT record to publish (`None` only for a key that never loaded).
    pub record: Option<DkimRecord>,
    /// Why emails cannot be signed (they fail until it is fixed); `None` when all is well.
    pub problem: Option<String>,
}

/// The sender settings as shown: never the private key.
#[derive(Debug, Clone)]
pub struct SenderView {
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub dkim: Option<DkimView>,
}

/// Why a change was refused: the field (by its API name) and what is wrong. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("the storefront no longer exists")]
    Gone,
    #[error(transparent)]
    Db(#[from] DbError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> SenderError {
    SenderError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// The storefront's sender settings, with whether its DKIM key opens (with `keys`).
pub fn view(keys: &Keys, sf: &Storefront) -> SenderView {
    let dkim = sf.dkim.as_ref().map(|d| {
        let record = match (
            DnsName::parse(&d.selector),
            DnsName::parse(&d.domain),
            d.key.algorithm,
            &d.key.public_key,
        ) {
            (Ok(s), Ok(dom), Some(a), Some(p)) => Some(DkimRecord::new(&s, &dom, a, p)),
            _ => None,
        };
        DkimView {
            domain: d.domain.clone(),
            selector: d.selector.clone(),
            algorithm: d.key.algorithm,
            record,
            problem: dkim_signer(keys, sf).err().map(|e| e.to_string()),
        }
    });
    SenderView {
        from_name: sf.from_name.clone(),
        from_email: sf.from_email.to_string(),
        reply_to: sf.reply_to.clone(),
        dkim,
    }
}

/// A key as the store keeps it: sealed for the storefront, with its public half beside it.
fn sealed(keys: &Keys, storefront_id: i64, key: &DkimKey, text: &Secret<String>) -> SealedDkimKey {
    SealedDkimKey {
        sealed: keys.seal_dkim_key(storefront_id, text),
        algorithm: Some(key.algorithm()),
        public_key: Some(key.public_key().to_string()),
    }
}

/// The settings `change` makes of the storefront's, checked against the rules.
fn merged(
    keys: &Keys,
    sf: &Storefront,
    change: &SenderChange,
) -> Result<SenderSettings, SenderError> {
    let from_name = match &change.from_name {
        Some(n) => {
            let n = n.trim();
            if n.is_empty() || n.chars().any(char::is_control) || n.chars().count() > 200 {
                return Err(invalid(
                    "from_name",
                    "Must be a name on one line, 1 to 200 characters.",
                ));
            }
            n.to_string()
        }
        None => sf.from_name.clone(),
    };
    let from_email = change
        .from_email
        .clone()
        .unwrap_or_else(|| sf.from_email.clone());
    let reply_to = match &change.reply_to {
        Some(r) => r.clone(),
        None => sf
            .reply_to
            .as_deref()
            .and_then(|r| EmailAddress::parse(r).ok()),
    };
    let dkim = match &change.dkim {
        DkimChange::Remove => None,
        DkimChange::Keep => sf.dkim.clone(),
        DkimChange::Set {
            domain,
            selector,
            key,
        } => {
            let current = sf.dkim.as_ref();
            let domain = domain
                .as_ref()
                .map(DnsName::to_string)
                .or_else(|| current.map(|d| d.domain.clone()))
                .ok_or_else(|| invalid("dkim.domain", "Required: DKIM is not set up yet."))?;
            let selector = selector
                .as_ref()
                .map(DnsName::to_string)
                .or_else(|| current.map(|d| d.selector.clone()))
                .ok_or_else(|| invalid("dkim.selector", "Required: DKIM is not set up yet."))?;
            let key = match key {
                Some(k) => sealed(keys, sf.id, k, k.signing_form()),
                None => current.map(|d| d.key.clone()).ok_or_else(|| {
                    invalid("dkim.private_key", "Required: DKIM is not set up yet.")
                })?,
            };
            Some(DkimSettings {
                domain,
                selector,
                key,
            })
        }
    };
    if let Some(d) = &dkim {
        let field = match &change.dkim {
            DkimChange::Set {
                domain: Some(_), ..
            } => "dkim.domain",
            _ => "from_email",
        };
        let domain = DnsName::parse(&d.domain).map_err(|e| invalid(field, e.to_string()))?;
        check_alignment(&domain, &from_email).map_err(|e| invalid(field, format!("{e}.")))?;
    }
    Ok(SenderSettings {
        from_name,
        from_email,
        reply_to,
        dkim,
    })
}

/// Checks a change without making it (the command line checks before it writes the storefront).
pub fn check(keys: &Keys, sf: &Storefront, change: &SenderChange) -> Result<(), SenderError> {
    merged(keys, sf, change).map(|_| ())
}

/// Changes the storefront's sender settings (all or nothing) and records it in the audit log
/// with `audit` (its action and details; the fields changed are added, never a key). Answers
/// the storefront as it is now.
pub async fn change(
    store: &Store,
    keys: &Keys,
    sf: &Storefront,
    change: &SenderChange,
    audit: (&str, serde_json::Value),
    now: DateTime<Utc>,
) -> Result<Storefront, SenderError> {
    let settings = merged(keys, sf, change)?;
    let (action, mut details) = audit;
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("changed".into(), serde_json::json!(change.fields()));
    }
    store
        .update_sender(sf.id, &settings, (action, details), now)
        .await?
        .ok_or(SenderError::Gone)
}

/// Seals the DKIM keys an earlier version stored in plaintext (run at start, after the
/// migrations): each is replaced by its sealed form, with its public key when it loads. One
/// that does not load is sealed all the same (no plaintext stays) and shows as misconfigured.
/// Answers how many were sealed.
pub async fn seal_plaintext_keys(
    store: &Store,
    keys: &Keys,
    now: DateTime<Utc>,
) -> DbResult<usize> {
    let mut sealed_now = 0;
    for (id, text) in store.plaintext_dkim_keys().await? {
        let key = match DkimKey::parse(text.expose()) {
            Ok(k) => sealed(keys, id, &k, &text),
            Err(e) => {
                tracing::warn!(storefront_id = id, error = %e, "a plaintext DKIM key does not load; sealed as it is");
                SealedDkimKey {
                    sealed: keys.seal_dkim_key(id, &text),
                    algorithm: None,
                    public_key: None,
                }
            }
        };
        if store.seal_plaintext_dkim_key(id, &key, now).await? {
            sealed_now += 1;
        }
    }
    if sealed_now > 0 {
        tracing::info!(
            count = sealed_now,
            "sealed DKIM private keys stored in plaintext"
        );
    }
    Ok(sealed_now)
}

/// The storefront's sender settings as they are now (read afresh: the cache may be behind a
/// change just made), `None` if it no longer exists.
pub async fn read(svc: &Services, storefront_id: i64) -> Result<Option<SenderView>, AppError> {
    Ok(svc
        .store
        .storefront(storefront_id)
        .await?
        .map(|sf| view(&svc.keys, &sf)))
}

/// [`change`] for a running application: this process's storefront cache forgets the old
/// settings at once (other processes' caches within their 30 seconds).
pub async fn apply(
    svc: &Services,
    storefront_id: i64,
    c: &SenderChange,
    audit: (&str, serde_json::Value),
) -> Result<SenderView, SenderError> {
    let sf = svc
        .store
        .storefront(storefront_id)
        .await?
        .ok_or(SenderError::Gone)?;
    let sf = change(&svc.store, &svc.keys, &sf, c, audit, svc.now()).await?;
    svc.storefronts.clear();
    Ok(view(&svc.keys, &sf))
}
