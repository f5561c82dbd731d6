//! `/sessions`: the live sessions of the user, newest first, this device
//! marked, a page at a time (`?cursor=`, a plain link, so paging works without
//! JavaScript too); sign one out, or all of them.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::app::auth_store::AuthStore;
use crate::app::components::{device_text, page_messages, time_text, Announce};
#[cfg(feature = "hydrate")]
use crate::app::components::{error_message, notice_message};
use crate::app::data::{page_data, show, with_cursor};
use crate::app::live_feed::LiveFeed;
use crate::app::routes::SESSIONS;
use crate::protocol::{Paged, SessionView};

/// The page of sessions the URL's `cursor` names, loaded by the page guard
/// before the page renders.
#[cfg(feature = "ssr")]
pub async fn preload(
    auth: &crate::auth::Auth,
    claims: &crate::protocol::AccessClaims,
    extensions: &mut http::Extensions,
) {
    use crate::app::data::{insert_preloaded, requested_page};
    let page = requested_page(extensions, "cursor");
    let loaded = async move { auth.sessions(claims, &page?).await }.await;
    insert_preloaded(extensions, loaded);
}

/// This page at `cursor`.
fn page_url(cursor: &str) -> String {
    format!("{SESSIONS}?cursor={}", utf8_percent_encode(cursor, NON_ALPHANUMERIC))
}

#[component]
pub fn SessionsPage() -> impl IntoView {
    let store = AuthStore::from_context();
    let version = RwSignal::new(0u32);
    let feed = LiveFeed::from_context();
    let query = use_query_map();
    let cursor = Memo::new(move |_| query.with(|q| q.get("cursor")).filter(|c| !c.is_empty()));
    // Reloads when a session appears or ends elsewhere, as the live socket
    // tells, and when a link leads to another page of the list.
    let sessions = page_data::<SessionView>(
        move || with_cursor("/auth/sessions", cursor.get()),
        move || {
            version.track();
            feed.sessions_changed.track();
        },
    );
    let (error, notice) = page_messages();

    let revoke = move |id: String| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::app::client::Api;
            use gloo_net::http::Method;
            let path = format!("/auth/sessions/{id}");
            match Api::new(store).send::<()>(Method::DELETE, &path, None).await {
                Ok(()) => {
                    error.set(None);
                    notice.set(notice_message("session_revoked").map(str::to_string));
                    version.update(|v| *v += 1);
                }
                Err(err) => error.set(Some(error_message(err.code()).to_string())),
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (id, store);
    };
    let log_out_everywhere = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::app::client::{sign_out, Api};
            use gloo_net::http::Method;
            store.begin_ending();
            match Api::new(store).send::<()>(Method::POST, "/auth/logout-all", None).await {
                Ok(()) => sign_out(store, false),
                Err(err) => {
                    store.cancel_ending();
                    error.set(Some(error_message(err.code()).to_string()));
                }
            }
        });
    };

    view! {
        <Title text="Sessions · Gatehouse"/>
        <section class="card">
            <h1>"Your sessions"</h1>
            <p class="hint">"Every browser or device where you are logged in. Sign out any you do not recognise."</p>
            <Announce message=notice kind="notice"/>
            <Announce message=error/>
            {show(sessions, "Loading sessions…", move |list: Paged<SessionView>| {
                let here = cursor.get_untracked().unwrap_or_default();
                view! {
                    <ul class="sessions" data-testid="sessions">
                        {list.items.into_iter().map(|s| view! { <SessionItem session=s cursor=here.clone() revoke=revoke/> }).collect_view()}
                    </ul>
                    <nav class="pager" aria-label="More sessions">
                        {(!here.is_empty()).then(|| view! { <a href=SESSIONS data-testid="first-page">"First page"</a> })}
                        {list.next_cursor.map(|next| view! { <a href=page_url(&next) rel="next" data-testid="next-page">"Next page"</a> })}
                    </nav>
                }
            })}
            <form method="post" action="/logout-all" on:submit=log_out_everywhere>
                <button type="submit" class="danger" data-testid="logout-all">"Log out everywhere"</button>
            </form>
        </section>
    }
}

/// One session; signing it out without JavaScript comes back to the same page
/// of the list (`cursor`, empty on the first).
#[component]
fn SessionItem(
    session: SessionView,
    cursor: String,
    revoke: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = session.id.clone();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        revoke(id.clone());
    };
    view! {
        <li class="session" data-testid="session" data-current=session.current.to_string()>
            <div>
                <strong>{device_text(session.user_agent.as_deref())}</strong>
                {session.current.then(|| view! { <span class="badge" data-testid="this-device">"This device"</span> })}
                <p class="hint">
                    {format!(
                        "IP {} · logged in {} · last used {}",
                        session.ip.as_deref().unwrap_or("unknown"),
                        time_text(session.created_at),
                        time_text(session.last_used_at),
                    )}
                </p>
            </div>
            {(!session.current).then(|| view! {
                <form method="post" action="/sessions/revoke" on:submit=on_submit>
                    <input type="hidden" name="session_id" value=session.id.clone()/>
                    <input type="hidden" name="cursor" value=cursor/>
                    <button type="submit" class="secondary" data-testid="revoke">"Sign out"</button>
                </form>
            })}
        </li>
    }
}
