//! `/account`: the e-mail address and the password. A new address counts once
//! it is confirmed through the link mailed to it; a password change signs out
//! every other session.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::AuthStore;
use crate::app::components::{page_messages, typed_field, Announce, StrengthMeter};
use crate::app::components::{error_message, notice_message};

#[component]
pub fn AccountPage() -> impl IntoView {
    let store = AuthStore::from_context();
    let current = typed_field("current_password");
    let new = typed_field("new_password");
    let username = Signal::derive(move || store.username().unwrap_or_default());
    let (error, notice) = page_messages();
    // A form posted without JavaScript comes back with one code: the e-mail
    // section announces its own, the password section the rest.
    let (email_error, email_notice) = (RwSignal::new(None), RwSignal::new(None));
    for (from, to) in [(error, email_error), (notice, email_notice)] {
        if from.with_untracked(|m| m.as_deref().is_some_and(is_about_email)) {
            to.set(from.get_untracked());
            from.set(None);
        }
    }
    let pending = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::Api;
            use crate::protocol::PasswordChange;
            use gloo_net::http::Method;

            if pending.get_untracked() {
                return;
            }
            pending.set(true);
            error.set(None);
            notice.set(None);
            let change = PasswordChange {
                current_password: current.get_untracked(),
                new_password: new.get_untracked(),
            };
            leptos::task::spawn_local(async move {
                match Api::new(store).send(Method::POST, "/auth/password", Some(&change)).await {
                    Ok(()) => {
                        current.set(String::new());
                        new.set(String::new());
                        notice.set(notice_message("password_changed").map(str::to_string));
                    }
                    Err(err) => {
                        let reasons = err.reasons().join(" ");
                        error.set(Some(format!("{} {reasons}", error_message(err.code())).trim_end().to_string()));
                    }
                }
                pending.set(false);
            });
        }
    };

    view! {
        <Title text="Account · Gatehouse"/>
        <EmailSection error=email_error notice=email_notice/>
        <section class="card">
            <h1>"Change your password"</h1>
            <p class="hint">"Every other session is signed out when the password changes; this one stays."</p>
            <form method="post" action="/account/password" on:submit=submit data-testid="password-form">
                <label for="current_password">"Current password"</label>
                <input id="current_password" name="current_password" type="password" autocomplete="current-password"
                    required bind:value=current/>
                <label for="new_password">"New password"</label>
                <input id="new_password" name="new_password" type="password" autocomplete="new-password" required
                    bind:value=new/>
                <StrengthMeter password=new username=username/>
                <Announce message=notice kind="notice"/>
                <Announce message=error/>
                <button type="submit" disabled=move || pending.get() data-testid="submit">"Change password"</button>
            </form>
        </section>
    }
}

/// Whether an announced sentence belongs to the e-mail section.
fn is_about_email(message: &str) -> bool {
    ["invalid_email", "email_taken"].iter().any(|code| error_message(code) == message)
        || notice_message("verification_mailed") == Some(message)
}

/// The address: what the session's token says it is, and a form to add or
/// change it.
#[component]
fn EmailSection(error: RwSignal<Option<String>>, notice: RwSignal<Option<String>>) -> impl IntoView {
    let store = AuthStore::from_context();
    let email = typed_field("email");
    let pending = RwSignal::new(false);
    let status = move || match store.claims().and_then(|c| c.email.map(|e| (e, c.email_verified))) {
        Some((address, true)) => format!("{address} (confirmed)"),
        Some((address, false)) => format!("{address}: waiting for you to open the link mailed to it"),
        None => "No address yet. Add one so that you can reset a forgotten password.".to_string(),
    };
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::Api;
            use crate::protocol::EmailAddressBody;
            use gloo_net::http::Method;

            if pending.get_untracked() {
                return;
            }
            pending.set(true);
            error.set(None);
            notice.set(None);
            let body = EmailAddressBody { email: email.get_untracked() };
            leptos::task::spawn_local(async move {
                match Api::new(store).send(Method::POST, "/auth/email", Some(&body)).await {
                    Ok(()) => {
                        email.set(String::new());
                        notice.set(notice_message("verification_mailed").map(str::to_string));
                    }
                    Err(err) => error.set(Some(error_message(err.code()).to_string())),
                }
                pending.set(false);
            });
        }
    };
    view! {
        <section class="card" data-testid="email-section">
            <h1>"E-mail address"</h1>
            <p data-testid="email-status">{status}</p>
            <form method="post" action="/account/email" on:submit=submit data-testid="email-form">
                <label for="email">"New address"</label>
                <input id="email" name="email" type="email" autocomplete="email" required bind:value=email/>
                <Announce message=notice kind="notice"/>
                <Announce message=error/>
                <button type="submit" disabled=move || pending.get() data-testid="email-submit">"Mail me a confirmation link"</button>
            </form>
        </section>
    }
}
