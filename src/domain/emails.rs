//! What each email says besides its storefront and its link: one typed value per kind, written
//! with the delivery row (`deliveries.payload`, JSON) and read back by the Mailer. The kind of a
//! delivery is the kind of its data, so the two cannot disagree.
//!
//! The JSON of each kind is its struct's fields, as the rows written before these types existed
//! have them; [`EmailData::read`] still accepts those rows (formatted dates and amounts, an
//! unmasked new address), so an email queued across an upgrade is sent, not dropped.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::Money;
use super::email::mask;

/// The kinds of email the product sends (the `deliveries.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    SignIn,
    BookingConfirmation,
    StaffSignIn,
    EmailChanged,
    PaymentReceipt,
    PaymentFailed,
    /// The link that confirms a new email address, sent to that address.
    ConfirmEmail,
    /// To a storefront's owners: a webhook endpoint failing for three days was disabled.
    WebhookDisabled,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::SignIn => "sign_in",
            DeliveryKind::BookingConfirmation => "booking_confirmation",
            DeliveryKind::StaffSignIn => "staff_sign_in",
            DeliveryKind::EmailChanged => "email_changed",
            DeliveryKind::PaymentReceipt => "payment_receipt",
            DeliveryKind::PaymentFailed => "payment_failed",
            DeliveryKind::ConfirmEmail => "confirm_email",
            DeliveryKind::WebhookDisabled => "webhook_disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sign_in" => DeliveryKind::SignIn,
            "booking_confirmation" => DeliveryKind::BookingConfirmation,
            "staff_sign_in" => DeliveryKind::StaffSignIn,
            "email_changed" => DeliveryKind::EmailChanged,
            "payment_receipt" => DeliveryKind::PaymentReceipt,
            "payment_failed" => DeliveryKind::PaymentFailed,
            "confirm_email" => DeliveryKind::ConfirmEmail,
            "webhook_disabled" => DeliveryKind::WebhookDisabled,
            _ => return None,
        })
    }

    /// Kinds whose email carries a magic link.
    pub fn carries_link(self) -> bool {
        matches!(
            self,
            DeliveryKind::SignIn
                | DeliveryKind::BookingConfirmation
                | DeliveryKind::StaffSignIn
                | DeliveryKind::ConfirmEmail
        )
    }
}

/// The data of one email, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EmailData {
    SignIn(Greeting),
    BookingConfirmation(Booking),
    StaffSignIn(Greeting),
    /// The notice to the old address once a change is confirmed.
    EmailChanged(EmailChanged),
    PaymentReceipt(Receipt),
    /// A pre-authorized debit failed: the invoice waits for payment again.
    PaymentFailed(PaymentFailed),
    /// The link that confirms a new address, sent to it.
    ConfirmEmail(Greeting),
    /// To a storefront's owner: a webhook endpoint was disabled.
    WebhookDisabled(WebhookDisabled),
}

/// A webhook endpoint disabled after three days of failed deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub first_name: String,
    pub url: String,
    /// When its deliveries started failing (RFC 3339).
    pub failing_since: String,
    /// The last try's HTTP status or error.
    pub last_error: String,
}

/// Only the name the email greets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    #[serde(default)]
    pub first_name: String,
    /// A customer's own sign-in link also carries the sign-in code (SPEC §11), which the
    /// Mailer derives from the link's token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub code: bool,
    /// A sign-in link sent by staff (a resend from the console), not asked for by the
    /// customer: the email says so instead of "if you did not ask for this link".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_by_staff: bool,
}

/// A booking confirmation: the rental and its period, as the portal shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    #[serde(default)]
    pub first_name: String,
    #[serde(flatten)]
    pub rental: BookedRental,
}

/// The rental a booking confirmation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedRental {
    pub rental_id: i64,
    pub label: String,
    pub facility: String,
    /// The period as the portal writes it in English (`crate::display::rental_period`): what
    /// the rows written before languages carry, and what an email says without the days below.
    pub dates: String,
    /// The first day, so the email writes the period in its reader's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_on: Option<NaiveDate>,
    /// The last day, if the rental has one (read only with `starts_on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChanged {
    pub first_name: String,
    pub old_email: String,
    /// The new address partly hidden: the notice may be read by whoever took the old one.
    pub new_email_masked: String,
    #[serde(default)]
    pub facilities: Vec<FacilityContact>,
}

/// A facility's name, phone and email, for "if it was not you, contact us".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityContact {
    pub name: String,
    pub phone: String,
    pub email: String,
}

/// The invoice an email is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub number: String,
    pub description: String,
    pub facility: String,
    pub amount: Shown<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub first_name: String,
    #[serde(flatten)]
    pub invoice: InvoiceLine,
    pub paid_on: Shown<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub first_name: String,
    #[serde(flatten)]
    pub invoice: InvoiceLine,
    /// Where to pay now (`crate::links::PortalLink::Billing`).
    pub billing_url: String,
}

/// A value, or the text a row written before it was typed carries instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shown<T> {
    Value(T),
    Text(String),
}

impl<T> Shown<T> {
    /// The value as a person reads it.
    pub fn text(&self, show: impl FnOnce(&T) -> String) -> String {
        match self {
            Shown::Value(v) => show(v),
            Shown::Text(t) => t.clone(),
        }
    }
}

impl From<Money> for Shown<Money> {
    fn from(m: Money) -> Self {
        Shown::Value(m)
    }
}

impl From<NaiveDate> for Shown<NaiveDate> {
    fn from(d: NaiveDate) -> Self {
        Shown::Value(d)
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            minor: i64,
            currency: &'a str,
        }
        Stored {
            minor: self.minor(),
            currency: self.currency(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            minor: i64,
            currency: String,
        }
        let s = Stored::deserialize(d)?;
        Money::new(s.minor, &s.currency).map_err(serde::de::Error::custom)
    }
}

impl EmailData {
    pub fn kind(&self) -> DeliveryKind {
        match self {
            EmailData::SignIn(_) => DeliveryKind::SignIn,
            EmailData::BookingConfirmation(_) => DeliveryKind::BookingConfirmation,
            EmailData::StaffSignIn(_) => DeliveryKind::StaffSignIn,
            EmailData::EmailChanged(_) => DeliveryKind::EmailChanged,
            EmailData::PaymentReceipt(_) => DeliveryKind::PaymentReceipt,
            EmailData::PaymentFailed(_) => DeliveryKind::PaymentFailed,
            EmailData::ConfirmEmail(_) => DeliveryKind::ConfirmEmail,
            EmailData::WebhookDisabled(_) => DeliveryKind::WebhookDisabled,
        }
    }

    /// The name the email greets.
    pub fn first_name(&self) -> &str {
        match self {
            EmailData::SignIn(g) | EmailData::StaffSignIn(g) | EmailData::ConfirmEmail(g) => {
                &g.first_name
            }
            EmailData::BookingConfirmation(b) => &b.first_name,
            EmailData::EmailChanged(c) => &c.first_name,
            EmailData::PaymentReceipt(r) => &r.first_name,
            EmailData::PaymentFailed(p) => &p.first_name,
            EmailData::WebhookDisabled(w) => &w.first_name,
        }
    }

    /// The JSON text written to the delivery row (serialised straight to text: every link
    /// writes one, so no intermediate `Value`).
    pub fn stored(&self) -> String {
        serde_json::to_string(self).expect("email data is plain JSON")
    }

    /// The data of a delivery row of this kind.
    pub fn read(kind: DeliveryKind, json: serde_json::Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value;
        Ok(match kind {
            DeliveryKind::SignIn => EmailData::SignIn(from_value(json)?),
            DeliveryKind::StaffSignIn => EmailData::StaffSignIn(from_value(json)?),
            DeliveryKind::ConfirmEmail => EmailData::ConfirmEmail(from_value(json)?),
            DeliveryKind::BookingConfirmation => EmailData::BookingConfirmation(from_value(json)?),
            DeliveryKind::EmailChanged => {
                // Notices written before the address was masked carry it whole.
                let mut json = json;
                if let Some(obj) = json.as_object_mut()
                    && !obj.contains_key("new_email_masked")
                    && let Some(whole) = obj.remove("new_email")
                {
                    let masked = mask(whole.as_str().unwrap_or_default());
                    obj.insert("new_email_masked".into(), masked.into());
                }
                EmailData::EmailChanged(from_value(json)?)
            }
            DeliveryKind::PaymentReceipt => EmailData::PaymentReceipt(from_value(json)?),
            DeliveryKind::PaymentFailed => EmailData::PaymentFailed(from_value(json)?),
            DeliveryKind::WebhookDisabled => EmailData::WebhookDisabled(from_value(json)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn invoice() -> InvoiceLine {
        InvoiceLine {
            number: "INV-1".into(),
            description: "March rent".into(),
            facility: "Harborview".into(),
            amount: Money::new(12950, "USD").unwrap().into(),
        }
    }

    #[test]
    fn every_kind_reads_back_what_it_wrote() {
        let all = [
            EmailData::SignIn(Greeting {
                first_name: "Ana".into(),
                code: true,
                sent_by_staff: false,
            }),
            EmailData::StaffSignIn(Greeting {
                first_name: "Sam".into(),
                code: false,
                sent_by_staff: false,
            }),
            EmailData::ConfirmEmail(Greeting {
                first_name: "Ana".into(),
                code: false,
                sent_by_staff: false,
            }),
            EmailData::BookingConfirmation(Booking {
                first_name: "Ana".into(),
                rental: BookedRental {
                    rental_id: 7,
                    label: "Unit 12".into(),
                    facility: "Harborview".into(),
                    dates: "From Mar 5, 2026".into(),
                    starts_on: None,
                    ends_on: None,
                },
            }),
            EmailData::EmailChanged(EmailChanged {
                first_name: "Ana".into(),
                old_email: "ana@example.com".into(),
                new_email_masked: "a•••@example.org".into(),
                facilities: vec![FacilityContact {
                    name: "Harborview".into(),
                    phone: "+1 555 0100".into(),
                    email: "desk@example.com".into(),
                }],
            }),
            EmailData::PaymentReceipt(Receipt {
                first_name: "Ana".into(),
                invoice: invoice(),
                paid_on: NaiveDate::from_ymd_opt(2026, 3, 5).unwrap().into(),
            }),
            EmailData::PaymentFailed(PaymentFailed {
                first_name: "Ana".into(),
                invoice: invoice(),
                billing_url: "http://127.0.0.1/s/demo/billing".into(),
            }),
            EmailData::WebhookDisabled(WebhookDisabled {
                first_name: "Olivia".into(),
                url: "https://hooks.example.com/latchkey".into(),
                failing_since: "2026-03-05T10:00:00Z".into(),
                last_error: "HTTP 500".into(),
            }),
        ];
        for data in all {
            let json = serde_json::from_str(&data.stored()).unwrap();
            let back = EmailData::read(data.kind(), json).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn rows_written_before_the_types_still_read() {
        let receipt = EmailData::read(
            DeliveryKind::PaymentReceipt,
            json!({"first_name": "Ana", "number": "INV-1", "description": "Rent",
                   "facility": "Harborview", "paid_on": "Mar 5, 2026", "amount": "$129.50 USD"}),
        )
        .unwrap();
        let EmailData::PaymentReceipt(r) = receipt else {
            panic!("a receipt")
        };
        assert_eq!(r.paid_on, Shown::Text("Mar 5, 2026".into()));
        assert_eq!(r.invoice.amount, Shown::Text("$129.50 USD".into()));

        let notice = EmailData::read(
            DeliveryKind::EmailChanged,
            json!({"first_name": "Ana", "old_email": "ana@example.com", "new_email": "bob@example.org"}),
        )
        .unwrap();
        let EmailData::EmailChanged(n) = notice else {
            panic!("a notice")
        };
        assert_eq!(n.new_email_masked, mask("bob@example.org"));
        assert!(!n.new_email_masked.contains("bob"));
    }

    #[test]
    fn a_row_missing_its_data_is_refused() {
        let err = EmailData::read(DeliveryKind::PaymentFailed, json!({"first_name": "Ana"}));
        assert!(err.is_err());
    }
}
