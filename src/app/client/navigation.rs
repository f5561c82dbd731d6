//! Leaving the page for `/login` when the session is over.

use leptos::prelude::*;

use crate::app::routes::{access_for, login_url, Access, LOGIN};

/// Replaces the page by the login page, which drops everything held in
/// memory. `keep_place` adds `next=<here>` so logging in again comes back.
/// A guest-only page (login, register) is already where a signed-out visitor
/// belongs: it stays.
pub(super) fn leave_for_login(keep_place: bool) {
    let location = location();
    let path = location.pathname().unwrap_or_default();
    if access_for(&path) == Access::GuestOnly {
        return;
    }
    let target = if keep_place {
        let here = format!("{path}{}", location.search().unwrap_or_default());
        login_url(&here)
    } else {
        LOGIN.to_string()
    };
    let _ = location.replace(&target);
}
