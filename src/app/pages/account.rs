//! `/account`: change the password. Every other session is signed out.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::AuthStore;
use crate::app::components::{page_messages, typed_field, Announce, StrengthMeter};
#[cfg(feature = "hydrate")]
use crate::app::components::{error_message, notice_message};

#[component]
pub fn AccountPage() -> impl IntoView {
    let store = AuthStore::from_context();
    let current = typed_field("current_password");
    let new = typed_field("new_password");
    let username = Signal::derive(move || store.username().unwrap_or_default());
    let (error, notice) = page_messages();
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
