//! Pages of the lists (a user's sessions, the admin's users and events): how
//! many items, from where, and the opaque cursor that says where the next page
//! starts. A cursor is the sort key of a page's last item, so a page starts
//! where the one before ended even when items come and go in between; each
//! list sorts by a key that is unique and never changes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::AuthError;
use crate::protocol::Paged;

/// Items in a page when the request does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// Items in a page at most.
pub const MAX_LIMIT: u32 = 500;

/// Which page of a list is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    cursor: Option<String>,
}

impl Default for PageRequest {
    /// The first page, of the default size.
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// At most `limit` items (the default without one), after `cursor` (from
    /// the start without one). A limit out of range is refused here; a cursor
    /// is read by the list it is given to.
    pub fn new(limit: Option<u32>, cursor: Option<String>) -> Result<Self, AuthError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad_limit());
        }
        Ok(Self { limit, cursor })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Rows to read: one more than a page, to know whether another follows.
    pub(super) fn rows(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Where a list sorted by time and id starts: after this `(time, id)`.
    pub(super) fn after_timed(&self, list: List) -> Result<Option<(i64, String)>, AuthError> {
        self.payload(list)?
            .map(|key| {
                let (time, id) = key.split_once(':').ok_or_else(bad_cursor)?;
                Ok((time.parse().map_err(|_| bad_cursor())?, id.to_string()))
            })
            .transpose()
    }

    /// Where a list sorted by name starts: after this name.
    pub(super) fn after_named(&self, list: List) -> Result<Option<String>, AuthError> {
        self.payload(list)
    }

    fn payload(&self, list: List) -> Result<Option<String>, AuthError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let text = URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(bad_cursor)?;
        let key = text.strip_prefix(list.tag()).ok_or_else(bad_cursor)?;
        Ok(Some(key.to_string()))
    }

    /// The page made of `rows` (read with [`Self::rows`]), each shown by `view`,
    /// with the cursor after the last if more follow; `key` is a row's sort
    /// key as the list's `after_*` reads it back.
    pub(super) fn page<R, V>(
        &self,
        list: List,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> String,
        view: impl FnMut(R) -> V,
    ) -> Paged<V> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = more
            .then(|| {
                rows.last()
                    .map(|last| URL_SAFE_NO_PAD.encode(format!("{}{}", list.tag(), key(last))))
            })
            .flatten();
        Paged {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

/// The sort key of a list sorted by time and id, as a cursor holds it.
pub(super) fn timed_key(time: i64, id: &str) -> String {
    format!("{time}:{id}")
}

/// The lists that page. A cursor names its list, so one list's cursor is
/// refused by another instead of read as a position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Sessions,
    Users,
    Events,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            Self::Sessions => "s:",
            Self::Users => "u:",
            Self::Events => "e:",
        }
    }
}

fn bad_limit() -> AuthError {
    AuthError::BadPage(format!("The limit must be a whole number from 1 to {MAX_LIMIT}."))
}

fn bad_cursor() -> AuthError {
    AuthError::BadPage("The cursor is not one this list gave out.".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_out_of_range_are_refused() {
        assert_eq!(PageRequest::new(None, None).unwrap().limit(), DEFAULT_LIMIT);
        assert_eq!(PageRequest::new(Some(MAX_LIMIT), None).unwrap().limit(), MAX_LIMIT);
        for limit in [0, MAX_LIMIT + 1] {
            assert!(
                matches!(PageRequest::new(Some(limit), None), Err(AuthError::BadPage(_))),
                "{limit}"
            );
        }
    }

    #[test]
    fn a_cursor_leads_to_the_page_after_it_in_its_own_list_only() {
        let first = PageRequest::new(Some(2), None).unwrap();
        let rows = vec![(30, "c"), (20, "b"), (10, "a")];
        let page = first.page(List::Events, rows, |(t, id)| timed_key(*t, id), |(_, id)| id);
        assert_eq!(page.items, vec!["c", "b"]);
        let cursor = page.next_cursor.unwrap();
        let next = PageRequest::new(None, Some(cursor.clone())).unwrap();
        assert_eq!(next.after_timed(List::Events).unwrap(), Some((20, "b".to_string())));
        assert!(matches!(next.after_timed(List::Sessions), Err(AuthError::BadPage(_))));
        let last = first.page(List::Events, vec![(10, "a")], |(t, id)| timed_key(*t, id), |(_, id)| id);
        assert_eq!(last.next_cursor, None, "nothing follows");
        for bad in ["%%", "", "bm90IGEgY3Vyc29y", &URL_SAFE_NO_PAD.encode("e:x:id")] {
            let request = PageRequest::new(None, Some(bad.to_string())).unwrap();
            assert!(request.after_timed(List::Events).is_err(), "{bad:?}");
        }
    }
}
