//! The keyset paging every list of the API shares: the parameters `before` (the `next` of the
//! previous page) and `limit`, and a page's JSON shape, `{data, next}`, newest first.

use utoipa::IntoParams;

use super::error::ApiError;
use super::fields::{Cursor, PageLimit, parse_id};
use super::input::{Problems, Query, parse_query};

/// The page a list answers.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next` cursor of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    pub before: Option<i64>,
    /// Page size.
    #[param(value_type = Option<PageLimit>, inline, example = 20)]
    pub limit: i64,
}

impl PageQuery {
    /// The parameters, in the order the document lists them.
    pub const NAMES: [&str; 2] = ["before", "limit"];

    /// The page a query string asks for; any other parameter is refused (422).
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let q = parse_query(query, &Self::NAMES)?;
        let mut p = Problems::default();
        let page = Self {
            before: before(&q, &mut p),
            limit: limit(&q, &mut p),
        };
        if !p.is_empty() {
            return Err(p.into_error());
        }
        Ok(page)
    }
}

/// The `before` cursor of a list's query.
pub fn before(q: &Query, p: &mut Problems) -> Option<i64> {
    q.get("before").and_then(|b| {
        let parsed = parse_id(b);
        if parsed.is_none() {
            p.add("before", "Must be the `next` cursor of an earlier page.");
        }
        parsed
    })
}

/// The `limit` of a list's query ([`PageLimit::DEFAULT`] when absent).
pub fn limit(q: &Query, p: &mut Problems) -> i64 {
    match q.get("limit") {
        None => PageLimit::DEFAULT,
        Some(l) => PageLimit::parse(l).unwrap_or_else(|| {
            p.add(
                "limit",
                format!("Must be a whole number from 1 to {}.", PageLimit::MAX),
            );
            PageLimit::DEFAULT
        }),
    }
}

/// A page of records as `$view` shows them, named `$schema` in the document, made from a
/// store page of `$record`s.
macro_rules! api_page {
    ($(#[$doc:meta])* $name:ident = $schema:ident of $view:ident from $record:ty) => {
        $(#[$doc])*
        #[derive(serde::Serialize, utoipa::ToSchema)]
        #[schema(as = $schema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Newest first.
            data: Vec<$view>,
            /// Pass as `before` for the next (older) page; null at the end.
            #[schema(required = true)]
            next: Option<String>,
        }

        impl From<crate::store::Page<$record>> for $name {
            fn from(page: crate::store::Page<$record>) -> Self {
                Self {
                    data: page.items.iter().map($view::from).collect(),
                    next: page.next.map(|n| n.to_string()),
                }
            }
        }
    };
}

pub(crate) use api_page;

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::ParameterIn;

    #[test]
    fn the_parameters_read_are_the_parameters_documented() {
        let documented: Vec<String> = PageQuery::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(documented, PageQuery::NAMES);
    }

    #[test]
    fn a_page_is_a_cursor_and_a_size() {
        let page = PageQuery::parse("before=42&limit=3").unwrap();
        assert_eq!((page.before, page.limit), (Some(42), 3));
        let first = PageQuery::parse("").unwrap();
        assert_eq!((first.before, first.limit), (None, PageLimit::DEFAULT));
        for bad in [
            "limit=0",
            "limit=101",
            "before=-1",
            "before=x",
            "status=sent",
        ] {
            assert!(
                matches!(PageQuery::parse(bad), Err(ApiError::Validation(_))),
                "{bad}"
            );
        }
    }
}
