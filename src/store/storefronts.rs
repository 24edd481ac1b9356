//! Storefronts (the tenants: name, sender, custom host, DKIM) and their facilities: the
//! storefront a request's host or slug names, the facilities a portal page lists, and the
//! operator's upserts of facilities by external reference and their read-back.

use chrono::{DateTime, Utc};

use super::Store;
use super::audit::insert_audit;
use super::db::{Conn, DbResult, Row, qualified};
use super::page::{Page, keyset, keyset_params, page_of};
use super::upsert::{Upserted, insert_or_update};
use crate::domain::dkim::DkimAlgorithm;
use crate::domain::{EmailAddress, Secret};
use crate::params;

#[derive(Debug, Clone)]
pub struct Storefront {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub from_name: String,
    pub from_email: EmailAddress,
    pub reply_to: Option<String>,
    pub rent_url: String,
    pub custom_host: Option<String>,
    pub acss_debit: bool,
    pub dkim: Option<DkimSettings>,
    /// The language of its pages and emails for whoever chose none (a tag of `locales/`).
    pub language: String,
}

/// A storefront's DKIM signing: domain (`d=`), selector (`s=`) and the private key as stored,
/// sealed with the secret key ([`crate::crypto::Keys::seal_dkim_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    pub key: SealedDkimKey,
}

/// A sealed DKIM private key, with its algorithm and public key (the DNS record's `k=` and
/// `p=`; public by nature). Those two are `None` only for a key stored in plaintext by an
/// earlier version that did not load when it was sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedDkimKey {
    pub sealed: Vec<u8>,
    pub algorithm: Option<DkimAlgorithm>,
    pub public_key: Option<String>,
}

impl std::fmt::Debug for SealedDkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedDkimKey")
            .field("sealed", &"[sealed]")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

const STOREFRONT_COLUMNS: &str = "id, slug, name, from_name, from_email, reply_to, rent_url, custom_host, acss_debit, dkim_domain, dkim_selector, dkim_key_sealed, dkim_key_type, dkim_public_key, language";

fn storefront_from(r: &Row) -> Storefront {
    let dkim = match (r.opt_string(9), r.opt_string(10), r.opt_bytes(11)) {
        (Some(domain), Some(selector), Some(sealed)) => Some(DkimSettings {
            domain,
            selector,
            key: SealedDkimKey {
                sealed,
                algorithm: r.opt_string(12).as_deref().and_then(DkimAlgorithm::parse),
                public_key: r.opt_string(13),
            },
        }),
        _ => None,
    };
    Storefront {
        id: r.i64(0),
        slug: r.string(1),
        name: r.string(2),
        from_name: r.string(3),
        from_email: r.email(4),
        reply_to: r.opt_string(5),
        rent_url: r.string(6),
        custom_host: r.opt_string(7),
        acss_debit: r.bool(8),
        dkim,
        language: r.string(14),
    }
}

/// A storefront's sender settings as they are to be written, all of them.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub from_name: String,
    pub from_email: EmailAddress,
    pub reply_to: Option<EmailAddress>,
    pub dkim: Option<DkimSettings>,
}

/// What is needed to create a storefront.
#[derive(Debug, Clone)]
pub struct NewStorefront {
    pub slug: String,
    pub name: String,
    pub from_name: String,
    pub from_email: EmailAddress,
    pub rent_url: String,
    pub custom_host: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Facility {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub email: String,
}

fn facility_from(r: &Row) -> Facility {
    Facility {
        id: r.i64(0),
        name: r.string(1),
        address: r.string(2),
        phone: r.string(3),
        email: r.string(4),
    }
}

#[derive(Debug, Clone)]
pub struct FacilityFields {
    pub name: String,
    pub address: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct FacilityRecord {
    pub id: i64,
    pub external_ref: String,
    pub fields: FacilityFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const FACILITY_COLUMNS: &str =
    "id, external_ref, name, address, phone, email, created_at, updated_at";

fn facility_record_from(r: &Row) -> FacilityRecord {
    FacilityRecord {
        id: r.i64(0),
        external_ref: r.string(1),
        fields: FacilityFields {
            name: r.string(2),
            address: r.string(3),
            phone: r.string(4),
            email: r.string(5),
        },
        created_at: r.ts(6),
        updated_at: r.ts(7),
    }
}

/// A facility's id by its external reference (`None` for another storefront's), on the
/// caller's connection or transaction.
pub(super) async fn facility_by_ref(
    conn: &mut dyn Conn,
    storefront_id: i64,
    external_ref: &str,
) -> DbResult<Option<i64>> {
    Ok(conn
        .query_opt(
            "SELECT id FROM facilities WHERE storefront_id = $1 AND external_ref = $2",
            &params![storefront_id, external_ref],
        )
        .await?
        .map(|r| r.i64(0)))
}

impl Store {
    pub async fn storefront_by_slug(&self, slug: &str) -> DbResult<Option<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE slug = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![slug])
            .await?
            .as_ref()
            .map(storefront_from))
    }

    pub async fn storefront_by_host(&self, host: &str) -> DbResult<Option<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE custom_host = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![host.to_ascii_lowercase()])
            .await?
            .as_ref()
            .map(storefront_from))
    }

    pub async fn storefront(&self, id: i64) -> DbResult<Option<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE id = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![id])
            .await?
            .as_ref()
            .map(storefront_from))
    }

    /// Every storefront, by name (the console's list for platform support).
    pub async fn storefronts(&self) -> DbResult<Vec<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts ORDER BY name, id");
        Ok(self
            .db()
            .query(&sql, &[])
            .await?
            .iter()
            .map(storefront_from)
            .collect())
    }

    /// Creates a storefront, or updates the one with that slug. Returns its id.
    pub async fn upsert_storefront(&self, s: &NewStorefront, now: DateTime<Utc>) -> DbResult<i64> {
        let row = self
            .db()
            .query_one(
                "INSERT INTO storefronts (slug, name, from_name, from_email, rent_url, custom_host, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (slug) DO UPDATE SET name = excluded.name, from_name = excluded.from_name,
                     from_email = excluded.from_email, rent_url = excluded.rent_url,
                     custom_host = excluded.custom_host, updated_at = excluded.updated_at
                 RETURNING id",
                &params![
                    s.slug.as_str(),
                    s.name.as_str(),
                    s.from_name.as_str(),
                    s.from_email.as_str(),
                    s.rent_url.as_str(),
                    s.custom_host.clone(),
                    now
                ],
            )
            .await?;
        Ok(row.i64(0))
    }

    /// Replaces the storefront's sender settings (with an audit entry, in one transaction);
    /// the storefront as it is now, `None` if it does not exist.
    pub async fn update_sender(
        &self,
        storefront_id: i64,
        s: &SenderSettings,
        audit: (&str, serde_json::Value),
        now: DateTime<Utc>,
    ) -> DbResult<Option<Storefront>> {
        let mut tx = self.db().begin().await?;
        let (domain, selector, sealed, key_type, public_key) = match &s.dkim {
            Some(d) => (
                Some(d.domain.clone()),
                Some(d.selector.clone()),
                Some(d.key.sealed.clone()),
                d.key.algorithm.map(|a| a.as_str().to_string()),
                d.key.public_key.clone(),
            ),
            None => (None, None, None, None, None),
        };
        let changed = tx
            .execute(
                "UPDATE storefronts SET from_name = $2, from_email = $3, reply_to = $4,
                     dkim_domain = $5, dkim_selector = $6, dkim_key_sealed = $7, dkim_key_type = $8,
                     dkim_public_key = $9, dkim_private_key = NULL, updated_at = $10
                 WHERE id = $1",
                &params![
                    storefront_id,
                    s.from_name.as_str(),
                    s.from_email.as_str(),
                    s.reply_to.as_ref().map(|r| r.as_str().to_string()),
                    domain,
                    selector,
                    sealed,
                    key_type,
                    public_key,
                    now
                ],
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        insert_audit(&mut *tx, Some(storefront_id), None, audit.0, &audit.1, now).await?;
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE id = $1");
        let row = tx.query_one(&sql, &params![storefront_id]).await?;
        tx.commit().await?;
        Ok(Some(storefront_from(&row)))
    }

    /// DKIM private keys an earlier version stored in plaintext, by storefront id.
    pub async fn plaintext_dkim_keys(&self) -> DbResult<Vec<(i64, Secret<String>)>> {
        Ok(self
            .db()
            .query(
                "SELECT id, dkim_private_key FROM storefronts WHERE dkim_private_key IS NOT NULL ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.i64(0), Secret::new(r.string(1))))
            .collect())
    }

    /// Replaces a plaintext DKIM key by its sealed form (if it is still there).
    pub async fn seal_plaintext_dkim_key(
        &self,
        storefront_id: i64,
        key: &SealedDkimKey,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        let changed = self
            .db()
            .execute(
                "UPDATE storefronts SET dkim_key_sealed = $2, dkim_key_type = $3, dkim_public_key = $4,
                     dkim_private_key = NULL, updated_at = $5
                 WHERE id = $1 AND dkim_private_key IS NOT NULL",
                &params![
                    storefront_id,
                    key.sealed.clone(),
                    key.algorithm.map(|a| a.as_str().to_string()),
                    key.public_key.clone(),
                    now
                ],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Sets a storefront's default language (a tag the caller checked against `locales/`).
    pub async fn set_storefront_language(
        &self,
        storefront_id: i64,
        language: &str,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE storefronts SET language = $2, updated_at = $3 WHERE id = $1",
                &params![storefront_id, language, now],
            )
            .await?;
        Ok(())
    }

    /// Whether any storefront exists (the embedded default loads the demo when none does).
    pub async fn has_storefronts(&self) -> DbResult<bool> {
        Ok(self
            .db()
            .query_one("SELECT COUNT(*) FROM storefronts", &[])
            .await?
            .i64(0)
            > 0)
    }

    pub async fn facilities(&self, storefront_id: i64) -> DbResult<Vec<Facility>> {
        Ok(self
            .db()
            .query(
                "SELECT id, name, address, phone, email FROM facilities WHERE storefront_id = $1 ORDER BY name, id",
                &params![storefront_id],
            )
            .await?
            .iter()
            .map(facility_from)
            .collect())
    }

    /// The facilities the account deals with (through its contacts); all of the storefront's
    /// when it has none yet.
    pub async fn account_facilities(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Vec<Facility>> {
        let linked = self
            .db()
            .query(
                "SELECT f.id, f.name, f.address, f.phone, f.email FROM facilities f
                 WHERE f.storefront_id = $1 AND f.id IN (SELECT facility_id FROM contacts WHERE account_id = $2)
                 ORDER BY f.name, f.id",
                &params![storefront_id, account_id],
            )
            .await?;
        if !linked.is_empty() {
            return Ok(linked.iter().map(facility_from).collect());
        }
        self.facilities(storefront_id).await
    }

    /// A facility of the storefront.
    pub async fn storefront_facility(
        &self,
        storefront_id: i64,
        facility_id: i64,
    ) -> DbResult<Option<Facility>> {
        Ok(self
            .facilities(storefront_id)
            .await?
            .into_iter()
            .find(|f| f.id == facility_id))
    }

    /// A facility's id by its external reference (`None` for another storefront's).
    pub async fn facility_id_by_ref(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<i64>> {
        let mut conn = self.db().conn().await?;
        facility_by_ref(&mut *conn, storefront_id, external_ref).await
    }

    /// A page of the storefront's facilities as the API shows them, newest first.
    pub async fn facility_records(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<FacilityRecord>> {
        let sql = format!(
            "SELECT {} FROM facilities f {}",
            qualified(FACILITY_COLUMNS, "f"),
            keyset("f")
        );
        let rows = self
            .db()
            .query(&sql, &keyset_params(storefront_id, before, limit))
            .await?;
        let items = rows.iter().map(facility_record_from).collect();
        Ok(page_of(items, limit, |f: &FacilityRecord| f.id))
    }

    /// The storefront's facility with this reference (`None` for another storefront's).
    pub async fn facility_record(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<FacilityRecord>> {
        let sql = format!(
            "SELECT {FACILITY_COLUMNS} FROM facilities WHERE storefront_id = $1 AND external_ref = $2"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, external_ref])
            .await?
            .as_ref()
            .map(facility_record_from))
    }

    /// Creates or replaces a facility by its external reference.
    pub async fn upsert_facility(
        &self,
        storefront_id: i64,
        external_ref: &str,
        f: &FacilityFields,
        now: DateTime<Utc>,
    ) -> DbResult<Upserted<FacilityRecord>> {
        let mut tx = self.db().begin().await?;
        let values = params![
            storefront_id,
            external_ref,
            f.name.as_str(),
            f.address.as_str(),
            f.phone.as_str(),
            f.email.as_str(),
            now
        ];
        let (id, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO facilities (storefront_id, external_ref, name, address, phone, email, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (storefront_id, external_ref) DO NOTHING RETURNING id",
                &values,
            ),
            (
                "UPDATE facilities SET name = $3, address = $4, phone = $5, email = $6, updated_at = $7
                 WHERE storefront_id = $1 AND external_ref = $2 RETURNING id",
                &values,
            ),
        )
        .await?;
        let sql = format!("SELECT {FACILITY_COLUMNS} FROM facilities WHERE id = $1");
        let row = tx.query_one(&sql, &params![id]).await?;
        tx.commit().await?;
        Ok(Upserted {
            record: facility_record_from(&row),
            created,
        })
    }
}
