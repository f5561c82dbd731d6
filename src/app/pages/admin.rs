//! `/admin`: users and recent security events, for administrators only (the
//! guard answers 403 to everyone else).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::components::time_text;
use crate::app::data::{page_data, show};
use crate::protocol::{AuditEventView, UserView};

/// The users and the events, loaded by the page guard before the page renders.
#[cfg(feature = "ssr")]
pub async fn preload(
    auth: &crate::auth::Auth,
    claims: &crate::protocol::AccessClaims,
    extensions: &mut http::Extensions,
) {
    use crate::app::data::insert_preloaded;
    let (users, events) = tokio::join!(auth.admin_users(claims), auth.admin_events(claims));
    insert_preloaded(extensions, users);
    insert_preloaded(extensions, events);
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let users = page_data::<Vec<UserView>>("/api/admin/users", || ());
    let events = page_data::<Vec<AuditEventView>>("/api/admin/events", || ());
    view! {
        <Title text="Admin · Gatehouse"/>
        <section class="card">
            <h1>"Users"</h1>
            {show(users, "Loading users…", users_table)}
        </section>
        <section class="card">
            <h2>"Recent security events"</h2>
            {show(events, "Loading events…", events_table)}
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
