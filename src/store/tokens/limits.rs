//! The limits a sign-in request is held to (SPEC §8, nobody can lock a customer out): links
//! per client bucket (an IP, or a browser with a valid device cookie) and a ceiling per account
//! or staff user, with the verdict and the reason the Emails tab shows.

use chrono::{DateTime, Duration, Utc};

use crate::crypto::DeviceClaim;
use crate::params;
use crate::store::audience::Tables;
use crate::store::db::{Conn, DbResult};

/// At most `max` links within `window`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub max: u32,
    pub window: Duration,
}

/// The limits a sign-in request of a customer (or a staff member on the console) is held to,
/// with the client it came from (SPEC §8, nobody can lock a customer out).
#[derive(Debug, Clone)]
pub struct LinkLimit {
    /// Per account and client bucket: one IP (or IPv6 /64), or one browser with a valid device
    /// cookie. A stranger's requests spend only their own bucket.
    pub per_client: Window,
    /// Per account over all its links, against mail-bombing from many IPs. A valid device
    /// cookie is not held back by it.
    pub ceiling: Window,
    /// The keyed hash of the client's IP bucket (`Keys::client_bucket`).
    pub ip_bucket: Vec<u8>,
    /// The device cookie the request carried, checked once the account is known.
    pub device: Option<DeviceClaim>,
}

/// Why a request gets no link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The client's own bucket is spent.
    PerClient,
    /// The account's ceiling is spent (and the request has no device cookie for it).
    Ceiling,
}

impl LinkLimit {
    /// The bucket a request for `subject_id` counts in, and whether it is a valid device's own.
    pub fn bucket_for(&self, subject_id: i64) -> (&[u8], bool) {
        match &self.device {
            Some(d) if d.is_for(subject_id) => (d.bucket(), true),
            _ => (&self.ip_bucket, false),
        }
    }

    /// The decision, given the links already in the request's bucket and the account's links
    /// in the ceiling's window.
    pub fn verdict(&self, device: bool, in_bucket: i64, in_ceiling: i64) -> Verdict {
        if in_bucket >= self.per_client.max as i64 {
            Verdict::PerClient
        } else if !device && in_ceiling >= self.ceiling.max as i64 {
            Verdict::Ceiling
        } else {
            Verdict::Allowed
        }
    }

    /// What the Emails tab says of a suppressed request.
    pub fn reason(&self, verdict: Verdict) -> String {
        let (w, whom) = match verdict {
            Verdict::Ceiling => (self.ceiling, "for one account"),
            _ => (self.per_client, "from one client"),
        };
        format!(
            "not sent: {} sign-in links in {} minutes {whom} is the limit",
            w.max,
            w.window.num_minutes()
        )
    }
}

impl LinkLimit {
    /// Counts the recent links of `subject_id` (an account or a staff user, in `tables`) in
    /// the request's bucket and in the ceiling's window, inside the transaction that will
    /// write the new link: the verdict, and the bucket the new link counts in. (PostgreSQL's
    /// batch of customers' links counts the same way, for many accounts at once.)
    pub(in crate::store) async fn check(
        &self,
        conn: &mut dyn Conn,
        tables: &Tables,
        subject_id: i64,
        now: DateTime<Utc>,
    ) -> DbResult<(Verdict, Vec<u8>)> {
        let (bucket, device) = self.bucket_for(subject_id);
        let sql = format!(
            "SELECT
                 (SELECT COUNT(*) FROM {tokens} WHERE {subject} = $1 AND created_at > $2 AND client_key = $3),
                 (SELECT COUNT(*) FROM {tokens} WHERE {subject} = $1 AND created_at > $4 AND client_key IS NOT NULL)",
            tokens = tables.tokens,
            subject = tables.subject_id,
        );
        let counts = conn
            .query_one(
                &sql,
                &params![
                    subject_id,
                    now - self.per_client.window,
                    bucket.to_vec(),
                    now - self.ceiling.window
                ],
            )
            .await?;
        Ok((
            self.verdict(device, counts.i64(0), counts.i64(1)),
            bucket.to_vec(),
        ))
    }
}
