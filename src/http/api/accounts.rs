//! The customer's side: storefront sign-up (creates the portal account and links contacts),
//! the portal accounts read back (one, or a keyset-paged list), the booking confirmation
//! email, and resending the portal link.

use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use warp::reply::Response;

use super::error_doc::{self, BadJson, Internal, TooLarge, Unauthorized, Unavailable};
use super::fields::{ContactRefs, ExternalRef, Id, PersonName, Phone, Timestamp, is_ref, parse_id};
use super::idempotency::IdempotencyHeader;
use super::input::{Object, Problems, Request};
use super::paging::{PageQuery, api_page};
use super::{Caller, json_response, no_rental, opt_text};
use crate::domain::EmailAddress;
use crate::http::HttpState;
use crate::http::api::error::ApiError;
use crate::links::PortalLink;
use crate::store::{AccountRecord, SignUp};
use crate::usecases::records;
use crate::usecases::support::{
    Actor, BookingOutcome, ResendOutcome, resend_portal_link, send_booking_confirmation,
};

/// A customer signing up on the storefront.
#[derive(ToSchema)]
#[schema(as = AccountInput)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Unique per storefront, compared without regard to case.
    email: EmailAddress,
    full_name: PersonName,
    phone: Option<Phone>,
    /// References of contacts to link to the new account; each must exist and not be linked yet. All or nothing.
    contacts: Option<ContactRefs>,
}

impl Request for Input {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let email = o.required("email", p);
        let full_name = o.required("full_name", p);
        let phone = o.optional("phone", p);
        let contacts = o.optional("contacts", p);
        Some(Self {
            email: email?,
            full_name: full_name?,
            phone,
            contacts,
        })
    }
}

/// A portal account.
#[derive(Serialize, ToSchema)]
#[schema(as = Account)]
#[serde(deny_unknown_fields)]
pub struct View {
    id: i64,
    #[schema(format = "email")]
    email: String,
    full_name: String,
    #[schema(required = true)]
    phone: Option<String>,
    /// The references of the contacts linked to the account (on sign-up, the ones this call linked).
    #[schema(value_type = Vec<ExternalRef>)]
    contacts: Vec<String>,
    created_at: Timestamp,
}

impl From<&AccountRecord> for View {
    fn from(r: &AccountRecord) -> Self {
        let a = &r.account;
        Self {
            id: a.id,
            email: a.email.to_string(),
            full_name: a.full_name.clone(),
            phone: opt_text(&a.phone),
            contacts: r.contact_refs.clone(),
            created_at: a.created_at.into(),
        }
    }
}

api_page! {
    /// A page of portal accounts.
    Page = AccountPage of View from AccountRecord
}

/// A booking confirmation on its way.
#[derive(Serialize, ToSchema)]
#[schema(as = BookingConfirmationQueued)]
#[serde(deny_unknown_fields)]
pub struct BookingQueued {
    /// The email's delivery (GET /deliveries/{id}).
    delivery_id: i64,
    /// The account the link signs in.
    account_id: i64,
}

/// A portal link on its way.
#[derive(Serialize, ToSchema)]
#[schema(as = PortalLinkQueued)]
#[serde(deny_unknown_fields)]
pub struct LinkQueued {
    /// The email's delivery (GET /deliveries/{id}).
    delivery_id: i64,
}

/// Create a customer's portal account (storefront sign-up)
///
/// Creates the portal account and links the listed contacts (which must exist and not be linked yet), all or nothing. Nothing is emailed: the customer signs in with a magic link from the portal's sign-in page, or send a booking confirmation. When the address already has an account (compared without regard to case) the answer is 409 `email_taken` and that address is sent a sign-in link at once, held to the portal's sign-in limits: `sign_in_link_sent` says whether it was (`false` when over a limit); `message` is for the customer ("You already have an account: we have sent you a sign-in link.", or, when none was sent, to sign in by a link from the portal), and `sign_in_url` is the portal's sign-in page.
#[utoipa::path(
    post,
    path = "/accounts",
    operation_id = "createAccount",
    tag = "Customers",
    security(("apiKey" = [])),
    params(IdempotencyHeader),
    request_body(
        content = Input,
        content_type = "application/json",
        example = json!({
            "email": "jordan.lee@example.com",
            "full_name": "Jordan Lee",
            "phone": "+1 207-555-0199",
            "contacts": ["CON-DT-1003"]
        }),
    ),
    responses(
        (status = 201, description = "The account, with the contacts linked.", body = View),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 409, description = "`email_taken`: an account already uses this address; it was sent a sign-in link when `sign_in_link_sent` is true (show `message` to the customer; `sign_in_url` is the portal's sign-in page). `conflict`: a listed contact is linked to an account already. Nothing was created. `idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::EmailTakenOrConflict)),
        (status = 413, response = TooLarge),
        (status = 422, description = "Invalid fields (or `Idempotency-Key`), or `unknown_contact`: a listed contact does not exist, or `idempotency_key_reused`: the key was sent with another request. Nothing was created.", body = inline(error_doc::SignUpRefused)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create(state: &HttpState, caller: &Caller, body: Value) -> Result<Response, ApiError> {
    let mut p = Problems::default();
    let input = Input::from_body(&body, &mut p)?;
    let (Some(input), true) = (input, p.is_empty()) else {
        return Err(p.into_error());
    };
    let svc = &state.svc;
    let now = svc.now();
    let full_name = input.full_name.into_string();
    let phone = input.phone.map(Phone::into_string).unwrap_or_default();
    let contacts = input.contacts.unwrap_or_default().into_vec();
    let audit = json!({ "api_key_id": caller.key.id, "api_key": caller.key.name });
    let signed_up = svc
        .store
        .sign_up(
            caller.storefront.id,
            &input.email,
            &full_name,
            &phone,
            &contacts,
            ("api_create_account", audit),
            now,
        )
        .await?;
    let (account, contact_refs) = match signed_up {
        SignUp::Created {
            account,
            contact_refs,
        } => (account, contact_refs),
        SignUp::EmailTaken => {
            let sent = crate::usecases::sign_in::link_for_taken_address(
                &state.actors,
                &caller.storefront,
                input.email,
            )
            .await?;
            return Err(ApiError::EmailTaken {
                sign_in_url: svc.portal_link(&caller.storefront, PortalLink::SignIn),
                sign_in_link_sent: sent,
            });
        }
        SignUp::UnknownContact(r) => return Err(ApiError::UnknownContact(r)),
        SignUp::ContactLinked(r) => {
            return Err(ApiError::Conflict(format!(
                "The contact {r:?} is linked to a portal account already. Nothing was created."
            )));
        }
    };
    let view = View::from(&AccountRecord {
        account,
        contact_refs,
    });
    Ok(json_response(StatusCode::CREATED, &view))
}

/// List portal accounts
///
/// Every portal account of your storefront, newest first, with its contacts, a page at a time: pass `next` as `before` for the next page. Unknown parameters are refused (422).
#[utoipa::path(
    get,
    path = "/accounts",
    operation_id = "listAccounts",
    tag = "Customers",
    security(("apiKey" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of accounts.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (see `fields`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = PageQuery::parse(query)?;
    let page = records::accounts_page(&state.svc, caller.storefront.id, q.before, q.limit).await?;
    Ok(json_response(StatusCode::OK, &Page::from(page)))
}

/// Read a portal account
///
/// The account with the references of its contacts.
#[utoipa::path(
    get,
    path = "/accounts/{id}",
    operation_id = "getAccount",
    tag = "Customers",
    security(("apiKey" = [])),
    params(
        ("id" = inline(Id), Path, description = "The account's id.", example = 1),
    ),
    responses(
        (status = 200, description = "The account.", body = View),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no account with this id.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn detail(
    state: &HttpState,
    caller: &Caller,
    account_id: &str,
) -> Result<Response, ApiError> {
    let account = match parse_id(account_id) {
        Some(id) => records::account_record(&state.svc, caller.storefront.id, id).await?,
        None => None,
    };
    let account = account.ok_or_else(no_account)?;
    Ok(json_response(StatusCode::OK, &View::from(&account)))
}

fn no_account() -> ApiError {
    ApiError::NotFound("Your storefront has no account with this id.".into())
}

/// Email the booking confirmation
///
/// Queues the booking confirmation email to the account linked to the rental's contact: the rental's details and a **View Your Booking** button, a magic link that signs the customer in on the rental's page. Once per cooldown per rental (300 s by default), so a retry does not email the customer again: a second call inside it sends nothing and answers 429. No body.
#[utoipa::path(
    post,
    path = "/rentals/{ref}/booking-confirmation",
    operation_id = "sendBookingConfirmation",
    tag = "Customers",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path, description = "The rental's reference.", example = "RNT-DT-B112"),
        IdempotencyHeader,
    ),
    responses(
        (status = 202, description = "Queued; follow it with GET /deliveries/{delivery_id}.", body = BookingQueued),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no rental with this reference.", body = inline(error_doc::NotFound)),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::KeyInUse),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds to wait before retrying."))),
        (status = 422, description = "`not_linked`: the rental's contact has no portal account yet (create one with POST /accounts listing the contact). `validation`: the `Idempotency-Key` is not a key; `idempotency_key_reused`: it was sent with another request.", body = inline(error_doc::NotLinkedOrKeyRefused)),
        (status = 429, description = "`cooldown`: a booking confirmation of this rental was sent a moment ago; nothing was sent.", body = inline(error_doc::Cooldown),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds until another confirmation of this rental is allowed."))),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn booking_confirmation(
    state: &HttpState,
    caller: &Caller,
    rental_ref: &str,
) -> Result<Response, ApiError> {
    let rental_id = match is_ref(rental_ref) {
        true => {
            state
                .svc
                .store
                .rental_id_by_ref(caller.storefront.id, rental_ref)
                .await?
        }
        false => None,
    };
    let Some(rental_id) = rental_id else {
        return Err(no_rental(rental_ref));
    };
    let outcome =
        send_booking_confirmation(&state.svc, &state.actors, &caller.storefront, rental_id).await?;
    match outcome {
        BookingOutcome::Sent {
            delivery_id,
            account_id,
        } => Ok(json_response(
            StatusCode::ACCEPTED,
            &BookingQueued {
                delivery_id,
                account_id,
            },
        )),
        BookingOutcome::NoSuchRental => Err(no_rental(rental_ref)),
        BookingOutcome::NoAccount => Err(ApiError::NotLinked),
        BookingOutcome::Cooldown {
            retry_after_seconds,
        } => Err(ApiError::BookingCooldown {
            retry_after_seconds,
        }),
    }
}

/// Resend the portal sign-in link
///
/// Emails the customer a new magic link to the portal, once per cooldown per customer (300 s by default; staff resends in the console count too). Recorded in the audit log with the API key's name. No body.
#[utoipa::path(
    post,
    path = "/accounts/{id}/portal-link",
    operation_id = "resendPortalLink",
    tag = "Customers",
    security(("apiKey" = [])),
    params(
        ("id" = inline(Id), Path, description = "The account's id.", example = 1),
        IdempotencyHeader,
    ),
    responses(
        (status = 202, description = "Queued; follow it with GET /deliveries/{delivery_id}.", body = LinkQueued),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no account with this id.", body = inline(error_doc::NotFound)),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::KeyInUse),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds to wait before retrying."))),
        (status = 422, description = "`validation`: the `Idempotency-Key` is not a key; `idempotency_key_reused`: it was sent with another request.", body = inline(error_doc::KeyRefused)),
        (status = 429, description = "`cooldown`: a link was resent to this customer a moment ago.", body = inline(error_doc::Cooldown),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds until a resend is allowed."))),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn portal_link(
    state: &HttpState,
    caller: &Caller,
    account_id: &str,
) -> Result<Response, ApiError> {
    let account_id = parse_id(account_id).ok_or_else(no_account)?;
    let actor = Actor::ApiKey {
        id: caller.key.id,
        name: &caller.key.name,
    };
    let outcome = resend_portal_link(
        &state.svc,
        &state.actors,
        &caller.storefront,
        account_id,
        actor,
    )
    .await?;
    match outcome {
        ResendOutcome::Sent { delivery_id } => Ok(json_response(
            StatusCode::ACCEPTED,
            &LinkQueued { delivery_id },
        )),
        ResendOutcome::Cooldown {
            retry_after_seconds,
        } => Err(ApiError::Cooldown {
            retry_after_seconds,
        }),
        ResendOutcome::NoSuchAccount => Err(no_account()),
    }
}
