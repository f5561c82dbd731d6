//! `/`: who you are, your session, and how long the access token has left.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::{now_seconds, AuthStore};
use crate::app::components::{duration_text, Announce};

#[component]
pub fn DashboardPage() -> impl IntoView {
    let store = AuthStore::from_context();
    let now = RwSignal::new(now_seconds());
    #[cfg(feature = "hydrate")]
    {
        let tick = set_interval_with_handle(move || now.set(now_seconds()), std::time::Duration::from_secs(1)).ok();
        on_cleanup(move || {
            if let Some(tick) = tick {
                tick.clear();
            }
        });
    }
    let claims = Memo::new(move |_| store.claims());
    let role = move || claims.get().map(|c| c.role).unwrap_or_default();
    let session = move || claims.get().map(|c| c.sid).unwrap_or_default();
    let remaining = move || match claims.get() {
        Some(c) if c.exp > now.get() => duration_text(c.exp - now.get()),
        Some(_) => "expired: the next request refreshes it".to_string(),
        None => String::new(),
    };

    let answer = RwSignal::new(None::<String>);
    let ask_server = move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::app::components::error_message;
            use crate::protocol::Me;
            let text = match crate::app::client::Api::new(store).get::<Me>("/api/me").await {
                Ok(me) => format!("The server knows you as {} ({}).", me.username, me.role),
                Err(err) => error_message(err.code()).to_string(),
            };
            answer.set(Some(text));
        });
    };

    view! {
        <Title text="Dashboard · Gatehouse"/>
        <section class="card">
            <h1>"Hello, " <span data-testid="dashboard-username">{move || store.username().unwrap_or_default()}</span></h1>
            <dl class="facts">
                <dt>"Role"</dt>
                <dd data-testid="dashboard-role">{role}</dd>
                <dt>"Session"</dt>
                <dd><code data-testid="dashboard-session">{session}</code></dd>
                <dt>"Access token expires in"</dt>
                <dd data-testid="token-countdown">{remaining}</dd>
            </dl>
            <button type="button" on:click=ask_server data-testid="ask-server">"Ask the server who I am"</button>
            <Announce message=answer kind="status"/>
        </section>
        <section class="card">
            <h2>"Live events"</h2>
            <p class="hint">"Logins elsewhere, revoked sessions and password changes appear here as they happen."</p>
            <ul class="events" data-testid="live-events"></ul>
        </section>
    }
}
