//! Which operation a request is for, read from the OpenAPI document: the document's paths and
//! methods are the route table, and each documented operation (by its `operationId`) has one
//! handler, [`Op`]. A route cannot exist without documentation, and building the router fails
//! when a documented operation has no handler or a handler is documented twice or not at all.

use http::Method;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::path::{Operation, PathItem};

/// The operations, one per handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetOpenApi,
    PutFacility,
    PutContact,
    PutRental,
    PutInvoice,
    PutRentalAgreement,
    CreateAccount,
    SendBookingConfirmation,
    ResendPortalLink,
    ListDeliveries,
    GetDelivery,
    ListFacilities,
    GetFacility,
    ListContacts,
    GetContact,
    ListRentals,
    GetRental,
    ListInvoices,
    GetInvoice,
    ListAccounts,
    GetAccount,
    // Webhooks (issue 11).
    ListWebhookEndpoints,
    CreateWebhookEndpoint,
    GetWebhookEndpoint,
    UpdateWebhookEndpoint,
    DeleteWebhookEndpoint,
    SendWebhookTest,
    ListWebhookDeliveries,
    ListSuppressions,
    GetSuppression,
    // Sender settings (issue 11).
    GetSender,
    UpdateSender,
}

impl Op {
    const ALL: [Op; 32] = [
        Op::GetOpenApi,
        Op::PutFacility,
        Op::PutContact,
        Op::PutRental,
        Op::PutInvoice,
        Op::PutRentalAgreement,
        Op::CreateAccount,
        Op::SendBookingConfirmation,
        Op::ResendPortalLink,
        Op::ListDeliveries,
        Op::GetDelivery,
        Op::ListFacilities,
        Op::GetFacility,
        Op::ListContacts,
        Op::GetContact,
        Op::ListRentals,
        Op::GetRental,
        Op::ListInvoices,
        Op::GetInvoice,
        Op::ListAccounts,
        Op::GetAccount,
        // Webhooks (issue 11).
        Op::ListWebhookEndpoints,
        Op::CreateWebhookEndpoint,
        Op::GetWebhookEndpoint,
        Op::UpdateWebhookEndpoint,
        Op::DeleteWebhookEndpoint,
        Op::SendWebhookTest,
        Op::ListWebhookDeliveries,
        Op::ListSuppressions,
        Op::GetSuppression,
        // Sender settings (issue 11).
        Op::GetSender,
        Op::UpdateSender,
    ];

    /// The `operationId` that documents it.
    pub fn id(self) -> &'static str {
        match self {
            Op::GetOpenApi => "getOpenApi",
            Op::PutFacility => "putFacility",
            Op::PutContact => "putContact",
            Op::PutRental => "putRental",
            Op::PutInvoice => "putInvoice",
            Op::PutRentalAgreement => "putRentalAgreement",
            Op::CreateAccount => "createAccount",
            Op::SendBookingConfirmation => "sendBookingConfirmation",
            Op::ResendPortalLink => "resendPortalLink",
            Op::ListDeliveries => "listDeliveries",
            Op::GetDelivery => "getDelivery",
            Op::ListFacilities => "listFacilities",
            Op::GetFacility => "getFacility",
            Op::ListContacts => "listContacts",
            Op::GetContact => "getContact",
            Op::ListRentals => "listRentals",
            Op::GetRental => "getRental",
            Op::ListInvoices => "listInvoices",
            Op::GetInvoice => "getInvoice",
            Op::ListAccounts => "listAccounts",
            Op::GetAccount => "getAccount",
            // Webhooks (issue 11).
            Op::ListWebhookEndpoints => "listWebhookEndpoints",
            Op::CreateWebhookEndpoint => "createWebhookEndpoint",
            Op::GetWebhookEndpoint => "getWebhookEndpoint",
            Op::UpdateWebhookEndpoint => "updateWebhookEndpoint",
            Op::DeleteWebhookEndpoint => "deleteWebhookEndpoint",
            Op::SendWebhookTest => "sendWebhookTest",
            Op::ListWebhookDeliveries => "listWebhookDeliveries",
            Op::ListSuppressions => "listSuppressions",
            Op::GetSuppression => "getSuppression",
            // Sender settings (issue 11).
            Op::GetSender => "getSender",
            Op::UpdateSender => "updateSender",
        }
    }
}

enum Segment {
    Literal(String),
    Param,
}

struct Route {
    method: Method,
    path: String,
    segments: Vec<Segment>,
    op: Op,
}

/// What a request matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched {
    /// The operation, with the path parameters as sent (not decoded yet).
    Op(Op, Vec<String>),
    /// A documented path, with another method.
    MethodNotAllowed,
    NotFound,
}

/// The route table.
pub struct Router {
    routes: Vec<Route>,
}

fn operations(item: &PathItem) -> impl Iterator<Item = (Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
}

impl Router {
    /// The routes of the document's operations.
    ///
    /// # Panics
    ///
    /// When an operation has no handler, or a handler no operation (or two): the document and
    /// the code disagree, which any test shows.
    pub fn new(doc: &Document) -> Self {
        let mut routes = Vec::new();
        for (path, item) in doc.paths.paths.iter() {
            for (method, operation) in operations(item) {
                let id = operation.operation_id.as_deref().unwrap_or_default();
                let op = Op::ALL
                    .into_iter()
                    .find(|op| op.id() == id)
                    .unwrap_or_else(|| panic!("{method} {path} ({id}) has no handler"));
                let segments = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| match s.starts_with('{') && s.ends_with('}') {
                        true => Segment::Param,
                        false => Segment::Literal(s.to_string()),
                    })
                    .collect();
                routes.push(Route {
                    method,
                    path: path.clone(),
                    segments,
                    op,
                });
            }
        }
        for op in Op::ALL {
            let n = routes.iter().filter(|r| r.op == op).count();
            assert_eq!(n, 1, "{op:?} is documented {n} times, not once");
        }
        Self { routes }
    }

    /// The operation for `method` on `path` (what follows `/api/v1/`). A trailing slash does
    /// not matter; an empty segment matches no parameter.
    pub fn find(&self, method: &Method, path: &str) -> Matched {
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let mut path_matched = false;
        for route in &self.routes {
            if route.segments.len() != segments.len() {
                continue;
            }
            let mut params = Vec::new();
            let matches = route
                .segments
                .iter()
                .zip(&segments)
                .all(|(want, got)| match want {
                    Segment::Literal(l) => l == got,
                    Segment::Param if got.is_empty() => false,
                    Segment::Param => {
                        params.push(got.to_string());
                        true
                    }
                });
            if !matches {
                continue;
            }
            if route.method == *method {
                return Matched::Op(route.op, params);
            }
            path_matched = true;
        }
        if path_matched {
            Matched::MethodNotAllowed
        } else {
            Matched::NotFound
        }
    }

    /// Every route, as (METHOD, /documented/{path}).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|r| (r.method.to_string(), r.path.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(&super::super::doc::document())
    }

    #[test]
    fn every_handler_has_one_documented_route() {
        assert_eq!(router().routes().len(), Op::ALL.len());
    }

    #[test]
    fn paths_match_as_warp_matched_them() {
        let r = router();
        let put = |path| r.find(&Method::PUT, path);
        assert_eq!(
            put("facilities/FAC-DT"),
            Matched::Op(Op::PutFacility, vec!["FAC-DT".into()])
        );
        assert_eq!(
            put("facilities/FAC-DT/"),
            Matched::Op(Op::PutFacility, vec!["FAC-DT".into()])
        );
        assert_eq!(
            put("rentals/R%2F1/agreement"),
            Matched::Op(Op::PutRentalAgreement, vec!["R%2F1".into()])
        );
        assert_eq!(
            r.find(&Method::GET, "openapi.json"),
            Matched::Op(Op::GetOpenApi, vec![])
        );
        assert_eq!(
            r.find(&Method::GET, "facilities/FAC-DT"),
            Matched::Op(Op::GetFacility, vec!["FAC-DT".into()])
        );
        assert_eq!(
            r.find(&Method::GET, "facilities"),
            Matched::Op(Op::ListFacilities, vec![])
        );
        assert_eq!(
            r.find(&Method::POST, "facilities/FAC-DT"),
            Matched::MethodNotAllowed
        );
        assert_eq!(
            r.find(&Method::HEAD, "deliveries"),
            Matched::MethodNotAllowed
        );
        assert_eq!(put("facilities"), Matched::MethodNotAllowed);
        for path in [
            "",
            "facilities//",
            "facilities/A/B",
            "facilities/A//",
            "v1/facilities/A",
        ] {
            assert_eq!(put(path), Matched::NotFound, "{path:?}");
        }
    }
}
