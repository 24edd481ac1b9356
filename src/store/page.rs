//! Keyset pages of a storefront's records for the API's read-back: newest first (highest id
//! first), each page read as `id < before ORDER BY id DESC LIMIT limit + 1` from the
//! `(storefront_id, id)` index of its table, so a deep page costs what the first does and a
//! record written meanwhile never shifts one into a page twice or out of every page.

/// One page, and the cursor of the next (older) one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to pass as `before` for the next page; `None` on the last one.
    pub next: Option<i64>,
}

/// The statement's tail: `… AND {alias}.id < $2 ORDER BY {alias}.id DESC LIMIT $3`, with the
/// storefront as `$1`.
pub(super) fn keyset(alias: &str) -> String {
    format!(
        "WHERE {alias}.storefront_id = $1 AND {alias}.id < $2 ORDER BY {alias}.id DESC LIMIT $3"
    )
}

/// The parameters of [`keyset`]: the storefront, the cursor and one more than the page holds
/// (the extra row says whether there is a next page).
pub(super) fn keyset_params(
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Vec<super::db::Value> {
    crate::params![storefront_id, before.unwrap_or(i64::MAX), limit + 1]
}

/// The page of rows read with [`keyset_params`] (`limit + 1` at most).
pub(super) fn page_of<T>(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Page<T> {
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_row_makes_a_next_cursor() {
        let full = page_of(vec![9, 7, 4], 2, |i| *i);
        assert_eq!((full.items, full.next), (vec![9, 7], Some(7)));
        let last = page_of(vec![9, 7], 2, |i| *i);
        assert_eq!((last.items, last.next), (vec![9, 7], None));
        let empty = page_of(Vec::<i64>::new(), 2, |i| *i);
        assert_eq!((empty.items, empty.next), (vec![], None));
    }
}
