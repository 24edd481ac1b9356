//! Account: the customer's Full name, Email and Phone. Errors are shown beside their field and
//! nothing is saved; an email change keeps the account (and its sessions and links) and sends
//! a notice to the old address.

use http::StatusCode;
use warp::reply::Response;

use super::context::Portal;
use super::form::{Body, Form};
use super::pages::*;
use super::portal::{read_form, signed_in};
use crate::actors::Enqueue;
use crate::domain::EmailAddress;
use crate::mail::email_changed_subject;
use crate::store::{Account, AccountUpdate, DeliveryKind, NewDelivery, ProfileChange};

struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    max: usize,
    required: bool,
    value: String,
    error: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: PageCommon,
    fields: Vec<Field>,
    has_errors: bool,
    notice: Option<&'static str>,
}

const NAME_MAX: usize = 100;
const PHONE_MAX: usize = 30;

/// What the form shows back: what was typed, without control characters (a line break in a
/// value is what the error is about; it does not belong in the field).
fn shown(value: &str) -> String {
    value
        .chars()
        .filter(|c| !crate::domain::text::is_hidden(*c))
        .collect()
}

fn fields(full_name: &str, email: &str, phone: &str) -> Vec<Field> {
    let (full_name, email, phone) = (shown(full_name), shown(email), shown(phone));
    vec![
        Field {
            name: "full_name",
            label: "Full name",
            kind: "text",
            autocomplete: "name",
            max: NAME_MAX,
            required: true,
            value: full_name,
            error: None,
        },
        Field {
            name: "email",
            label: "Email",
            kind: "email",
            autocomplete: "email",
            max: 254,
            required: true,
            value: email,
            error: None,
        },
        Field {
            name: "phone",
            label: "Phone",
            kind: "tel",
            autocomplete: "tel",
            max: PHONE_MAX,
            required: false,
            value: phone,
            error: None,
        },
    ]
}

fn show(
    portal: &mut Portal,
    status: StatusCode,
    fields: Vec<Field>,
    notice: Option<&'static str>,
) -> Response {
    let has_errors = fields.iter().any(|f| f.error.is_some());
    let page = AccountPage {
        page: PageCommon::new(portal, true, "account"),
        fields,
        has_errors,
        notice,
    };
    render(status, &page).unwrap_or_else(|e| app_error_page(portal, &e))
}

/// `GET /account`.
pub async fn page(portal: &mut Portal, query: &str) -> Response {
    let session = match signed_in(portal, "/account").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let a = &session.account;
    let notice = Form::parse(query.as_bytes())
        .unwrap_or_default()
        .get("saved")
        .map(|_| "Your details were saved.");
    show(
        portal,
        StatusCode::OK,
        fields(&a.full_name, &a.email, &a.phone),
        notice,
    )
}

/// Checks the three fields; `Err` carries the form with each error beside its field.
fn validate(full_name: &str, email: &str, phone: &str) -> Result<ProfileChange, Vec<Field>> {
    let mut form = fields(full_name, email, phone);
    let name = full_name.trim();
    if name.is_empty() {
        form[0].error = Some("Enter your full name.".into());
    } else if name.chars().count() > NAME_MAX {
        form[0].error = Some(format!("Use at most {NAME_MAX} characters."));
    } else if crate::domain::text::has_hidden(name) {
        form[0].error = Some("A name cannot contain line breaks or control characters.".into());
    }
    let parsed = EmailAddress::parse(email);
    if let Err(e) = &parsed {
        form[1].error = Some(e.to_string());
    }
    let phone = phone.trim();
    if phone.chars().count() > PHONE_MAX {
        form[2].error = Some(format!("Use at most {PHONE_MAX} characters."));
    } else if !phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
        || (!phone.is_empty() && phone.chars().filter(|c| c.is_ascii_digit()).count() < 4)
    {
        form[2].error = Some("Enter a phone number with digits, spaces, +, - or brackets.".into());
    }
    match parsed {
        Ok(email) if form.iter().all(|f| f.error.is_none()) => Ok(ProfileChange {
            full_name: name.to_string(),
            email,
            phone: phone.to_string(),
        }),
        _ => Err(form),
    }
}

fn notice_delivery(portal: &Portal, old: &Account, new_email: &str) -> NewDelivery {
    NewDelivery {
        storefront_id: portal.storefront.id,
        account_id: Some(old.id),
        kind: DeliveryKind::EmailChanged,
        recipient: old.email.clone(),
        subject: email_changed_subject(&portal.storefront.name),
        payload: serde_json::json!({
            "first_name": old.first_name(),
            "old_email": old.email,
            "new_email": new_email,
        }),
        sealed_token: None,
        link_expires_at: None,
        facility_ids: Vec::new(),
        relay_after: portal.state.svc.config.relay_after(),
        suppressed_reason: None,
    }
}

/// `POST /account`: Save changes.
pub async fn save(portal: &mut Portal, body: Body) -> Response {
    let form = match read_form(portal, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let session = match signed_in(portal, "/account").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (name, email, phone) = (
        form.get("full_name").unwrap_or(""),
        form.get("email").unwrap_or(""),
        form.get("phone").unwrap_or(""),
    );
    let change = match validate(name, email, phone) {
        Ok(c) => c,
        Err(fields) => return show(portal, StatusCode::UNPROCESSABLE_ENTITY, fields, None),
    };
    let new_email = change.email.as_str().to_string();
    let svc = portal.state.svc.clone();
    let notice = |old: &Account| notice_delivery(portal, old, &new_email);
    let updated = svc
        .store
        .update_profile(
            portal.storefront.id,
            session.account.id,
            &change,
            notice,
            svc.now(),
        )
        .await;
    match updated {
        Ok(AccountUpdate::Saved {
            notice_delivery, ..
        }) => {
            if let Some(delivery_id) = notice_delivery {
                portal.state.actors.mailer.do_send(Enqueue { delivery_id });
            }
            see_other(&format!("{}/account?saved=1", portal.base))
        }
        Ok(AccountUpdate::EmailTaken) => {
            let mut fields = fields(name, email, phone);
            fields[1].error = Some(
                "Another account already uses this email address. Use a different address, or sign in with that one."
                    .into(),
            );
            show(portal, StatusCode::CONFLICT, fields, None)
        }
        Ok(AccountUpdate::NoSuchAccount) => super::portal::to_sign_in(portal, "/account"),
        Err(e) => app_error_page(portal, &e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn refuses_bad_fields_one_by_one() {
        assert!(validate("Alex Martin", "alex@example.com", "+1 207-555-0111").is_ok());
        assert!(validate("Alex Martin", "alex@example.com", "").is_ok());
        let bad = |n: &str, e: &str, p: &str| {
            validate(n, e, p)
                .err()
                .map(|f| f.iter().map(|f| f.error.is_some()).collect::<Vec<_>>())
        };
        assert_eq!(
            bad("", "alex@example.com", ""),
            Some(vec![true, false, false])
        );
        assert_eq!(
            bad(&"x".repeat(101), "alex@example.com", ""),
            Some(vec![true, false, false])
        );
        assert_eq!(
            bad("Alex\nMartin", "alex@example.com", ""),
            Some(vec![true, false, false])
        );
        assert_eq!(
            bad("Alex", "not-an-email", ""),
            Some(vec![false, true, false])
        );
        assert_eq!(
            bad("Alex", "a@b.com\r\nBcc: x@y.z", ""),
            Some(vec![false, true, false])
        );
        assert_eq!(
            bad("Alex", "alex@example.com", "call me"),
            Some(vec![false, false, true])
        );
        assert_eq!(
            bad("Alex", "alex@example.com", &"1".repeat(31)),
            Some(vec![false, false, true])
        );
    }
}
