//! The error answers as the OpenAPI document describes them: the `Error` schema every error
//! body has, the responses several operations share, and one body type per set of codes an
//! answer may carry, named where the operations list their responses.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Response, Schema};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use super::body::{JSON_LIMIT, PDF_LIMIT};
use super::error::ErrorCode;
use super::fields::{custom_format, enum_schema};

/// Every error answer.
pub struct Error;

impl PartialSchema for Error {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .required("code")
            .required("message")
            .property("code", text("A stable, snake_case code to branch on."))
            .property("message", text("A sentence for a person."))
            .property(
                "fields",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(
                        "Validation errors only: each invalid field (nested ones dotted, like `rate.currency`; list items like `contacts[0]`) and what is wrong with it.",
                    ))
                    .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String))),
            )
            .property(
                "sign_in_url",
                text("`email_taken` only: the storefront portal's sign-in page.")
                    .format(custom_format("uri")),
            )
            .property(
                "sign_in_link_sent",
                ObjectBuilder::new().schema_type(Type::Boolean).description(Some(
                    "`email_taken` only: whether the address was just sent a sign-in link (`false` when over the sign-in limits).",
                )),
            )
            .description(Some("Every error answer."))
            .into()
    }
}

impl ToSchema for Error {}

/// An error that lists the invalid fields.
pub struct ValidationError;

impl PartialSchema for ValidationError {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(Ref::from_schema_name(Error::name()))
            .item(part().required("fields"))
            .into()
    }
}

impl ToSchema for ValidationError {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Error::name().into(), Error::schema()));
    }
}

/// The answer to a sign-up whose address has an account.
pub struct EmailTakenError;

impl PartialSchema for EmailTakenError {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(Ref::from_schema_name(Error::name()))
            .item(
                part()
                    .required("sign_in_url")
                    .required("sign_in_link_sent")
                    .property("code", codes(&[ErrorCode::EmailTaken])),
            )
            .description(Some(
                "`message` is for the customer: that a sign-in link was sent (`sign_in_link_sent`), or else to sign in to the portal with a link sent to that address.",
            ))
            .into()
    }
}

impl ToSchema for EmailTakenError {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Error::name().into(), Error::schema()));
    }
}

/// A part of an `allOf` that narrows an error schema (without a `type` of its own).
fn part() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue)
}

fn codes(codes: &[ErrorCode]) -> RefOr<Schema> {
    enum_schema(codes.iter().map(|c| c.as_str()))
}

/// `base` (an error schema) with `code` one of `allowed`.
fn with_codes(base: &str, allowed: &[ErrorCode]) -> RefOr<Schema> {
    AllOfBuilder::new()
        .item(Ref::from_schema_name(base))
        .item(part().property("code", codes(allowed)))
        .into()
}

/// Error bodies whose `code` is one of a set: `name = [codes]` on the `Error` schema (or on
/// another error schema, `name = Base [codes]`).
macro_rules! error_bodies {
    ($($(#[$doc:meta])* $name:ident = $($base:ident)? [$($code:ident),+];)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    #[allow(unused_variables)]
                    let base = Error::name();
                    $(let base = $base::name();)?
                    with_codes(&base, &[$(ErrorCode::$code),+])
                }
            }

            impl ToSchema for $name {
                fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                    schemas.push((Error::name().into(), Error::schema()));
                    $(schemas.push(($base::name().into(), $base::schema()));)?
                }
            }
        )+
    };
}

error_bodies! {
    /// A path that names nothing of the storefront.
    NotFound = [NotFound];
    /// Invalid fields.
    Invalid = [Validation];
    /// Invalid fields, listed (`fields` is there).
    InvalidFields = ValidationError [Validation];
    /// Invalid fields, or a facility that does not exist.
    InvalidOrUnknownFacility = [Validation, UnknownFacility];
    /// Invalid fields, or a contact that does not exist.
    InvalidOrUnknownContact = [Validation, UnknownContact];
    /// Invalid fields, or a contact or rental that does not exist.
    InvalidOrUnknownContactOrRental = [Validation, UnknownContact, UnknownRental];
    /// The body is not what the content type says.
    BadContentType = [BadContentType];
    /// A sign-up's invalid fields or `Idempotency-Key`, a contact that does not exist, or a key used for another request.
    SignUpRefused = [Validation, UnknownContact, IdempotencyKeyReused];
    /// An invalid `Idempotency-Key`, the rental's contact without a portal account, or a key used for another request.
    NotLinkedOrKeyRefused = [Validation, NotLinked, IdempotencyKeyReused];
    /// An invalid `Idempotency-Key`, or one used for another request.
    KeyRefused = [Validation, IdempotencyKeyReused];
    /// Invalid fields or `Idempotency-Key`, or a key used for another request.
    InvalidOrKeyRefused = [Validation, IdempotencyKeyReused];
    /// The first request with the `Idempotency-Key` is still running.
    KeyInUse = [IdempotencyKeyInUse];
    /// Sent a moment ago.
    Cooldown = [Cooldown];
}

/// The 409 of a sign-up: the address has an account, a listed contact is linked already, or
/// the first request with the `Idempotency-Key` is still running.
pub struct EmailTakenOrConflict;

impl PartialSchema for EmailTakenOrConflict {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name(EmailTakenError::name()))
            .item(with_codes(
                &Error::name(),
                &[ErrorCode::Conflict, ErrorCode::IdempotencyKeyInUse],
            ))
            .into()
    }
}

impl ToSchema for EmailTakenOrConflict {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Error::name().into(), Error::schema()));
        schemas.push((EmailTakenError::name().into(), EmailTakenError::schema()));
    }
}

/// Seconds to wait before trying again (`Retry-After`).
pub struct RetryAfter;

impl PartialSchema for RetryAfter {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .into()
    }
}

/// A response several operations share, with a JSON error body of `allowed` codes.
fn shared(description: String, allowed: &[ErrorCode]) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(with_codes(&Error::name(), allowed)))
            .build(),
    )
}

/// Responses several operations share, each a component of the document.
macro_rules! shared_responses {
    ($($name:ident => $response:expr;)+) => {
        $(
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), $response.build().into())
                }
            }
        )+
    };
}

shared_responses! {
    BadJson => shared(
        "The body is not a JSON object, or was not sent as `Content-Type: application/json`.".into(),
        &[ErrorCode::BadJson],
    );
    Unauthorized => shared(
        "No API key, one that was never issued (`unauthorized`), or one that was revoked (`api_key_revoked`).".into(),
        &[ErrorCode::Unauthorized, ErrorCode::ApiKeyRevoked],
    )
    .header(
        "WWW-Authenticate",
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(
                "`Bearer realm=\"latchkey\"`, with `error=\"invalid_token\"` when a key was sent.",
            ))
            .build(),
    );
    TooLarge => shared(
        format!(
            "The body is over the limit ({} MiB for JSON, {} MiB for an agreement).",
            JSON_LIMIT / (1024 * 1024),
            PDF_LIMIT / (1024 * 1024)
        ),
        &[ErrorCode::TooLarge],
    );
    Internal => shared(
        "Something unexpected went wrong (logged). Upserts are safe to retry.".into(),
        &[ErrorCode::Internal],
    );
    Unavailable => shared(
        "A dependency (database, mail queue) is briefly unavailable.".into(),
        &[ErrorCode::Unavailable],
    )
    .header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some("Seconds to wait."))
            .build(),
    );
}
