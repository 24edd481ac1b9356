//! The values that are not text: dates and times, money, choices of fixed strings, and the
//! ids, cursors and page sizes of paths and queries. Like the text fields, each type holds
//! its rule, and both the reading of a request and the document use it.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{checked, has_hidden, known_format, string_schema};
use crate::domain::EmailAddress;
use crate::http::api::input::{FromJson, Problems};

// ---------------------------------------------------------------------------------------------
// Dates, times, money
// ---------------------------------------------------------------------------------------------

/// The years a date may fall in.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;

/// A calendar date, written exactly `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(NaiveDate);

impl Date {
    /// A date written exactly `YYYY-MM-DD`, between the years 1900 and 2200.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return None;
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .filter(|d| YEARS.contains(&d.year()))
            .map(Self)
    }

    pub fn get(self) -> NaiveDate {
        self.0
    }
}

impl From<NaiveDate> for Date {
    fn from(d: NaiveDate) -> Self {
        Self(d)
    }
}

impl FromJson for Date {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let parsed = value.as_str().and_then(Self::parse);
        checked(
            parsed.ok_or_else(|| "Must be a date written YYYY-MM-DD, like 2025-03-01.".into()),
            name,
            p,
        )
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl PartialSchema for Date {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .format(known_format(KnownFormat::Date))
            .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
            .description(Some(format!(
                "YYYY-MM-DD, in the years {} to {}.",
                YEARS.start(),
                YEARS.end()
            )))
            .into()
    }
}

impl ToSchema for Date {}

/// A moment, written RFC 3339 in UTC to the millisecond.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .format(known_format(KnownFormat::DateTime))
            .description(Some("RFC 3339, in UTC."))
            .into()
    }
}

impl ToSchema for Timestamp {}

/// The largest amount: ten billion in major units, more than any rent or invoice.
pub const AMOUNT_MAX: i64 = 1_000_000_000_000;

/// An amount in minor units (cents): a whole number, 0 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountMinor(i64);

impl AmountMinor {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl FromJson for AmountMinor {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = match value.as_i64() {
            Some(a) if (0..=AMOUNT_MAX).contains(&a) => Ok(Self(a)),
            Some(a) if a < 0 => Err("May not be negative.".to_string()),
            _ => Err("Must be a whole number of minor units (12900 for 129.00), 0 or more.".into()),
        };
        checked(read, name, p)
    }
}

impl PartialSchema for AmountMinor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(AMOUNT_MAX))
            .description(Some("Amount in minor units (cents): 12900 is 129.00."))
            .into()
    }
}

impl ToSchema for AmountMinor {}

/// A currency as stored and answered: three capitals.
pub struct StoredCurrency;

impl PartialSchema for StoredCurrency {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .pattern(Some("^[A-Z]{3}$"))
            .description(Some("ISO 4217 code, three letters, in capitals."))
            .into()
    }
}

impl ToSchema for StoredCurrency {}

/// A currency: three letters (ISO 4217), kept in capitals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromJson for Currency {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = match value {
            Value::String(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Ok(Self(s.to_ascii_uppercase()))
            }
            _ => Err("Must be a currency code of three letters, like USD.".into()),
        };
        checked(read, name, p)
    }
}

impl PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .pattern(Some("^[A-Za-z]{3}$"))
            .description(Some(
                "ISO 4217 code, three letters; stored and returned in capitals.",
            ))
            .into()
    }
}

impl ToSchema for Currency {}

// ---------------------------------------------------------------------------------------------
// Choices
// ---------------------------------------------------------------------------------------------

/// A choice of fixed strings: an enum that reads, writes and documents itself as them.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromJson for $name {
            fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
                let found = value
                    .as_str()
                    .and_then(|s| Self::ALL.iter().copied().find(|c| c.as_str() == s));
                let all: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                checked(
                    found.ok_or_else(|| format!("Must be one of: {}.", all.join(", "))),
                    name,
                    p,
                )
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                enum_schema(Self::ALL.iter().map(|c| c.as_str()))
            }
        }

        impl ToSchema for $name {}
    };
}

/// A string that is one of `values`.
pub fn enum_schema<'a>(values: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    string_schema().enum_values(Some(values)).into()
}

choice!(
    /// Where a rental stands.
    RentalStatus {
        Upcoming = "upcoming",
        Active = "active",
        Ended = "ended",
        Cancelled = "cancelled",
    }
);

choice!(
    /// What a rate is charged per.
    RatePeriod {
        Day = "day",
        Week = "week",
        Month = "month",
    }
);

choice!(
    /// Where a delivered rental (a cart, equipment) stands; the portal shows the tracking link
    /// until it is delivered, returned or cancelled.
    RentalDeliveryStatus {
        Scheduled = "scheduled",
        OutForDelivery = "out_for_delivery",
        Delivered = "delivered",
        PickupScheduled = "pickup_scheduled",
        Returned = "returned",
        Cancelled = "cancelled",
    }
);

choice!(
    /// An invoice's status as the operator sets it.
    InvoiceStatus {
        Pending = "pending",
        Paid = "paid",
        Void = "void",
    }
);

choice!(
    /// An invoice's status as stored: `processing` while a pre-authorized debit is on its way.
    StoredInvoiceStatus {
        Pending = "pending",
        Processing = "processing",
        Paid = "paid",
        Void = "void",
    }
);

// ---------------------------------------------------------------------------------------------
// Ids, paging and filters
// ---------------------------------------------------------------------------------------------

/// A database id in a path or cursor: a positive decimal number of at most 18 digits.
pub fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|id| *id > 0)
}

/// An id in a path.
pub struct Id;

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .into()
    }
}

impl ToSchema for Id {}

/// The `next` cursor of a page of deliveries.
pub struct Cursor;

impl PartialSchema for Cursor {
    fn schema() -> RefOr<Schema> {
        string_schema().pattern(Some("^[0-9]{1,18}$")).into()
    }
}

impl ToSchema for Cursor {}

/// A page size.
pub struct PageLimit;

impl PageLimit {
    pub const DEFAULT: i64 = 50;
    pub const MAX: i64 = 100;

    pub fn parse(s: &str) -> Option<i64> {
        s.parse::<i64>()
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
    }
}

impl PartialSchema for PageLimit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(Self::MAX))
            .default(Some(Self::DEFAULT.into()))
            .into()
    }
}

impl ToSchema for PageLimit {}

/// A recipient to filter by: the whole address.
pub struct Recipient;

impl Recipient {
    pub const RULE: &str =
        "Must be an email address (at most 254 characters, no control characters).";

    /// The trimmed address, if it may be one.
    pub fn parse(s: &str) -> Result<Option<&str>, &'static str> {
        let r = s.trim();
        if r.is_empty() {
            Ok(None)
        } else if r.chars().count() > EmailAddress::MAX_LEN || has_hidden(r) {
            Err(Self::RULE)
        } else {
            Ok(Some(r))
        }
    }
}

impl PartialSchema for Recipient {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .max_length(Some(EmailAddress::MAX_LEN))
            .into()
    }
}

impl ToSchema for Recipient {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T: FromJson>(value: Value) -> (Option<T>, Problems) {
        let mut p = Problems::default();
        (T::read(&value, "f", &mut p), p)
    }

    #[test]
    fn dates_are_exactly_iso() {
        assert_eq!(
            Date::parse("2025-03-01").map(Date::get),
            NaiveDate::from_ymd_opt(2025, 3, 1)
        );
        for bad in [
            "2025-3-1",
            "2025-02-30",
            "01/03/2025",
            "2025-03-01T00:00",
            "+2025-03-0",
            "1800-01-01",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn amounts_are_whole_and_not_negative() {
        assert_eq!(
            read::<AmountMinor>(json!(12900)).0,
            Some(AmountMinor(12900))
        );
        for bad in [json!(12.5), json!("100"), json!(-5), json!(1e20)] {
            let (value, p) = read::<AmountMinor>(bad.clone());
            assert!(value.is_none() && p.has("f"), "{bad}");
        }
    }

    #[test]
    fn currencies_are_three_letters_in_capitals() {
        assert_eq!(read::<Currency>(json!("usd")).0.unwrap().as_str(), "USD");
        for bad in [json!("US"), json!(840), json!("U5D")] {
            assert!(read::<Currency>(bad.clone()).1.has("f"), "{bad}");
        }
    }

    #[test]
    fn choices_take_only_their_strings() {
        assert_eq!(read::<RatePeriod>(json!("week")).0, Some(RatePeriod::Week));
        let (_, p) = read::<RatePeriod>(json!("year"));
        assert!(p.has("f"));
    }
}
