//! The customer's side: storefront sign-up (creates the portal account and links contacts),
//! the booking confirmation email, and resending the portal link.

use http::StatusCode;
use serde_json::{Value, json};
use warp::reply::Response;

use super::error::ApiError;
use super::input::*;
use super::{Caller, json_response, opt_text, rfc3339};
use crate::http::HttpState;
use crate::operations::{
    Actor, BookingOutcome, ResendOutcome, resend_portal_link, send_booking_confirmation,
};
use crate::store::SignUp;

/// Contacts one sign-up may link.
pub const CONTACTS_MAX: usize = 100;

pub async fn create(state: &HttpState, caller: &Caller, body: Value) -> Result<Response, ApiError> {
    let obj = Object::root(&body)?;
    let mut p = Problems::default();
    obj.only(&["email", "full_name", "phone", "contacts"], &mut p);
    let email = obj.email("email", true, &mut p);
    let full_name = obj.text("full_name", NAME_MAX, true, &mut p);
    let phone = obj.phone("phone", &mut p);
    let contacts = obj.references("contacts", CONTACTS_MAX, &mut p);
    let (Some(email), Some(full_name), true) = (email, full_name, p.is_empty()) else {
        return Err(p.into_error());
    };
    let svc = &state.svc;
    let now = svc.now();
    let phone = phone.unwrap_or_default();
    let audit = json!({ "api_key_id": caller.key.id, "api_key": caller.key.name });
    let signed_up = svc
        .store
        .sign_up(
            caller.storefront.id,
            &email,
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
            return Err(ApiError::EmailTaken {
                sign_in_url: format!("{}/sign-in", svc.portal_url(&caller.storefront)),
            });
        }
        SignUp::UnknownContact(r) => return Err(ApiError::UnknownContact(r)),
        SignUp::ContactLinked(r) => {
            return Err(ApiError::Conflict(format!(
                "The contact {r:?} is linked to a portal account already. Nothing was created."
            )));
        }
    };
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "id": account.id,
            "email": account.email,
            "full_name": account.full_name,
            "phone": opt_text(&account.phone),
            "contacts": contact_refs,
            "created_at": rfc3339(account.created_at),
        }),
    ))
}

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
        return Err(super::no_rental(rental_ref));
    };
    let outcome =
        send_booking_confirmation(&state.svc, &state.actors, &caller.storefront, rental_id).await?;
    match outcome {
        BookingOutcome::Sent {
            delivery_id,
            account_id,
        } => Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({ "delivery_id": delivery_id, "account_id": account_id }),
        )),
        BookingOutcome::NoSuchRental => Err(super::no_rental(rental_ref)),
        BookingOutcome::NoAccount => Err(ApiError::NotLinked),
        BookingOutcome::Cooldown {
            retry_after_seconds,
        } => Err(ApiError::BookingCooldown {
            retry_after_seconds,
        }),
    }
}

pub async fn portal_link(
    state: &HttpState,
    caller: &Caller,
    account_id: &str,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("Your storefront has no account with this id.".into());
    let account_id = super::parse_id(account_id).ok_or_else(not_found)?;
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
            &json!({ "delivery_id": delivery_id }),
        )),
        ResendOutcome::Cooldown {
            retry_after_seconds,
        } => Err(ApiError::Cooldown {
            retry_after_seconds,
        }),
        ResendOutcome::NoSuchAccount => Err(not_found()),
    }
}
