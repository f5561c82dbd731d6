//! `/sessions`: every live session of the user, this device marked; sign one
//! out, or all of them.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::AuthStore;
use crate::app::components::{device_text, page_messages, time_text, Announce};
#[cfg(feature = "hydrate")]
use crate::app::components::{error_message, notice_message};
use crate::app::data::{page_data, show};
use crate::app::live_feed::LiveFeed;
use crate::protocol::SessionView;

/// The sessions, loaded by the page guard before the page renders.
#[cfg(feature = "ssr")]
pub async fn preload(
    auth: &crate::auth::Auth,
    claims: &crate::protocol::AccessClaims,
    extensions: &mut http::Extensions,
) {
    crate::app::data::insert_preloaded(extensions, auth.sessions(claims).await);
}

#[component]
pub fn SessionsPage() -> impl IntoView {
    let store = AuthStore::from_context();
    let version = RwSignal::new(0u32);
    let feed = LiveFeed::from_context();
    // Reloads when a session appears or ends elsewhere, as the live socket tells.
    let sessions = page_data::<Vec<SessionView>>("/auth/sessions", move || {
        version.track();
        feed.sessions_changed.track();
    });
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
            {show(sessions, "Loading sessions…", move |list: Vec<SessionView>| view! {
                <ul class="sessions" data-testid="sessions">
                    {list.into_iter().map(|s| view! { <SessionItem session=s revoke=revoke/> }).collect_view()}
                </ul>
            })}
            <form method="post" action="/logout-all" on:submit=log_out_everywhere>
                <button type="submit" class="danger" data-testid="logout-all">"Log out everywhere"</button>
            </form>
        </section>
    }
}

#[component]
fn SessionItem(session: SessionView, revoke: impl Fn(String) + Copy + Send + Sync + 'static) -> impl IntoView {
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
                    <button type="submit" class="secondary" data-testid="revoke">"Sign out"</button>
                </form>
            })}
        </li>
    }
}
