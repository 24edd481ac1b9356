//! Account: the customer's Full name, Email and Phone. Errors are shown beside their field and
//! nothing is saved. A new email is confirmed at the new address first (SPEC §8): the link's
//! page (`/confirm-email/{token}`, a GET that never uses it up, and the POST that does) lives
//! here, and so does **Sign out everywhere**.

use http::StatusCode;
use warp::Filter;
use warp::reply::Response;

use super::frame::{Body, FORM_LIMIT, Form, body, see_other, with_cookie};
use super::portal::{PageCommon, Portal, PortalRoute};
use crate::domain::{EmailAddress, OpaqueToken};
use crate::i18n::Lang;
use crate::links;
use crate::store::ProfileChange;
use crate::usecases::account::{EmailConfirmed, ProfileSaved, confirm_email, save_profile};
use crate::usecases::{account, sign_in};

/// The routes of this file, matched under `/s/{storefront}/`.
pub fn route() -> impl Filter<Extract = (PortalRoute,), Error = warp::Rejection> + Clone {
    use warp::path::end;
    let everywhere = warp::path("sign-out-everywhere")
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::SignOutEverywhere);
    let confirm_page = warp::path(links::CONFIRM_EMAIL)
        .and(warp::path::param::<String>())
        .and(end())
        .and(warp::get())
        .map(PortalRoute::ConfirmEmailPage);
    let confirm = warp::path(links::CONFIRM_EMAIL)
        .and(warp::path::param::<String>())
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::ConfirmEmail);
    everywhere.or(confirm_page).unify().or(confirm).unify()
}

struct Field {
    name: &'static str,
    label: String,
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
    notice: Option<String>,
    /// A new address waiting for its confirmation link to be used.
    pending_email: Option<String>,
    /// The account's language (a tag), empty to follow the storefront.
    language: String,
    /// The name of the storefront's language (the "follow the storefront" choice).
    storefront_language: String,
    /// (tag, name) of each language shipped.
    languages: Vec<(String, String)>,
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

fn fields(t: &Lang, full_name: &str, email: &str, phone: &str) -> Vec<Field> {
    let (full_name, email, phone) = (shown(full_name), shown(email), shown(phone));
    vec![
        Field {
            name: "full_name",
            label: t.msg("account-full-name"),
            kind: "text",
            autocomplete: "name",
            max: NAME_MAX,
            required: true,
            value: full_name,
            error: None,
        },
        Field {
            name: "email",
            label: t.msg("account-email"),
            kind: "email",
            autocomplete: "email",
            max: 254,
            required: true,
            value: email,
            error: None,
        },
        Field {
            name: "phone",
            label: t.msg("account-phone"),
            kind: "tel",
            autocomplete: "tel",
            max: PHONE_MAX,
            required: false,
            value: phone,
            error: None,
        },
    ]
}

async fn show(
    portal: &mut Portal,
    status: StatusCode,
    account_id: i64,
    fields: Vec<Field>,
    notice: Option<&'static str>,
    language: Option<String>,
) -> Response {
    let sf = portal.site.storefront.id;
    let pending_email = match account::pending_email_change(&portal.state.svc, sf, account_id).await
    {
        Ok(p) => p.map(|p| p.new_email.to_string()),
        Err(e) => return portal.failed(&e),
    };
    let has_errors = fields.iter().any(|f| f.error.is_some());
    let page = PageCommon::new(portal, true, "account");
    let catalog = &portal.state.svc.languages;
    let page = AccountPage {
        fields,
        has_errors,
        notice: notice.map(|id| page.t.msg(id)),
        pending_email,
        language: language.unwrap_or_default(),
        storefront_language: catalog
            .for_account(None, &portal.site.storefront.language)
            .name(),
        languages: catalog
            .tags()
            .filter_map(|tag| catalog.get(tag))
            .map(|l| (l.tag().to_string(), l.name()))
            .collect(),
        page,
    };
    portal.page(status, &page)
}

/// `GET /account`.
pub async fn page(portal: &mut Portal, query: &str) -> Response {
    let session = match portal.signed_in("/account").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let a = &session.account;
    let query = Form::parse(query.as_bytes()).unwrap_or_default();
    let notice = if query.get("email_confirmed").is_some() {
        Some("account-email-confirmed")
    } else {
        query.get("saved").map(|_| "account-saved")
    };
    let t = portal.site.lang.clone();
    show(
        portal,
        StatusCode::OK,
        a.id,
        fields(&t, &a.full_name, a.email.as_str(), &a.phone),
        notice,
        a.language.clone(),
    )
    .await
}

/// Checks the three fields; `Err` carries the form with each error beside its field.
fn validate(
    t: &Lang,
    full_name: &str,
    email: &str,
    phone: &str,
) -> Result<ProfileChange, Vec<Field>> {
    let mut form = fields(t, full_name, email, phone);
    let name = full_name.trim();
    if name.is_empty() {
        form[0].error = Some(t.msg("account-name-empty"));
    } else if name.chars().count() > NAME_MAX {
        form[0].error = Some(t.arg("field-too-long", "max", NAME_MAX));
    } else if crate::domain::text::has_hidden(name) {
        form[0].error = Some(t.msg("account-name-control"));
    }
    let parsed = EmailAddress::parse(email);
    if let Err(e) = &parsed {
        form[1].error = Some(t.msg(e.message_id()));
    }
    let phone = phone.trim();
    if phone.chars().count() > PHONE_MAX {
        form[2].error = Some(t.arg("field-too-long", "max", PHONE_MAX));
    } else if !phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
        || (!phone.is_empty() && phone.chars().filter(|c| c.is_ascii_digit()).count() < 4)
    {
        form[2].error = Some(t.msg("account-phone-invalid"));
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

/// `POST /account`: Save changes.
pub async fn save(portal: &mut Portal, body: Body) -> Response {
    let form = match portal.read_form(body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let session = match portal.signed_in("/account").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let account_id = session.account.id;
    let (name, email, phone) = (
        form.get("full_name").unwrap_or(""),
        form.get("email").unwrap_or(""),
        form.get("phone").unwrap_or(""),
    );
    // The language select: a shipped language, or empty to follow the storefront. A form
    // without the field (an older page) leaves the language as it was.
    let language = match form.get("language") {
        None => session.account.language.clone(),
        Some("") => None,
        Some(tag) => match portal.state.svc.languages.get(tag) {
            Some(l) => Some(l.tag().to_string()),
            None => session.account.language.clone(),
        },
    };
    if language != session.account.language {
        let set = account::set_language(
            &portal.state.svc,
            portal.site.storefront.id,
            account_id,
            language.as_deref(),
        )
        .await;
        if let Err(e) = set {
            return portal.failed(&e);
        }
        // This answer already speaks the new language.
        let catalog = &portal.state.svc.languages;
        portal.site.lang = match &language {
            Some(tag) => catalog
                .for_account(Some(tag), &portal.site.storefront.language)
                .clone(),
            None => catalog.for_visitor(
                portal.info.cookie(crate::i18n::COOKIE),
                portal.info.accept_language.as_deref(),
                &portal.site.storefront.language,
            ),
        };
    }
    let t = portal.site.lang.clone();
    let change = match validate(&t, name, email, phone) {
        Ok(c) => c,
        Err(fields) => {
            return show(
                portal,
                StatusCode::UNPROCESSABLE_ENTITY,
                account_id,
                fields,
                None,
                language,
            )
            .await;
        }
    };
    let state = portal.state.clone();
    let saved = save_profile(&state.svc, &portal.site.storefront, account_id, &change).await;
    match saved {
        Ok(ProfileSaved::Saved) => see_other(&format!("{}/account?saved=1", portal.base)),
        Ok(ProfileSaved::ConfirmationSent) => {
            see_other(&format!("{}/account?saved=email", portal.base))
        }
        Ok(ProfileSaved::EmailTaken) => {
            let mut fields = fields(&t, name, email, phone);
            fields[1].error = Some(t.msg("account-email-taken"));
            show(
                portal,
                StatusCode::CONFLICT,
                account_id,
                fields,
                None,
                language,
            )
            .await
        }
        Ok(ProfileSaved::TooManyChanges) => {
            let mut fields = fields(&t, name, email, phone);
            fields[1].error = Some(t.msg("account-email-too-many"));
            show(
                portal,
                StatusCode::TOO_MANY_REQUESTS,
                account_id,
                fields,
                None,
                language,
            )
            .await
        }
        Ok(ProfileSaved::NoSuchAccount) => portal.to_sign_in("/account"),
        Err(e) => portal.failed(&e),
    }
}

/// `POST /sign-out-everywhere`: ends every session of the account, this browser's too.
pub async fn sign_out_everywhere(portal: &mut Portal, body: Body) -> Response {
    if let Err(resp) = portal.read_form(body) {
        return *resp;
    }
    let session = match portal.signed_in("/account").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let ended = sign_in::end_account_sessions(&portal.state.svc, session.account.id).await;
    if let Err(e) = ended {
        return portal.failed(&e);
    }
    let cookie = portal.clear_session_cookie();
    with_cookie(
        see_other(&format!("{}/sign-in?signed_out=1", portal.base)),
        &cookie,
    )
}

#[derive(askama::Template)]
#[template(path = "confirm_email.html")]
struct ConfirmEmailPage {
    page: PageCommon,
    action: String,
    new_email: String,
}

/// `GET /confirm-email/{token}`: a page with the button that confirms; never uses the link up
/// (mail scanners open links).
pub async fn confirm_page(portal: &mut Portal, raw_token: &str) -> Response {
    if let Some(resp) = portal.rate_limited() {
        return resp;
    }
    let Ok(token) = OpaqueToken::parse(raw_token) else {
        return portal.link_expired();
    };
    let sf = portal.site.storefront.id;
    let live = account::email_change_of_link(&portal.state.svc, sf, &token).await;
    match live {
        Ok(Some(pending)) => {
            let page = ConfirmEmailPage {
                page: PageCommon::new(portal, false, ""),
                action: format!("{}/confirm-email/{raw_token}", portal.base),
                new_email: pending.new_email.to_string(),
            };
            portal.page(StatusCode::OK, &page)
        }
        Ok(None) => portal.link_expired(),
        Err(e) => portal.failed(&e),
    }
}

/// `POST /confirm-email/{token}`: uses the link once. The browser ends up signed in to the
/// account with a new session (every other one ended), unless it is signed in to another
/// account of the storefront: that one is never switched without asking.
pub async fn confirm(portal: &mut Portal, raw_token: &str, body: Body) -> Response {
    if let Some(resp) = portal.rate_limited() {
        return resp;
    }
    if let Err(resp) = portal.read_form(body) {
        return *resp;
    }
    let Ok(token) = OpaqueToken::parse(raw_token) else {
        return portal.link_expired();
    };
    let current = match portal.session().await {
        Ok(s) => s,
        Err(e) => return portal.failed(&e),
    };
    let state = portal.state.clone();
    let confirmed = confirm_email(
        &state.svc,
        &portal.site.storefront,
        &token,
        current.as_ref().map(|s| s.account.id),
    )
    .await;
    match confirmed {
        Ok(EmailConfirmed::Confirmed {
            session: Some(started),
            ..
        }) => {
            let cookie = portal.session_cookie(&started.session, started.expires_at);
            with_cookie(
                see_other(&format!("{}/account?email_confirmed=1", portal.base)),
                &cookie,
            )
        }
        Ok(EmailConfirmed::Confirmed {
            session: None,
            new_email,
            ..
        }) => {
            let still = current.map(|s| s.account.full_name).unwrap_or_default();
            let t = portal.site.lang.clone();
            let back = Some((
                format!("{}/dashboard", portal.base),
                t.msg("back-to-dashboard"),
            ));
            portal.message(
                StatusCode::OK,
                &t.msg("confirmed-other-heading"),
                &t.arg2(
                    "confirmed-other",
                    "email",
                    new_email.to_string(),
                    "name",
                    still,
                ),
                back,
            )
        }
        Ok(EmailConfirmed::Expired) => portal.link_expired(),
        Ok(EmailConfirmed::Taken { new_email }) => {
            let t = portal.site.lang.clone();
            let back = Some((format!("{}/account", portal.base), t.msg("back-to-account")));
            portal.message(
                StatusCode::CONFLICT,
                &t.msg("confirm-taken-heading"),
                &t.arg("confirm-taken", "email", new_email.to_string()),
                back,
            )
        }
        Err(e) => portal.failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn refuses_bad_fields_one_by_one() {
        let catalog = crate::i18n::Catalog::load().unwrap();
        let t = catalog.default_lang();
        let validate = |n: &str, e: &str, p: &str| validate(t, n, e, p);
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
