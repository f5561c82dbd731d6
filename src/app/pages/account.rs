//! `/account`: the e-mail address, passkeys and the password. A new address
//! counts once it is confirmed through the link mailed to it; a password
//! change signs out every other session. An account made with a passkey sets
//! its first password here, without a current one.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::AuthStore;
use crate::app::components::{page_messages, typed_field, Announce, StrengthMeter};
use crate::app::components::{error_message, notice_message};
use crate::app::routes::TWO_FACTOR;

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
        <PasskeysSection/>
        <TwoStepSection/>
        <section class="card">
            <h1>"Change your password"</h1>
            <p class="hint">"Every other session is signed out when the password changes; this one stays."</p>
            <form method="post" action="/account/password" on:submit=submit data-testid="password-form">
                <label for="current_password">"Current password " <span class="hint">"(none if you signed up with a passkey: this sets your first)"</span></label>
                <input id="current_password" name="current_password" type="password" autocomplete="current-password"
                    bind:value=current/>
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

/// The account's passkeys: add one through the browser's dialog, rename,
/// remove (never the last way to sign in). Passkeys need JavaScript: without
/// it the section says so.
#[component]
fn PasskeysSection() -> impl IntoView {
    use crate::protocol::PasskeyView;

    let store = AuthStore::from_context();
    let listed = RwSignal::new(None::<Vec<PasskeyView>>);
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let new_name = RwSignal::new(String::new());
    let pending = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            match crate::app::client::Api::new(store).get::<Vec<PasskeyView>>("/auth/passkeys").await {
                Ok(passkeys) => listed.set(Some(passkeys)),
                Err(err) => error.set(Some(error_message(err.code()).to_string())),
            }
        });
    });
    let add = move |_| {
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::passkeys::{add, PasskeyError};
            if pending.get_untracked() {
                return;
            }
            pending.set(true);
            error.set(None);
            notice.set(None);
            let name = Some(new_name.get_untracked()).filter(|n| !n.trim().is_empty());
            leptos::task::spawn_local(async move {
                match add(store, name).await {
                    Ok(added) => {
                        notice.set(Some(format!("Passkey \"{}\" added.", added.name)));
                        new_name.set(String::new());
                        listed.update(|list| list.get_or_insert_with(Vec::new).push(added));
                    }
                    Err(PasskeyError::Cancelled) => {}
                    Err(PasskeyError::Unsupported) => error.set(Some("This browser has no passkeys.".to_string())),
                    Err(PasskeyError::Refused(err)) => error.set(Some(passkey_error(err.code()))),
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = store;
    };
    let rows = move || {
        listed.get().map(|passkeys| {
            passkeys
                .into_iter()
                .map(|passkey| view! { <PasskeyRow passkey=passkey listed=listed error=error notice=notice/> })
                .collect_view()
        })
    };
    view! {
        <section class="card" data-testid="passkeys-section">
            <h1>"Passkeys"</h1>
            <p class="hint">"Sign in with your fingerprint, face or security key instead of a password."</p>
            <noscript><p>"Passkeys need JavaScript in this browser."</p></noscript>
            <ul class="passkeys" data-testid="passkeys">{rows}</ul>
            <Show when=move || listed.with(Option::is_some)>
                <label for="passkey_name">"Name for a new passkey (optional)"</label>
                <input id="passkey_name" type="text" maxlength="64" bind:value=new_name/>
                <button type="button" on:click=add disabled=move || pending.get() data-testid="passkey-add">"Add a passkey"</button>
            </Show>
            <Announce message=notice kind="notice"/>
            <Announce message=error/>
        </section>
    }
}

#[cfg(feature = "hydrate")]
fn passkey_error(code: &str) -> String {
    match code {
        "last_sign_in_method" => "This is your last way to sign in: add another passkey or keep a password first.".to_string(),
        "passkey_taken" => "That passkey is added already.".to_string(),
        "invalid_passkey_name" => "A passkey's name has 1 to 64 characters.".to_string(),
        "invalid_passkey" => "The passkey could not be added. Try again.".to_string(),
        other => error_message(other).to_string(),
    }
}

#[component]
fn PasskeyRow(
    passkey: crate::protocol::PasskeyView,
    listed: RwSignal<Option<Vec<crate::protocol::PasskeyView>>>,
    error: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
) -> impl IntoView {
    let store = AuthStore::from_context();
    // Only the browser acts on a row.
    #[cfg(not(feature = "hydrate"))]
    let _ = (store, listed, error, notice);
    let name = RwSignal::new(passkey.name.clone());
    let id = passkey.id.clone();
    let used = passkey
        .last_used_at
        .map_or_else(|| "never used".to_string(), |at| format!("last used {}", crate::app::components::time_text(at)));
    let rename = {
        let id = id.clone();
        move |_| {
            #[cfg(feature = "hydrate")]
            {
                use crate::protocol::PasskeyRename;
                let (id, body) = (id.clone(), PasskeyRename { name: name.get_untracked() });
                leptos::task::spawn_local(async move {
                    let path = format!("/auth/passkeys/{id}");
                    match crate::app::client::Api::new(store).send(gloo_net::http::Method::PATCH, &path, Some(&body)).await {
                        Ok(()) => notice.set(Some("Passkey renamed.".to_string())),
                        Err(err) => error.set(Some(passkey_error(err.code()))),
                    }
                });
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = &id;
        }
    };
    let remove = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                let path = format!("/auth/passkeys/{id}");
                match crate::app::client::Api::new(store).send::<()>(gloo_net::http::Method::DELETE, &path, None).await {
                    Ok(()) => {
                        listed.update(|list| {
                            if let Some(list) = list {
                                list.retain(|p| p.id != id);
                            }
                        });
                        notice.set(Some("Passkey removed.".to_string()));
                    }
                    Err(err) => error.set(Some(passkey_error(err.code()))),
                }
            });
        }
    };
    view! {
        <li data-testid="passkey">
            <input type="text" aria-label="Passkey name" maxlength="64" bind:value=name data-testid="passkey-name"/>
            <span class="hint">{format!("added {}, {used}", crate::app::components::time_text(passkey.created_at))}</span>
            <button type="button" class="secondary" on:click=rename data-testid="passkey-rename">"Rename"</button>
            <button type="button" class="secondary" on:click=remove data-testid="passkey-remove">"Remove"</button>
        </li>
    }
}

/// Whether sign-in asks for a code, and how many recovery codes are left
/// (loaded by the page guard, or on client-side navigation by the API);
/// the changes themselves are on `/two-factor`.
#[component]
fn TwoStepSection() -> impl IntoView {
    use crate::app::data::preloaded_data;
    use crate::protocol::SecondFactorStatus;

    let status = preloaded_data::<SecondFactorStatus>(SecondFactorStatus::PATH);
    let summary = move || match status.get() {
        Some(Ok(SecondFactorStatus { totp: true, recovery_codes_left, .. })) => {
            format!("On: signing in asks for a code from your authenticator app. Recovery codes left: {recovery_codes_left}.")
        }
        Some(Ok(_)) => "Off: signing in needs only your password.".to_string(),
        Some(Err(err)) => err.to_string(),
        None => String::new(),
    };
    view! {
        <section class="card">
            <h1>"Two-step sign-in"</h1>
            <p data-testid="two-step-summary">{summary}</p>
            <p><a href=TWO_FACTOR data-testid="two-factor-link">"Set it up or change it"</a></p>
        </section>
    }
}
