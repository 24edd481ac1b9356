//! Applies the numbered SQL files of `migrations/postgres` or `migrations/sqlite`, once each,
//! in order, recording them in `schema_migrations`.

use chrono::Utc;

use super::db::{Database, DbError, DbResult, Dialect};
use crate::params;

/// (version, SQL) for each dialect, compiled in so the binary migrates on its own.
const POSTGRES: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_unmatched_sign_ins",
        include_str!("../../migrations/postgres/0002_unmatched_sign_ins.sql"),
    ),
    (
        "0003_billing",
        include_str!("../../migrations/postgres/0003_billing.sql"),
    ),
    (
        "0004_operators",
        include_str!("../../migrations/postgres/0004_operators.sql"),
    ),
    (
        "0005_booking_cooldown",
        include_str!("../../migrations/postgres/0005_booking_cooldown.sql"),
    ),
    (
        "0006_recipient_index",
        include_str!("../../migrations/postgres/0006_recipient_index.sql"),
    ),
    (
        "0007_email_change",
        include_str!("../../migrations/postgres/0007_email_change.sql"),
    ),
    (
        "0008_sign_in_clients",
        include_str!("../../migrations/postgres/0008_sign_in_clients.sql"),
    ),
    (
        "0009_payments",
        include_str!("../../migrations/postgres/0009_payments.sql"),
    ),
    (
        "0010_staff_disabled",
        include_str!("../../migrations/postgres/0010_staff_disabled.sql"),
    ),
    (
        "0011_sent_attempt",
        include_str!("../../migrations/postgres/0011_sent_attempt.sql"),
    ),
    (
        "0012_relay_progress",
        include_str!("../../migrations/postgres/0012_relay_progress.sql"),
    ),
    (
        "0013_api_readback",
        include_str!("../../migrations/postgres/0013_api_readback.sql"),
    ),
    (
        "0014_suppressions",
        include_str!("../../migrations/postgres/0014_suppressions.sql"),
    ),
    (
        "0015_webhooks",
        include_str!("../../migrations/postgres/0015_webhooks.sql"),
    ),
    (
        "0017_dkim_sealed",
        include_str!("../../migrations/postgres/0017_dkim_sealed.sql"),
    ),
    (
        "0018_sign_in_code",
        include_str!("../../migrations/postgres/0018_sign_in_code.sql"),
    ),
    (
        "0019_languages",
        include_str!("../../migrations/postgres/0019_languages.sql"),
    ),
];
const SQLITE: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_unmatched_sign_ins",
        include_str!("../../migrations/sqlite/0002_unmatched_sign_ins.sql"),
    ),
    (
        "0003_billing",
        include_str!("../../migrations/sqlite/0003_billing.sql"),
    ),
    (
        "0004_operators",
        include_str!("../../migrations/sqlite/0004_operators.sql"),
    ),
    (
        "0005_booking_cooldown",
        include_str!("../../migrations/sqlite/0005_booking_cooldown.sql"),
    ),
    (
        "0006_recipient_index",
        include_str!("../../migrations/sqlite/0006_recipient_index.sql"),
    ),
    (
        "0007_email_change",
        include_str!("../../migrations/sqlite/0007_email_change.sql"),
    ),
    (
        "0008_sign_in_clients",
        include_str!("../../migrations/sqlite/0008_sign_in_clients.sql"),
    ),
    (
        "0009_payments",
        include_str!("../../migrations/sqlite/0009_payments.sql"),
    ),
    (
        "0010_staff_disabled",
        include_str!("../../migrations/sqlite/0010_staff_disabled.sql"),
    ),
    (
        "0011_sent_attempt",
        include_str!("../../migrations/sqlite/0011_sent_attempt.sql"),
    ),
    (
        "0012_relay_progress",
        include_str!("../../migrations/sqlite/0012_relay_progress.sql"),
    ),
    (
        "0013_api_readback",
        include_str!("../../migrations/sqlite/0013_api_readback.sql"),
    ),
    (
        "0014_suppressions",
        include_str!("../../migrations/sqlite/0014_suppressions.sql"),
    ),
    (
        "0015_webhooks",
        include_str!("../../migrations/sqlite/0015_webhooks.sql"),
    ),
    (
        "0017_dkim_sealed",
        include_str!("../../migrations/sqlite/0017_dkim_sealed.sql"),
    ),
    (
        "0018_sign_in_code",
        include_str!("../../migrations/sqlite/0018_sign_in_code.sql"),
    ),
    (
        "0019_languages",
        include_str!("../../migrations/sqlite/0019_languages.sql"),
    ),
];

/// A fixed key for PostgreSQL's advisory lock, so nodes starting together migrate one at a time.
/// The two-integer key space does not overlap the one-bigint space the sign-in path locks
/// account ids in.
const MIGRATION_LOCK: (i32, i32) = (0x4c4b, 1);

/// Applies what is missing; returns the versions applied now.
pub async fn migrate(db: &dyn Database) -> DbResult<Vec<String>> {
    let files = match db.dialect() {
        Dialect::Postgres => POSTGRES,
        Dialect::Sqlite => SQLITE,
    };
    let mut conn = db.conn().await?;
    if db.dialect() == Dialect::Postgres {
        conn.execute(
            "SELECT pg_advisory_lock($1, $2)",
            &params![MIGRATION_LOCK.0, MIGRATION_LOCK.1],
        )
        .await?;
    }
    let result = async {
        conn.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version TEXT PRIMARY KEY,
                 applied_at TEXT NOT NULL
             )",
        )
        .await?;
        let done: Vec<String> = conn
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.string(0))
            .collect();
        let mut applied = Vec::new();
        for (version, sql) in files {
            if done.iter().any(|d| d == version) {
                continue;
            }
            let mut tx = db.begin().await?;
            tx.batch(sql)
                .await
                .map_err(|e| DbError::Query(format!("migration {version}: {e}")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &params![*version, Utc::now().to_rfc3339()],
            )
            .await?;
            tx.commit().await?;
            applied.push(version.to_string());
        }
        Ok(applied)
    }
    .await;
    if db.dialect() == Dialect::Postgres {
        let _ = conn
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &params![MIGRATION_LOCK.0, MIGRATION_LOCK.1],
            )
            .await;
    }
    result
}

/// The versions a fresh database would get (for `latchkey migrate --status`).
pub fn known_versions(dialect: Dialect) -> Vec<&'static str> {
    match dialect {
        Dialect::Postgres => POSTGRES.iter().map(|(v, _)| *v).collect(),
        Dialect::Sqlite => SQLITE.iter().map(|(v, _)| *v).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_trees_have_the_same_versions() {
        assert_eq!(
            known_versions(Dialect::Postgres),
            known_versions(Dialect::Sqlite)
        );
    }
}
