//! The API's errors and the one place they become responses: JSON `{code, message}` with a
//! stable snake_case `code` (validation errors add `fields`), never internal details. The
//! codes are [`ErrorCode`]; the shapes of the answers, for the document, are in `error_doc.rs`.

use std::collections::BTreeMap;

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use warp::reply::Response;

use crate::error::AppError;
use crate::store::DbError;

/// Field name (dotted for nested fields, like `rate.currency`) → what is wrong with it.
pub type Fields = BTreeMap<String, String>;

/// The stable `code` of an error answer, to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadJson,
    BadContentType,
    Unauthorized,
    ApiKeyRevoked,
    NotFound,
    MethodNotAllowed,
    EmailTaken,
    Conflict,
    TooLarge,
    Validation,
    UnknownFacility,
    UnknownContact,
    UnknownRental,
    NotLinked,
    Cooldown,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Every code the API answers with.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::BadJson,
        ErrorCode::BadContentType,
        ErrorCode::Unauthorized,
        ErrorCode::ApiKeyRevoked,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::EmailTaken,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::Validation,
        ErrorCode::UnknownFacility,
        ErrorCode::UnknownContact,
        ErrorCode::UnknownRental,
        ErrorCode::NotLinked,
        ErrorCode::Cooldown,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyKeyInUse,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadContentType => "bad_content_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ApiKeyRevoked => "api_key_revoked",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Validation => "validation",
            ErrorCode::UnknownFacility => "unknown_facility",
            ErrorCode::UnknownContact => "unknown_contact",
            ErrorCode::UnknownRental => "unknown_rental",
            ErrorCode::NotLinked => "not_linked",
            ErrorCode::Cooldown => "cooldown",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::IdempotencyKeyInUse => "idempotency_key_in_use",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// An error answer as sent (its schema is `Error` in `error_doc.rs`).
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Fields>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_in_url: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_in_link_sent: Option<bool>,
}

#[derive(Debug)]
pub enum ApiError {
    /// The body is not JSON, not an object, or not sent as `application/json`.
    BadJson(String),
    /// The agreement endpoint takes `application/pdf` only.
    BadContentType(String),
    /// No API key, or one that was never issued.
    Unauthorized {
        key_sent: bool,
    },
    /// A key that was revoked: like any key that is no longer good, a 401 (RFC 6750
    /// `invalid_token`), with its own code so the operator knows to ask for a new one.
    Revoked,
    NotFound(String),
    MethodNotAllowed,
    EmailTaken {
        sign_in_url: String,
        /// Whether the address was sent a sign-in link (not when over the sign-in limits).
        sign_in_link_sent: bool,
    },
    Conflict(String),
    TooLarge {
        limit: u64,
    },
    Validation(Fields),
    UnknownFacility(String),
    UnknownContact(String),
    UnknownRental(String),
    NotLinked,
    /// A portal link was resent to this customer a moment ago.
    Cooldown {
        retry_after_seconds: i64,
    },
    /// A booking confirmation of this rental was sent a moment ago (the same `cooldown`).
    BookingCooldown {
        retry_after_seconds: i64,
    },
    /// The `Idempotency-Key` was used for another request (method, path or body) within 24 hours.
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` has not answered yet.
    IdempotencyKeyInUse,
    Unavailable,
    Internal,
}

impl ApiError {
    /// A validation error on one field.
    pub fn field(name: &str, problem: impl Into<String>) -> Self {
        ApiError::Validation(Fields::from([(name.to_string(), problem.into())]))
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) | ApiError::BadContentType(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } | ApiError::Revoked => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::EmailTaken { .. } | ApiError::Conflict(_) | ApiError::IdempotencyKeyInUse => {
                StatusCode::CONFLICT
            }
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_)
            | ApiError::UnknownFacility(_)
            | ApiError::UnknownContact(_)
            | ApiError::UnknownRental(_)
            | ApiError::NotLinked
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Cooldown { .. } | ApiError::BookingCooldown { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadJson(_) => ErrorCode::BadJson,
            ApiError::BadContentType(_) => ErrorCode::BadContentType,
            ApiError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ApiError::Revoked => ErrorCode::ApiKeyRevoked,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::EmailTaken { .. } => ErrorCode::EmailTaken,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::TooLarge { .. } => ErrorCode::TooLarge,
            ApiError::Validation(_) => ErrorCode::Validation,
            ApiError::UnknownFacility(_) => ErrorCode::UnknownFacility,
            ApiError::UnknownContact(_) => ErrorCode::UnknownContact,
            ApiError::UnknownRental(_) => ErrorCode::UnknownRental,
            ApiError::NotLinked => ErrorCode::NotLinked,
            ApiError::Cooldown { .. } | ApiError::BookingCooldown { .. } => ErrorCode::Cooldown,
            ApiError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            ApiError::IdempotencyKeyInUse => ErrorCode::IdempotencyKeyInUse,
            ApiError::Unavailable => ErrorCode::Unavailable,
            ApiError::Internal => ErrorCode::Internal,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::BadJson(m) | ApiError::BadContentType(m) => m.clone(),
            ApiError::Unauthorized { key_sent: false } => {
                "Send an API key of your storefront in the header Authorization: Bearer <key>."
                    .into()
            }
            ApiError::Unauthorized { key_sent: true } => {
                "That API key is not known. Check that the whole key was sent.".into()
            }
            ApiError::Revoked => {
                "This API key has been revoked. Ask your storefront's owner for a new key.".into()
            }
            ApiError::NotFound(m) | ApiError::Conflict(m) => m.clone(),
            ApiError::MethodNotAllowed => "This path does not accept this method.".into(),
            ApiError::EmailTaken {
                sign_in_url,
                sign_in_link_sent: true,
            } => format!(
                "You already have an account: we have sent you a sign-in link. Open it to sign in to the customer portal, or ask for a new link at {sign_in_url}"
            ),
            ApiError::EmailTaken { sign_in_url, .. } => format!(
                "An account already uses this email address. Sign in to the customer portal with a link sent to that address: {sign_in_url}"
            ),
            ApiError::TooLarge { limit } => format!(
                "The body is larger than this endpoint takes ({} MiB).",
                limit / (1024 * 1024)
            ),
            ApiError::Validation(_) => {
                "Some fields are not valid; `fields` says what is wrong with each.".into()
            }
            ApiError::UnknownFacility(r) => {
                format!("Your storefront has no facility with the reference {r:?}.")
            }
            ApiError::UnknownContact(r) => {
                format!("Your storefront has no contact with the reference {r:?}.")
            }
            ApiError::UnknownRental(r) => {
                format!("Your storefront has no rental with the reference {r:?}.")
            }
            ApiError::NotLinked => {
                "The rental's contact has no portal account yet. Create one with POST /api/v1/accounts, listing the contact, then try again.".into()
            }
            ApiError::Cooldown {
                retry_after_seconds,
            } => format!(
                "A portal link was resent to this customer a moment ago. Try again in {retry_after_seconds} seconds."
            ),
            ApiError::BookingCooldown {
                retry_after_seconds,
            } => format!(
                "A booking confirmation of this rental was sent a moment ago. Try again in {retry_after_seconds} seconds."
            ),
            ApiError::IdempotencyKeyReused => {
                "This Idempotency-Key was used for another request in the last 24 hours: send a new key with a new request, and the same key only to retry the same request.".into()
            }
            ApiError::IdempotencyKeyInUse => {
                "The first request with this Idempotency-Key has not finished yet. Retry in a moment: it will get that request's answer.".into()
            }
            ApiError::Unavailable => {
                "The service is briefly unavailable. Try again in a minute.".into()
            }
            ApiError::Internal => {
                "Something went wrong on our side. Upserts are safe to retry.".into()
            }
        }
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code().as_str(),
            message: self.message(),
            fields: match &self {
                ApiError::Validation(fields) => Some(fields),
                _ => None,
            },
            sign_in_url: match &self {
                ApiError::EmailTaken { sign_in_url, .. } => Some(sign_in_url),
                _ => None,
            },
            sign_in_link_sent: match &self {
                ApiError::EmailTaken {
                    sign_in_link_sent, ..
                } => Some(*sign_in_link_sent),
                _ => None,
            },
        };
        let mut resp = super::json_response(self.status(), &body);
        let headers = resp.headers_mut();
        match self {
            ApiError::Revoked => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"latchkey\", error=\"invalid_token\", error_description=\"The API key was revoked\"",
                    ),
                );
            }
            ApiError::Unauthorized { key_sent } => {
                let challenge = if key_sent {
                    "Bearer realm=\"latchkey\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"latchkey\""
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::Cooldown {
                retry_after_seconds,
            }
            | ApiError::BookingCooldown {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, retry_after_seconds.max(1).into());
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            ApiError::IdempotencyKeyInUse => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unavailable(m) => {
                tracing::warn!(error = %m, "API request: a dependency is unavailable");
                ApiError::Unavailable
            }
            AppError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "API request failed");
                ApiError::Internal
            }
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        AppError::from(e).into()
    }
}
