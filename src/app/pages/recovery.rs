//! Recovery by mail: `/forgot-password` asks for a reset link,
//! `/reset-password` sets a new password with it, `/verify-email` confirms an
//! address. Opening a mailed link only shows the page (a mail scanner that
//! fetches it consumes nothing); the token is used by the form's POST. Each
//! page also takes the token typed or pasted. Without JavaScript the forms
//! post to the same paths (`server::forms`).

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::app::auth_store::AuthStore;
use crate::app::components::{page_messages, typed_field, Announce, StrengthMeter};
use crate::app::routes::{FORGOT_PASSWORD, LOGIN, RESET_PASSWORD, VERIFY_EMAIL};

/// The token of the link that opened the page, unless one was typed first,
/// and the field's value as the server renders it (`bind:value` renders
/// none), so the form carries the token without JavaScript too.
fn token_field() -> (RwSignal<String>, String) {
    let typed = typed_field("token");
    if typed.get_untracked().is_empty() {
        if let Some(token) = use_query_map().with_untracked(|q| q.get("token")) {
            typed.set(token);
        }
    }
    (typed, typed.get_untracked())
}

/// Sends `body` to `path` without a session, then calls `done`, or shows
/// the refusal in `error`.
#[cfg(feature = "hydrate")]
fn post<B: serde::Serialize + 'static>(
    store: crate::app::auth_store::AuthStore,
    path: &'static str,
    body: B,
    pending: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    done: impl FnOnce() + 'static,
) {
    use crate::app::client::Api;
    use crate::app::components::error_message;

    pending.set(true);
    error.set(None);
    leptos::task::spawn_local(async move {
        match Api::new(store).send_public(path, &body).await {
            Ok(()) => done(),
            Err(err) => {
                let reasons = err.reasons().join(" ");
                error.set(Some(format!("{} {reasons}", error_message(err.code())).trim_end().to_string()));
            }
        }
        pending.set(false);
    });
}

#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let store = AuthStore::from_context();
    #[cfg(not(feature = "hydrate"))]
    let _ = store;
    let email = typed_field("email");
    let (error, notice) = page_messages();
    let pending = RwSignal::new(false);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            if pending.get_untracked() {
                return;
            }
            notice.set(None);
            let body = crate::protocol::EmailAddressBody { email: email.get_untracked() };
            post(store, "/auth/password-reset", body, pending, error, move || {
                notice.set(crate::app::components::notice_message("reset_mailed").map(str::to_string));
            });
        }
    };
    view! {
        <Title text="Forgot your password? · Gatehouse"/>
        <main class="narrow">
            <section class="card">
                <h1>"Forgot your password?"</h1>
                <p class="hint">"Enter the verified e-mail address of your account. We mail you a link to choose a new password."</p>
                <form method="post" action=FORGOT_PASSWORD on:submit=submit data-testid="forgot-form">
                    <label for="email">"E-mail address"</label>
                    <input id="email" name="email" type="email" autocomplete="email" required bind:value=email/>
                    <Announce message=notice kind="notice"/>
                    <Announce message=error/>
                    <button type="submit" disabled=move || pending.get() data-testid="submit">"Mail me a link"</button>
                </form>
                <p><a href=LOGIN>"Back to log in"</a></p>
            </section>
        </main>
    }
}

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let store = AuthStore::from_context();
    #[cfg(not(feature = "hydrate"))]
    let _ = store;
    let (token, rendered_token) = token_field();
    let new = typed_field("new_password");
    let (error, _) = page_messages();
    let pending = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    let navigate = leptos_router::hooks::use_navigate();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            if pending.get_untracked() {
                return;
            }
            let body = crate::protocol::PasswordResetConfirm {
                token: token.get_untracked().trim().to_string(),
                new_password: new.get_untracked(),
            };
            let navigate = navigate.clone();
            post(store, "/auth/password-reset/confirm", body, pending, error, move || {
                navigate(&format!("{LOGIN}?notice=password_reset"), Default::default());
            });
        }
    };
    view! {
        <Title text="Choose a new password · Gatehouse"/>
        <main class="narrow">
            <section class="card">
                <h1>"Choose a new password"</h1>
                <p class="hint">"Every session of the account is signed out; then you log in with the new password."</p>
                <form method="post" action=RESET_PASSWORD on:submit=submit data-testid="reset-form">
                    <label for="token">"Code from the mail"</label>
                    <input id="token" name="token" type="text" autocomplete="one-time-code" required
                        autocapitalize="none" spellcheck="false" value=rendered_token bind:value=token/>
                    <label for="new_password">"New password"</label>
                    <input id="new_password" name="new_password" type="password" autocomplete="new-password" required
                        bind:value=new/>
                    <StrengthMeter password=new username=Signal::derive(String::new)/>
                    <Announce message=error/>
                    <button type="submit" disabled=move || pending.get() data-testid="submit">"Set the new password"</button>
                </form>
                <p><a href=FORGOT_PASSWORD>"Ask for a new link"</a></p>
            </section>
        </main>
    }
}

#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let store = AuthStore::from_context();
    #[cfg(not(feature = "hydrate"))]
    let _ = store;
    let (token, rendered_token) = token_field();
    let (error, notice) = page_messages();
    let pending = RwSignal::new(false);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            if pending.get_untracked() {
                return;
            }
            notice.set(None);
            let body = crate::protocol::MailTokenBody { token: token.get_untracked().trim().to_string() };
            post(store, "/auth/email/verify", body, pending, error, move || {
                notice.set(crate::app::components::notice_message("email_verified").map(str::to_string));
            });
        }
    };
    view! {
        <Title text="Confirm your address · Gatehouse"/>
        <main class="narrow">
            <section class="card">
                <h1>"Confirm your e-mail address"</h1>
                <form method="post" action=VERIFY_EMAIL on:submit=submit data-testid="verify-form">
                    <label for="token">"Code from the mail"</label>
                    <input id="token" name="token" type="text" autocomplete="one-time-code" required
                        autocapitalize="none" spellcheck="false" value=rendered_token bind:value=token/>
                    <Announce message=notice kind="notice"/>
                    <Announce message=error/>
                    <button type="submit" disabled=move || pending.get() data-testid="submit">"Confirm my address"</button>
                </form>
                <p><a href=LOGIN>"Log in"</a></p>
            </section>
        </main>
    }
}
