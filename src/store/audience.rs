//! Whose sign-in links and sessions: a customer of one storefront, or a staff member on the
//! console. Each audience keeps the same kind of rows in tables of its own (`sign_in_tokens`
//! and `sessions` for customers, `staff_tokens` and `staff_sessions` for staff), so `tokens`
//! and `sessions` implement each step once for both. The table and column names come from the
//! fixed `match` in [`Audience::tables`], never from input; every value stays a bound
//! parameter. Where the rows differ (a customer's name their storefront, a customer's link
//! says who asked for it and where it lands), a `match` on the audience picks the statement.

use super::db::Value;
use super::rows::{ACCOUNT_COLUMNS, STAFF_COLUMNS};

/// Whose link or session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A customer of this storefront (its id): a link or session of one storefront never
    /// opens another.
    Customer(i64),
    /// A staff member on the console.
    Staff,
}

/// The tables of one audience.
pub(super) struct Tables {
    /// Who signs in: `accounts` or `staff_users`.
    pub subjects: &'static str,
    /// The column of a link or session that names its subject.
    pub subject_id: &'static str,
    /// The columns a subject is read with (`account_from`, `staff_from`).
    pub subject_columns: &'static str,
    pub tokens: &'static str,
    pub sessions: &'static str,
    /// How a session `s` joins its subject `a` (an account of the session's own storefront).
    pub session_subject: &'static str,
    /// Where a redeemed link lands: a customer's link may name a path; a console link lands on
    /// the console's start page.
    pub redirect_path: &'static str,
}

pub(super) const CUSTOMERS: Tables = Tables {
    subjects: "accounts",
    subject_id: "account_id",
    subject_columns: ACCOUNT_COLUMNS,
    tokens: "sign_in_tokens",
    sessions: "sessions",
    session_subject: "a.id = s.account_id AND a.storefront_id = s.storefront_id",
    redirect_path: "redirect_path",
};

pub(super) const STAFF: Tables = Tables {
    subjects: "staff_users",
    subject_id: "staff_user_id",
    subject_columns: STAFF_COLUMNS,
    tokens: "staff_tokens",
    sessions: "staff_sessions",
    session_subject: "a.id = s.staff_user_id",
    redirect_path: "CAST(NULL AS TEXT)",
};

/// Both audiences' tables (the sweeps).
pub(super) const EVERY_AUDIENCE: [&Tables; 2] = [&CUSTOMERS, &STAFF];

impl Audience {
    pub(super) fn tables(self) -> &'static Tables {
        match self {
            Audience::Customer(_) => &CUSTOMERS,
            Audience::Staff => &STAFF,
        }
    }

    /// The condition (` AND …`) that a link or session row (`row`: its alias and a dot, or
    /// nothing) is this audience's and that its subject may sign in, with its parameter (`$n`)
    /// if it has one: a customer's row is of the storefront; a staff user must not be disabled.
    pub(super) fn scope(self, row: &str, n: usize) -> (String, Option<Value>) {
        match self {
            Audience::Customer(storefront_id) => (
                format!(" AND {row}storefront_id = ${n}"),
                Some(Value::from(storefront_id)),
            ),
            Audience::Staff => (
                format!(
                    " AND {row}staff_user_id IN (SELECT id FROM staff_users WHERE disabled_at IS NULL)"
                ),
                None,
            ),
        }
    }
}
