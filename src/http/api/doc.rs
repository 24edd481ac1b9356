//! The OpenAPI 3.1 document of the API, generated from the operations' `#[utoipa::path]`
//! attributes and the request and answer types: nothing of it is written by hand but the
//! prose. The router (`router.rs`) is built from it, so every route is documented and every
//! documented route is served.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error_doc::{
    BadJson, EmailTakenError, Error, Internal, TooLarge, Unauthorized, Unavailable, ValidationError,
};
use super::fields::{PageLimit, REF_MAX};
use super::{
    KEY_LENGTH, KEY_PREFIX, accounts, deliveries, records, sender, suppressions, webhooks,
};
use crate::usecases::idempotency::KEPT_FOR_HOURS;

#[derive(OpenApi)]
#[openapi(
    info(title = "Latchkey integration API", version = "1.0.0"),
    servers((url = "/api/v1")),
    tags(
        (name = "Records", description = "Upserts of your records by reference, and the records read back."),
        (name = "Customers", description = "Portal accounts (created and read back) and the emails that sign customers in."),
        (name = "Deliveries", description = "Every email sent, with its attempts, and the suppression list: the addresses that get no more email after a hard bounce or a spam complaint."),
        (name = "Webhooks", description = "Signed events posted to your endpoints."),
        (name = "Sender", description = "The name and address your emails come from, and their DKIM signing."),
        (name = "Meta"),
    ),
    paths(
        records::facility::put,
        records::facility::list,
        records::facility::get,
        records::contact::put,
        records::contact::list,
        records::contact::get,
        records::rental::put,
        records::rental::list,
        records::rental::get,
        records::invoice::put,
        records::invoice::list,
        records::invoice::get,
        records::agreement::put,
        accounts::create,
        accounts::list,
        accounts::detail,
        accounts::booking_confirmation,
        accounts::portal_link,
        deliveries::list,
        deliveries::detail,
        // Webhooks (issue 11).
        webhooks::list,
        webhooks::create,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::test,
        webhooks::deliveries,
        suppressions::list,
        suppressions::detail,
        sender::get,
        sender::patch,
        openapi,
    ),
    components(
        schemas(Error, ValidationError, EmailTakenError),
        responses(BadJson, Unauthorized, TooLarge, Internal, Unavailable),
    ),
    modifiers(&Prose, &ApiKey),
)]
struct ApiDoc;

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// An OpenAPI document, as served here.
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        let mut schema = utoipa::openapi::schema::ObjectBuilder::new();
        for field in ["openapi", "info", "paths", "components"] {
            schema = schema.required(field);
        }
        schema.into()
    }
}

impl ToSchema for OpenApiDocument {}

/// This document
///
/// No API key needed.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "Meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", body = inline(OpenApiDocument)),
    ),
)]
#[allow(dead_code)]
fn openapi() {}

/// The document's introduction, with the limits it names taken from the code.
struct Prose;

impl Modify for Prose {
    fn modify(&self, doc: &mut Document) {
        // The package's licence is the code's, not the API's.
        doc.info.license = None;
        doc.info.description = Some(format!(
            "For the operator's own systems: keep facilities, contacts, rentals, invoices and agreements in step with the customer portal and read them back (with what customers did: invoices paid, accounts created), create portal accounts on storefront sign-up, send booking confirmations and portal links, read the email delivery log, and have signed events posted to your webhook endpoints (invoices paid, accounts created, emails sent or bounced…).

**Authentication**: `Authorization: Bearer <API key>` (keys look like `{KEY_PREFIX}` followed by {} characters). A missing or unknown key answers 401 `unauthorized`, a revoked one 401 `api_key_revoked`. Every request acts on the key's storefront only: ids and references of another storefront answer 404 (or, inside a body, the same 422 as a reference that does not exist).

**References**: your own identifiers (`ref`), 1 to {REF_MAX} letters, digits, `-`, `_` or `.`, unique per storefront and kind. PUT is idempotent by reference: the first PUT creates (201), the same PUT again replaces every field (200) and keeps the id.

**Lists** are keyset-paged, newest first: `limit` (1 to {}, default {}) records a page, and the answer's `next`, passed as `before`, gives the next (older) page; `next` is null on the last page. A record created while you page heads the next first page and is not on the pages that follow; none is listed twice or skipped.

**Retries**: every POST (and PATCH) takes an `Idempotency-Key` header: the first answer with a key is kept for {} hours and a repeat of the same request with it gets that answer again (`Idempotent-Replayed: true`) without a second email or account. The same key with another request is 422 `idempotency_key_reused`; a repeat while the first is still running is 409 `idempotency_key_in_use`. PUT is idempotent by reference and needs no key.

**Errors** are JSON `{{\"code\", \"message\"}}` with a stable snake_case `code`; validation errors add `fields`. Unknown paths under /api/v1 answer 404 `not_found`, a known path with another method 405 `method_not_allowed`.

**Values**: text is trimmed and may not contain control characters; dates are `YYYY-MM-DD`; times are RFC 3339 in UTC; money is an integer amount in minor units with a three-letter currency; optional text that is empty reads back as null.",
            KEY_LENGTH - KEY_PREFIX.len(),
            PageLimit::MAX,
            PageLimit::DEFAULT,
            KEPT_FOR_HOURS,
        ));
    }
}

/// The security scheme every operation but the document's names.
struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format(format!(
                "{KEY_PREFIX} followed by {} characters",
                KEY_LENGTH - KEY_PREFIX.len()
            ))
            .description(Some(
                "An API key of your storefront (`latchkey admin` creates them).",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("apiKey", SecurityScheme::Http(scheme));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::ParameterIn;

    #[test]
    fn every_post_documents_the_idempotency_key() {
        let doc = document();
        let mut posts = 0;
        for (path, item) in doc.paths.paths.iter() {
            for post in [&item.post, &item.patch].into_iter().flatten() {
                posts += 1;
                let header = post.parameters.iter().flatten().find(|p| {
                    matches!(p, RefOr::T(p) if p.name == super::super::idempotency::HEADER
                    && p.parameter_in == ParameterIn::Header)
                });
                assert!(
                    header.is_some(),
                    "POST {path} does not document Idempotency-Key"
                );
                for status in ["409", "422"] {
                    assert!(
                        post.responses.responses.contains_key(status),
                        "POST {path} does not document its {status}"
                    );
                }
            }
        }
        assert!(posts >= 3, "{posts}");
    }
}
