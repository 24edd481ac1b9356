//! Emails: rendering (askama, HTML and plain text), building the MIME message (with optional
//! DKIM), the transports that deliver it (SMTP, the file outbox), and the bounces that come
//! back (`bounce`).

pub mod bounce;
pub mod smtp;
pub mod transport;

use askama::Template;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use crate::crypto::Keys;
use crate::display;
use crate::domain::dkim::{DkimAlgorithm, DkimKey, DkimKeyError};
pub use crate::domain::emails::FacilityContact;
use crate::domain::{EmailAddress, EmailData};
use crate::i18n::Lang;
use crate::store::Storefront;

pub use transport::{Outbox, SendFailure, SentReply, Transport};

/// What an email says, by kind.
#[derive(Debug, Clone)]
pub enum EmailContent {
    SignIn {
        first_name: String,
        link: String,
        minutes: i64,
        /// The sign-in code, for a customer's own request.
        code: Option<String>,
        /// Sent by staff (a resend), not asked for by the customer.
        by_staff: bool,
    },
    BookingConfirmation {
        first_name: String,
        link: String,
        minutes: i64,
        label: String,
        facility: String,
        dates: String,
    },
    StaffSignIn {
        first_name: String,
        link: String,
        minutes: i64,
    },
    /// The notice to the old address once a change is confirmed: the new address only
    /// partly shown, and how to reach the facilities.
    EmailChanged {
        first_name: String,
        old_email: String,
        new_email_masked: String,
        facilities: Vec<FacilityContact>,
    },
    /// The link that confirms a new address, sent to it.
    ConfirmEmail {
        first_name: String,
        link: String,
        minutes: i64,
        new_email: String,
    },
    PaymentReceipt {
        first_name: String,
        number: String,
        description: String,
        facility: String,
        paid_on: String,
        amount: String,
    },
    /// A pre-authorized debit failed: the invoice waits for payment again.
    PaymentFailed {
        first_name: String,
        number: String,
        description: String,
        facility: String,
        amount: String,
        billing_url: String,
    },
    /// To an owner: a webhook endpoint failing for three days was disabled.
    WebhookDisabled {
        first_name: String,
        url: String,
        failing_since: String,
        last_error: String,
    },
}

#[derive(Template)]
#[template(path = "email/webhook_disabled.txt")]
struct WebhookDisabledText<'a> {
    storefront_name: &'a str,
    first_name: &'a str,
    url: &'a str,
    failing_since: &'a str,
    last_error: &'a str,
}

#[derive(Template)]
#[template(path = "email/webhook_disabled.html")]
struct WebhookDisabledHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    url: &'a str,
    failing_since: &'a str,
    last_error: &'a str,
}

#[derive(Template)]
#[template(path = "email/sign_in.txt")]
struct SignInText<'a> {
    t: &'a Lang,
    by_staff: bool,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
    code: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "email/sign_in.html")]
struct SignInHtml<'a> {
    t: &'a Lang,
    by_staff: bool,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
    code: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "email/booking_confirmation.txt")]
struct BookingText<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
    label: &'a str,
    facility: &'a str,
    dates: &'a str,
}

#[derive(Template)]
#[template(path = "email/booking_confirmation.html")]
struct BookingHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
    label: &'a str,
    facility: &'a str,
    dates: &'a str,
}

#[derive(Template)]
#[template(path = "email/staff_sign_in.txt")]
struct StaffSignInText<'a> {
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
}

#[derive(Template)]
#[template(path = "email/staff_sign_in.html")]
struct StaffSignInHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
}

#[derive(Template)]
#[template(path = "email/email_changed.txt")]
struct EmailChangedText<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    old_email: &'a str,
    new_email_masked: &'a str,
    facilities: &'a [FacilityContact],
}

#[derive(Template)]
#[template(path = "email/email_changed.html")]
struct EmailChangedHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    old_email: &'a str,
    new_email_masked: &'a str,
    facilities: &'a [FacilityContact],
}

#[derive(Template)]
#[template(path = "email/confirm_email.txt")]
struct ConfirmEmailText<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
    new_email: &'a str,
}

#[derive(Template)]
#[template(path = "email/confirm_email.html")]
struct ConfirmEmailHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    link: &'a str,
    minutes: i64,
    new_email: &'a str,
}

#[derive(Template)]
#[template(path = "email/payment_receipt.txt")]
struct ReceiptText<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    number: &'a str,
    description: &'a str,
    facility: &'a str,
    paid_on: &'a str,
    amount: &'a str,
}

#[derive(Template)]
#[template(path = "email/payment_receipt.html")]
struct ReceiptHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    number: &'a str,
    description: &'a str,
    facility: &'a str,
    paid_on: &'a str,
    amount: &'a str,
}

#[derive(Template)]
#[template(path = "email/payment_failed.txt")]
struct PaymentFailedText<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    number: &'a str,
    description: &'a str,
    facility: &'a str,
    amount: &'a str,
    billing_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/payment_failed.html")]
struct PaymentFailedHtml<'a> {
    t: &'a Lang,
    storefront_name: &'a str,
    first_name: &'a str,
    number: &'a str,
    description: &'a str,
    facility: &'a str,
    amount: &'a str,
    billing_url: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("could not render the email: {0}")]
    Render(#[from] askama::Error),
    #[error("could not build the message: {0}")]
    Build(String),
}

/// The plain-text and HTML bodies.
pub fn render(
    t: &Lang,
    storefront_name: &str,
    content: &EmailContent,
) -> Result<(String, String), MailError> {
    Ok(match content {
        EmailContent::SignIn {
            first_name,
            link,
            minutes,
            code,
            by_staff,
        } => (
            SignInText {
                storefront_name,
                t,
                by_staff: *by_staff,
                first_name,
                link,
                minutes: *minutes,
                code: code.as_deref(),
            }
            .render()?,
            SignInHtml {
                storefront_name,
                t,
                by_staff: *by_staff,
                first_name,
                link,
                minutes: *minutes,
                code: code.as_deref(),
            }
            .render()?,
        ),
        EmailContent::BookingConfirmation {
            first_name,
            link,
            minutes,
            label,
            facility,
            dates,
        } => (
            BookingText {
                storefront_name,
                t,
                first_name,
                link,
                minutes: *minutes,
                label,
                facility,
                dates,
            }
            .render()?,
            BookingHtml {
                storefront_name,
                t,
                first_name,
                link,
                minutes: *minutes,
                label,
                facility,
                dates,
            }
            .render()?,
        ),
        EmailContent::StaffSignIn {
            first_name,
            link,
            minutes,
        } => (
            StaffSignInText {
                storefront_name,
                first_name,
                link,
                minutes: *minutes,
            }
            .render()?,
            StaffSignInHtml {
                storefront_name,
                t,
                first_name,
                link,
                minutes: *minutes,
            }
            .render()?,
        ),
        EmailContent::EmailChanged {
            first_name,
            old_email,
            new_email_masked,
            facilities,
        } => (
            EmailChangedText {
                storefront_name,
                t,
                first_name,
                old_email,
                new_email_masked,
                facilities,
            }
            .render()?,
            EmailChangedHtml {
                storefront_name,
                t,
                first_name,
                old_email,
                new_email_masked,
                facilities,
            }
            .render()?,
        ),
        EmailContent::ConfirmEmail {
            first_name,
            link,
            minutes,
            new_email,
        } => (
            ConfirmEmailText {
                storefront_name,
                t,
                first_name,
                link,
                minutes: *minutes,
                new_email,
            }
            .render()?,
            ConfirmEmailHtml {
                storefront_name,
                t,
                first_name,
                link,
                minutes: *minutes,
                new_email,
            }
            .render()?,
        ),
        EmailContent::PaymentReceipt {
            first_name,
            number,
            description,
            facility,
            paid_on,
            amount,
        } => (
            ReceiptText {
                storefront_name,
                t,
                first_name,
                number,
                description,
                facility,
                paid_on,
                amount,
            }
            .render()?,
            ReceiptHtml {
                storefront_name,
                t,
                first_name,
                number,
                description,
                facility,
                paid_on,
                amount,
            }
            .render()?,
        ),
        EmailContent::PaymentFailed {
            first_name,
            number,
            description,
            facility,
            amount,
            billing_url,
        } => (
            PaymentFailedText {
                storefront_name,
                t,
                first_name,
                number,
                description,
                facility,
                amount,
                billing_url,
            }
            .render()?,
            PaymentFailedHtml {
                storefront_name,
                t,
                first_name,
                number,
                description,
                facility,
                amount,
                billing_url,
            }
            .render()?,
        ),
        EmailContent::WebhookDisabled {
            first_name,
            url,
            failing_since,
            last_error,
        } => (
            WebhookDisabledText {
                storefront_name,
                first_name,
                url,
                failing_since,
                last_error,
            }
            .render()?,
            WebhookDisabledHtml {
                storefront_name,
                t,
                first_name,
                url,
                failing_since,
                last_error,
            }
            .render()?,
        ),
    })
}

/// The subject line of each kind as the delivery row records it when it is written: English,
/// for the console's Emails tab. The message itself carries [`EmailContent::subject`], in its
/// reader's language (`locales/*/email.ftl`); in English the two read the same.
pub fn sign_in_subject(storefront_name: &str) -> String {
    format!("Your sign-in link for {storefront_name}")
}

pub fn booking_subject(storefront_name: &str, label: &str) -> String {
    format!("Your booking with {storefront_name} is confirmed: {label}")
}

pub fn staff_sign_in_subject(console_name: &str) -> String {
    format!("Your sign-in link for the {console_name} console")
}

pub fn email_changed_subject(storefront_name: &str) -> String {
    format!("Your {storefront_name} email address was changed")
}

pub fn confirm_email_subject(storefront_name: &str) -> String {
    format!("Confirm your new email address for {storefront_name}")
}

pub fn receipt_subject(storefront_name: &str, invoice_number: &str) -> String {
    format!("Receipt for invoice {invoice_number} from {storefront_name}")
}

pub fn payment_failed_subject(storefront_name: &str, invoice_number: &str) -> String {
    format!("Your payment of invoice {invoice_number} to {storefront_name} did not go through")
}

/// The link an email carries, and how long it lasts.
#[derive(Debug, Clone)]
pub struct MagicLink {
    pub url: String,
    pub minutes: i64,
    /// A customer's own sign-in link: the code that finishes the sign-in in the browser that
    /// asked (SPEC §11).
    pub code: Option<crate::crypto::SignInCode>,
}

impl EmailContent {
    /// What an email says: its delivery's data, with its link for the kinds that carry one.
    /// `recipient` is where it goes (a confirmation names the address it confirms); dates and
    /// amounts are written in `t`, the reader's language, as of `today`.
    pub fn new(
        data: &EmailData,
        link: Option<MagicLink>,
        recipient: &str,
        t: &Lang,
        today: chrono::NaiveDate,
    ) -> Result<Self, String> {
        let first_name = match data.first_name() {
            "" => t.msg("email-no-name"),
            name => name.to_string(),
        };
        let carried = |link: Option<MagicLink>| {
            link.ok_or_else(|| format!("a {} email needs its link", data.kind().as_str()))
        };
        Ok(match data {
            EmailData::SignIn(g) => {
                let MagicLink { url, minutes, code } = carried(link)?;
                EmailContent::SignIn {
                    first_name,
                    link: url,
                    minutes,
                    code: code.map(|c| c.expose().to_string()),
                    by_staff: g.sent_by_staff,
                }
            }
            EmailData::StaffSignIn(_) => {
                let MagicLink { url, minutes, .. } = carried(link)?;
                EmailContent::StaffSignIn {
                    first_name,
                    link: url,
                    minutes,
                }
            }
            EmailData::BookingConfirmation(b) => {
                let MagicLink { url, minutes, .. } = carried(link)?;
                EmailContent::BookingConfirmation {
                    first_name,
                    link: url,
                    minutes,
                    label: b.rental.label.clone(),
                    facility: b.rental.facility.clone(),
                    dates: match b.rental.starts_on {
                        Some(start) => display::rental_period(t, start, b.rental.ends_on, today),
                        None => b.rental.dates.clone(),
                    },
                }
            }
            EmailData::ConfirmEmail(_) => {
                let MagicLink { url, minutes, .. } = carried(link)?;
                EmailContent::ConfirmEmail {
                    first_name,
                    link: url,
                    minutes,
                    new_email: recipient.to_string(),
                }
            }
            EmailData::EmailChanged(c) => EmailContent::EmailChanged {
                first_name,
                old_email: c.old_email.clone(),
                new_email_masked: c.new_email_masked.clone(),
                facilities: c.facilities.clone(),
            },
            EmailData::PaymentReceipt(r) => EmailContent::PaymentReceipt {
                first_name,
                number: r.invoice.number.clone(),
                description: r.invoice.description.clone(),
                facility: r.invoice.facility.clone(),
                paid_on: r.paid_on.text(|d| t.date(*d)),
                amount: r.invoice.amount.text(|m| t.money(m)),
            },
            EmailData::PaymentFailed(p) => EmailContent::PaymentFailed {
                first_name,
                number: p.invoice.number.clone(),
                description: p.invoice.description.clone(),
                facility: p.invoice.facility.clone(),
                amount: p.invoice.amount.text(|m| t.money(m)),
                billing_url: p.billing_url.clone(),
            },
            EmailData::WebhookDisabled(w) => EmailContent::WebhookDisabled {
                first_name,
                url: w.url.clone(),
                failing_since: w.failing_since.clone(),
                last_error: w.last_error.clone(),
            },
        })
    }
}

/// The headers the DKIM signature covers (one that an email lacks is signed as absent). Not
/// `Content-Type`: lettre keeps a multipart message's in the body part, where its signer does
/// not look, so it would sign the header as absent and receivers would fail the signature.
const SIGNED_HEADERS: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
];

/// What signs a storefront's emails: its DKIM domain and selector and the opened key.
#[derive(Debug, Clone)]
pub struct DkimSigner {
    pub domain: String,
    pub selector: String,
    pub key: DkimKey,
}

/// Why a storefront's DKIM key cannot sign: its emails fail with this as the reason, and the
/// console and API call DKIM misconfigured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimProblem {
    #[error(
        "the storefront's DKIM private key cannot be opened with this server's secret key (was `secret_key` changed?); set the key again with `latchkey admin storefront --dkim-private-key-file` or PATCH /api/v1/sender"
    )]
    Sealed,
    #[error("the storefront's DKIM private key does not load: {0}")]
    Key(DkimKeyError),
}

/// Opens the storefront's sealed DKIM key: `None` when it has no DKIM.
pub fn dkim_signer(
    keys: &Keys,
    storefront: &Storefront,
) -> Result<Option<DkimSigner>, DkimProblem> {
    let Some(dkim) = &storefront.dkim else {
        return Ok(None);
    };
    let text = keys
        .open_dkim_key(storefront.id, &dkim.key.sealed)
        .ok_or(DkimProblem::Sealed)?;
    let key = DkimKey::parse(text.expose()).map_err(DkimProblem::Key)?;
    Ok(Some(DkimSigner {
        domain: dkim.domain.clone(),
        selector: dkim.selector.clone(),
        key,
    }))
}

impl EmailContent {
    /// The subject line in the reader's language.
    pub fn subject(&self, t: &Lang, storefront_name: &str) -> Option<String> {
        let sf = storefront_name;
        Some(match self {
            EmailContent::SignIn { .. } => t.arg("subject-sign-in", "storefront", sf),
            EmailContent::BookingConfirmation { label, .. } => {
                t.arg2("subject-booking", "storefront", sf, "label", label)
            }
            EmailContent::EmailChanged { .. } => t.arg("subject-email-changed", "storefront", sf),
            EmailContent::ConfirmEmail { .. } => t.arg("subject-confirm-email", "storefront", sf),
            EmailContent::PaymentReceipt { number, .. } => {
                t.arg2("subject-receipt", "storefront", sf, "number", number)
            }
            EmailContent::PaymentFailed { number, .. } => {
                t.arg2("subject-payment-failed", "storefront", sf, "number", number)
            }
            // Staff and owners' emails keep the row's (English) subject.
            EmailContent::StaffSignIn { .. } | EmailContent::WebhookDisabled { .. } => {
                return None;
            }
        })
    }
}

/// Builds the MIME message from the storefront's sender, with `X-Latchkey-Delivery` naming the
/// delivery row, from its text and HTML parts (as [`render`] makes them), and signs it
/// with the storefront's DKIM key when it has one (`dkim`, opened by [`dkim_signer`]).
///
/// `return_path` is the envelope sender (SMTP `MAIL FROM`, which the receiving server records
/// as `Return-Path` and sends bounces to): the delivery's VERP address when a bounce domain
/// applies ([`bounce::verp_address`]); `None` keeps the `From` address. It is not a header of
/// the message, so it is outside the DKIM signature and cannot break it.
pub fn build_message(
    storefront: &Storefront,
    dkim: Option<&DkimSigner>,
    recipient: &EmailAddress,
    subject: &str,
    (text, html): (String, String),
    delivery_id: i64,
    return_path: Option<&str>,
) -> Result<Message, MailError> {
    let from = Mailbox::new(
        Some(storefront.from_name.clone()),
        storefront
            .from_email
            .as_str()
            .parse()
            .map_err(|e| MailError::Build(format!("sender address: {e}")))?,
    );
    let to: Mailbox = recipient
        .as_str()
        .parse()
        .map_err(|e| MailError::Build(format!("recipient address: {e}")))?;
    let domain = storefront.from_email.domain();
    let mut builder = Message::builder();
    if let Some(return_path) = return_path {
        let sender: lettre::Address = return_path
            .parse()
            .map_err(|e| MailError::Build(format!("return path: {e}")))?;
        let envelope = lettre::address::Envelope::new(Some(sender), vec![to.email.clone()])
            .map_err(|e| MailError::Build(format!("envelope: {e}")))?;
        builder = builder.envelope(envelope);
    }
    let mut builder = builder
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!(
            "<delivery-{delivery_id}.{}@{domain}>",
            crate::domain::OpaqueToken::generate().encode()
        )))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Latchkey-Delivery"),
            delivery_id.to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
    if let Some(reply_to) = &storefront.reply_to
        && let Ok(mb) = reply_to.parse::<Mailbox>()
    {
        builder = builder.reply_to(mb);
    }
    let mut message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| MailError::Build(e.to_string()))?;
    if let Some(dkim) = dkim {
        use lettre::message::dkim::{
            DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
            DkimSigningKey,
        };
        let algorithm = match dkim.key.algorithm() {
            DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
            DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
        };
        let key = DkimSigningKey::new(dkim.key.signing_form().expose(), algorithm)
            .map_err(|e| MailError::Build(format!("DKIM key: {e}")))?;
        // relaxed/relaxed, not lettre's default simple/relaxed: lettre hashes its
        // DKIM-Signature header folded as it is before the signature is added, and the
        // signature moves `b=` to a line of its own, so with simple header canonicalization a
        // receiver hashes other whitespace and the signature fails (tests/sender.rs verifies
        // it independently). Relaxed canonicalization unfolds, so both agree.
        let config = DkimConfig::new(
            dkim.selector.clone(),
            dkim.domain.clone(),
            key,
            SIGNED_HEADERS
                .iter()
                .map(|h| HeaderName::new_from_ascii_str(h))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        message.sign(&config);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn storefront() -> Storefront {
        Storefront {
            id: 1,
            slug: "demo".into(),
            name: "Harborview <Rentals>".into(),
            from_name: "Harborview Rentals".into(),
            from_email: address("portal@harborview.example"),
            reply_to: None,
            rent_url: "https://harborview.example/rent".into(),
            custom_host: None,
            acss_debit: false,
            dkim: None,
            language: crate::i18n::DEFAULT.to_string(),
        }
    }

    fn catalog() -> crate::i18n::Catalog {
        crate::i18n::Catalog::load().unwrap()
    }

    fn sign_in(minutes: i64, by_staff: bool) -> EmailContent {
        EmailContent::SignIn {
            first_name: "Alex".into(),
            link: "http://127.0.0.1:8080/s/demo/auth/abc".into(),
            minutes,
            code: None,
            by_staff,
        }
    }

    #[test]
    fn a_one_minute_link_says_one_minute_in_both_languages() {
        let c = catalog();
        for tag in ["en", "fr-CA"] {
            let t = c.get(tag).unwrap();
            let (text, html) = render(t, "Harborview", &sign_in(1, false)).unwrap();
            assert!(
                text.contains("1 minute:") || text.contains("1 minute :"),
                "{tag}: {text}"
            );
            assert!(!text.contains("1 minutes"), "{tag}: {text}");
            assert!(html.contains("1 minute."), "{tag}: {html}");
            let (text, _) = render(t, "Harborview", &sign_in(59, false)).unwrap();
            assert!(text.contains("59 minutes"), "{tag}: {text}");
        }
    }

    #[test]
    fn a_link_staff_sent_does_not_say_you_asked_for_it() {
        let c = catalog();
        let en = c.get("en").unwrap();
        let (text, html) = render(en, "Harborview", &sign_in(60, false)).unwrap();
        assert!(text.contains("If you did not ask for this link"));
        assert!(html.contains("If you did not ask for this link"));
        let (text, html) = render(en, "Harborview", &sign_in(60, true)).unwrap();
        for part in [&text, &html] {
            assert!(!part.contains("did not ask for this link"), "{part}");
            assert!(
                part.contains("The Harborview team sent you this link."),
                "{part}"
            );
        }
        let fr = c.get("fr-CA").unwrap();
        let (text, _) = render(fr, "Harborview", &sign_in(60, true)).unwrap();
        assert!(
            text.contains("L’équipe de Harborview vous a envoyé ce lien."),
            "{text}"
        );
    }

    #[test]
    fn a_french_reader_gets_french_in_both_parts() {
        let c = catalog();
        let fr = c.get("fr-CA").unwrap();
        let content = EmailContent::PaymentReceipt {
            first_name: "Alex".into(),
            number: "INV-1".into(),
            description: "Loyer".into(),
            facility: "Harborview".into(),
            paid_on: fr.date(chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap()),
            amount: fr.money(&crate::domain::Money::new(12900, "CAD").unwrap()),
        };
        let (text, html) = render(fr, "Harborview", &content).unwrap();
        for part in [&text, &html] {
            assert!(part.contains("Merci, Alex"), "{part}");
            assert!(
                part.contains("Nous avons bien reçu votre paiement."),
                "{part}"
            );
            assert!(part.contains("1 avril 2026"), "{part}");
            assert!(part.contains("129,00\u{a0}$"), "{part}");
        }
        assert!(html.contains("<html lang=\"fr-CA\">"));
        assert_eq!(
            content.subject(fr, "Harborview").unwrap(),
            "Reçu de la facture INV-1 de Harborview"
        );
    }

    #[test]
    fn renders_both_parts_and_escapes_html() {
        let content = EmailContent::SignIn {
            first_name: "<b>Alex</b>".into(),
            link: "http://127.0.0.1:8080/s/demo/auth/abc".into(),
            minutes: 60,
            code: Some("042917".into()),
            by_staff: false,
        };
        let c = catalog();
        let (text, html) = render(c.default_lang(), "Harborview <Rentals>", &content).unwrap();
        assert!(text.contains("042917"), "{text}");
        assert!(html.contains("042917"), "{html}");
        assert!(text.contains("Hi <b>Alex</b>,"));
        assert!(text.contains("http://127.0.0.1:8080/s/demo/auth/abc"));
        assert!(text.contains("60 minutes"));
        assert!(html.contains("&#60;b&#62;Alex&#60;/b&#62;"));
        assert!(!html.contains("<b>Alex"));
        assert!(html.contains("Harborview &#60;Rentals&#62;"));
        let msg = build_message(
            &storefront(),
            None,
            &address("alex@example.com"),
            "Subject",
            (text, html),
            42,
            None,
        )
        .unwrap();
        // Without a bounce domain the envelope is the sender's.
        assert_eq!(
            msg.envelope().from().map(|a| a.to_string()).as_deref(),
            Some("portal@harborview.example")
        );
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("X-Latchkey-Delivery: 42"));
        assert!(raw.contains("From: \"Harborview Rentals\" <portal@harborview.example>"));
        assert!(raw.contains("multipart/alternative"));
        assert!(!raw.contains("DKIM-Signature"));
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/dkim/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn keys(secret: &str) -> Keys {
        Keys::from_secret(&crate::domain::Secret::new(secret.to_string()))
    }

    fn with_dkim(keys: &Keys, pem: &str) -> Storefront {
        let mut sf = storefront();
        let key = DkimKey::parse(pem).unwrap();
        sf.dkim = Some(crate::store::DkimSettings {
            domain: "harborview.example".into(),
            selector: "portal2026".into(),
            key: crate::store::SealedDkimKey {
                sealed: keys.seal_dkim_key(sf.id, &crate::domain::Secret::new(pem.to_string())),
                algorithm: Some(key.algorithm()),
                public_key: Some(key.public_key().to_string()),
            },
        });
        sf
    }

    fn dkim_header(raw: &str) -> String {
        raw.lines()
            .skip_while(|l| !l.starts_with("DKIM-Signature:"))
            .take_while(|l| {
                l.starts_with("DKIM-Signature:") || l.starts_with(' ') || l.starts_with('\t')
            })
            .collect::<String>()
    }

    #[test]
    fn signs_with_the_storefronts_dkim_key() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        for (pem, a) in [
            ("ed25519.pem", "a=ed25519-sha256"),
            ("rsa2048.pkcs8.pem", "a=rsa-sha256"),
            ("rsa2048.pkcs1.pem", "a=rsa-sha256"),
        ] {
            let sf = with_dkim(&k, &fixture(pem));
            let signer = dkim_signer(&k, &sf).unwrap().unwrap();
            let msg = build_message(
                &sf,
                Some(&signer),
                &address("alex@example.com"),
                "Subject",
                ("text".into(), "<p>html</p>".into()),
                7,
                None,
            )
            .unwrap();
            let raw = String::from_utf8(msg.formatted()).unwrap();
            let header = dkim_header(&raw);
            assert!(header.contains("d=harborview.example"), "{raw}");
            assert!(header.contains("s=portal2026"), "{raw}");
            assert!(header.contains(a), "{pem}: {raw}");
        }
    }

    #[test]
    fn a_key_sealed_with_another_secret_is_a_dkim_problem() {
        let sf = with_dkim(
            &keys("a-secret-of-at-least-thirty-two-chars!!"),
            &fixture("ed25519.pem"),
        );
        let other = keys("another-secret-of-thirty-two-chars-long");
        assert_eq!(dkim_signer(&other, &sf).unwrap_err(), DkimProblem::Sealed);
        assert!(dkim_signer(&other, &storefront()).unwrap().is_none());
    }

    #[test]
    fn the_return_path_is_the_envelope_sender_and_from_stays() {
        let msg = build_message(
            &storefront(),
            None,
            &address("alex@example.com"),
            "Subject",
            ("text".into(), "<p>html</p>".into()),
            42,
            Some("bounces+42-0123456789ab@bounces.latchkey.example"),
        )
        .unwrap();
        let envelope = msg.envelope();
        assert_eq!(
            envelope.from().map(|a| a.to_string()).as_deref(),
            Some("bounces+42-0123456789ab@bounces.latchkey.example")
        );
        assert_eq!(
            envelope
                .to()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            vec!["alex@example.com".to_string()]
        );
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("From: \"Harborview Rentals\" <portal@harborview.example>"));
        assert!(
            !raw.contains("bounces+42"),
            "the VERP address is the envelope's only"
        );
        assert!(
            build_message(
                &storefront(),
                None,
                &address("alex@example.com"),
                "Subject",
                ("text".into(), "html".into()),
                42,
                Some("not an address"),
            )
            .is_err()
        );
    }
}
