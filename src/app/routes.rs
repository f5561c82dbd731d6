//! Who may see which page, and the paths between pages. Who may see a page is
//! a column of the one page table (`pages/mod.rs`): the server's page guard
//! reads it here (`access_for`) before anything renders, the browser's session
//! client before it sends someone to log in, and each page's `Protected` guard
//! gets its access from the same line.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

pub use super::pages::paths::*;
use super::pages::PAGES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Only without a session: a logged-in visit goes on to `next`.
    GuestOnly,
    /// Any logged-in user.
    Member,
    /// Logged-in users with the admin role; others get 403.
    Admin,
}

/// A page of the page table, as the guards read it.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub path: &'static str,
    pub access: Access,
}

/// Who may see `path`: its page's access, or `Public` where no page is (the
/// 404 page).
pub fn access_for(path: &str) -> Access {
    let page = page_of(path);
    PAGES.iter().find(|p| p.path == page).map_or(Access::Public, |p| p.access)
}

/// Whether `path` is `page` or below it (`/sessions/x` is under `/sessions`;
/// only `/` is under `/`): where a navigation link marks its page current.
pub fn is_under(path: &str, page: &str) -> bool {
    let path = page_of(path);
    path == page || (page != DASHBOARD && path.strip_prefix(page).is_some_and(|rest| rest.starts_with('/')))
}

/// The page a path shows: `/sessions/` is `/sessions`; `/` stays as it is.
pub fn page_of(path: &str) -> &str {
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

/// Where to go after logging in: `next` if it is a path on this site, else the
/// dashboard. Refuses absolute URLs, scheme-relative `//host`, backslashes and
/// control characters, so `next` can never send a user to another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && next.len() <= 1024
                && !next.chars().any(char::is_control)
                && access_for(next.split(['?', '#']).next().unwrap_or("/")) != Access::GuestOnly =>
        {
            next.to_string()
        }
        _ => DASHBOARD.to_string(),
    }
}

/// `/login?next=<path>`, with `path` percent-encoded.
pub fn login_url(next: &str) -> String {
    with_next(LOGIN, next)
}

/// `page?next=<path>`, or just `page` when `next` is the default.
pub fn with_next(page: &str, next: &str) -> String {
    if next == DASHBOARD {
        return page.to_string();
    }
    format!("{page}?next={}", utf8_percent_encode(next, NON_ALPHANUMERIC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(access_for("/"), Access::Member);
        assert_eq!(access_for("/sessions/"), Access::Member);
        assert_eq!(access_for("/admin"), Access::Admin);
        assert_eq!(access_for("/login"), Access::GuestOnly);
        assert_eq!(access_for("/elsewhere"), Access::Public);
    }

    #[test]
    fn pages_contain_the_paths_below_them() {
        assert!(is_under("/", "/"));
        assert!(!is_under("/sessions", "/"));
        assert!(is_under("/sessions/", "/sessions"));
        assert!(is_under("/sessions/abc", "/sessions"));
        assert!(!is_under("/sessionsx", "/sessions"));
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/sessions?x=1")), "/sessions?x=1");
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "/a\nb", "javascript:alert(1)", "/login"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn login_url_encodes_next() {
        assert_eq!(login_url("/"), "/login");
        assert_eq!(login_url("/sessions?a=b&c"), "/login?next=%2Fsessions%3Fa%3Db%26c");
    }
}
