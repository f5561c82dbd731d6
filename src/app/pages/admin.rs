//! `/admin`: users and recent security events, for administrators only (the
//! guard answers 403 to everyone else). Each list pages on its own, by the
//! URL's `users_cursor` and `events_cursor`: plain links, so paging works
//! without JavaScript too.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::app::components::time_text;
use crate::app::data::{page_data, show, with_cursor};
use crate::app::routes::ADMIN;
use crate::protocol::{AuditEventView, Paged, UserView};

/// The URL parameters that say where each list's page starts.
const USERS_CURSOR: &str = "users_cursor";
const EVENTS_CURSOR: &str = "events_cursor";

/// The pages of users and events the URL names, loaded by the page guard
/// before the page renders.
#[cfg(feature = "ssr")]
pub async fn preload(
    auth: &crate::auth::Auth,
    claims: &crate::protocol::AccessClaims,
    extensions: &mut http::Extensions,
) {
    use crate::app::data::{insert_preloaded, requested_page};
    let users_page = requested_page(extensions, USERS_CURSOR);
    let events_page = requested_page(extensions, EVENTS_CURSOR);
    let (users, events) = tokio::join!(
        async move { auth.admin_users(claims, &users_page?).await },
        async move { auth.admin_events(claims, &events_page?).await },
    );
    insert_preloaded(extensions, users);
    insert_preloaded(extensions, events);
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let query = use_query_map();
    let cursor_of =
        move |param: &'static str| Memo::new(move |_| query.with(|q| q.get(param)).filter(|c| !c.is_empty()));
    let (users_cursor, events_cursor) = (cursor_of(USERS_CURSOR), cursor_of(EVENTS_CURSOR));
    let users = page_data::<UserView>(move || with_cursor("/api/admin/users", users_cursor.get()), || ());
    let events = page_data::<AuditEventView>(move || with_cursor("/api/admin/events", events_cursor.get()), || ());
    // The link to a list's next page keeps the other list where it is.
    let next_link = move |param: &'static str, next: String| {
        let (other_param, other) = if param == USERS_CURSOR {
            (EVENTS_CURSOR, events_cursor.get_untracked())
        } else {
            (USERS_CURSOR, users_cursor.get_untracked())
        };
        let mut href = format!("{ADMIN}?{param}={}", utf8_percent_encode(&next, NON_ALPHANUMERIC));
        if let Some(other) = other {
            href.push_str(&format!(
                "&{other_param}={}",
                utf8_percent_encode(&other, NON_ALPHANUMERIC)
            ));
        }
        view! { <nav class="pager"><a href=href rel="next" data-testid=format!("next-{param}")>"Next page"</a></nav> }
    };
    view! {
        <Title text="Admin · Gatehouse"/>
        <section class="card">
            <h1>"Users"</h1>
            {show(users, "Loading users…", move |page: Paged<UserView>| view! {
                {users_table(page.items)}
                {page.next_cursor.map(|next| next_link(USERS_CURSOR, next))}
            })}
        </section>
        <section class="card">
            <h2>"Recent security events"</h2>
            {show(events, "Loading events…", move |page: Paged<AuditEventView>| view! {
                {events_table(page.items)}
                {page.next_cursor.map(|next| next_link(EVENTS_CURSOR, next))}
            })}
        </section>
    }
}

fn users_table(users: Vec<UserView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table data-testid="admin-users">
                <thead><tr><th scope="col">"Username"</th><th scope="col">"Role"</th><th scope="col">"Created"</th></tr></thead>
                <tbody>
                    {users.into_iter().map(|u| view! {
                        <tr><td>{u.username}</td><td>{u.role}</td><td>{time_text(u.created_at)}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn events_table(events: Vec<AuditEventView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table data-testid="admin-events">
                <thead>
                    <tr>
                        <th scope="col">"When"</th><th scope="col">"Event"</th><th scope="col">"User"</th>
                        <th scope="col">"IP"</th><th scope="col">"Detail"</th>
                    </tr>
                </thead>
                <tbody>
                    {events.into_iter().map(|e| view! {
                        <tr>
                            <td>{time_text(e.at)}</td>
                            <td>{e.kind}</td>
                            <td>{e.username.unwrap_or_default()}</td>
                            <td>{e.ip.unwrap_or_default()}</td>
                            <td>{e.detail.unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
