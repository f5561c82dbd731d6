//! `/`: who you are, your session, and how long the access token has left.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::{now_seconds, AuthStore};
use crate::app::components::{device_text, duration_text, time_text, Announce};
use crate::app::live_feed::{LiveFeed, LiveStatus};
use crate::protocol::live::{PasskeyChange, ServerMessage};

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
        <LiveEvents/>
    }
}

/// What the live socket reports: its state, and the user's session events as
/// they happen.
#[component]
fn LiveEvents() -> impl IntoView {
    let feed = LiveFeed::from_context();
    let status = move || match feed.status.get() {
        LiveStatus::Off => "Not connected",
        LiveStatus::Connecting => "Connecting…",
        LiveStatus::Open => "Live",
        LiveStatus::Down => "Disconnected",
    };
    let state = move || feed.status.get().name();
    let newest = move || feed.events.with(|events| events.first().map(event_text));
    view! {
        <section class="card">
            <h2>"Live events"</h2>
            <p class="hint">"Logins elsewhere, revoked sessions, password changes and passkey changes appear here as they happen."</p>
            <p class="live-status" data-testid="live-status" data-state=state role="status">
                {status}
                {move || (feed.status.get() == LiveStatus::Down).then(|| view! {
                    " "
                    <button type="button" class="secondary" data-testid="live-reconnect"
                        on:click=move |_| feed.retry.update(|n| *n += 1)>"Reconnect"</button>
                })}
            </p>
            <ul class="events" data-testid="live-events">
                {move || feed.events.with(|events| {
                    events.iter().map(|event| view! {
                        <li data-type=event_type(event)>{event_text(event)}</li>
                    }).collect_view()
                })}
            </ul>
            // The list is redrawn whole; screen readers hear only the newest event.
            <p class="visually-hidden" role="status" aria-live="polite">{newest}</p>
        </section>
    }
}

fn event_type(event: &ServerMessage) -> &'static str {
    match event {
        ServerMessage::Ready { .. } => "ready",
        ServerMessage::SessionCreated { .. } => "session_created",
        ServerMessage::SessionRevoked { .. } => "session_revoked",
        ServerMessage::PasswordChanged { .. } => "password_changed",
        ServerMessage::AccountChanged { .. } => "account_changed",
        ServerMessage::Passkey { change, .. } => match change {
            PasskeyChange::Added => "passkey_added",
            PasskeyChange::Used => "passkey_used",
            PasskeyChange::Renamed => "passkey_renamed",
            PasskeyChange::Removed => "passkey_removed",
        },
    }
}

fn event_text(event: &ServerMessage) -> String {
    match event {
        ServerMessage::Ready { .. } => String::new(),
        ServerMessage::SessionCreated { user_agent, ip, at, .. } => format!(
            "{}: new login from {} at {}",
            time_text(*at),
            device_text(user_agent.as_deref()),
            ip.as_deref().unwrap_or("an unknown address"),
        ),
        ServerMessage::SessionRevoked { reason, at, .. } => {
            let why = match reason.as_str() {
                "logout" => "logged out",
                "revoked_by_user" => "signed out from another device",
                "password_changed" => "signed out by a password change",
                "refresh_reuse" => "ended: its refresh token was used twice",
                "logout_all" => "signed out everywhere",
                _ => "ended",
            };
            format!("{}: a session {why}", time_text(*at))
        }
        ServerMessage::PasswordChanged { at } => format!("{}: your password was changed", time_text(*at)),
        ServerMessage::AccountChanged { change, at } => {
            let what = match change.as_str() {
                "totp_enabled" => "two-step sign-in was turned on",
                "totp_disabled" => "two-step sign-in was turned off",
                "recovery_codes_renewed" => "new recovery codes were made; the old ones no longer work",
                "recovery_code_used" => "a recovery code was used to sign in",
                _ => "your account's sign-in settings changed",
            };
            format!("{}: {what}", time_text(*at))
        }
        ServerMessage::Passkey { name, change, at, .. } => {
            let what = match change {
                PasskeyChange::Added => "added",
                PasskeyChange::Used => "used to sign in",
                PasskeyChange::Renamed => "renamed",
                PasskeyChange::Removed => "removed",
            };
            format!("{}: passkey \"{name}\" {what}", time_text(*at))
        }
    }
}
