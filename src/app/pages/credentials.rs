//! `/login` and `/register`: one form, posted as a plain form without
//! JavaScript (`server::forms`) and sent to the JSON API with it.

use leptos::either::Either;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::app::auth_store::AuthStore;
use crate::app::components::{page_messages, typed_field, Announce, StrengthMeter};
#[cfg(feature = "hydrate")]
use crate::app::components::{error_message};
use crate::app::protected::leave_when_logged_in;
use crate::app::routes::{safe_next, with_next, FORGOT_PASSWORD, LOGIN, REGISTER};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Login,
    Register,
}

#[component]
pub fn LoginPage() -> impl IntoView {
    view! { <CredentialsPage purpose=Purpose::Login/> }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    view! { <CredentialsPage purpose=Purpose::Register/> }
}

#[component]
fn CredentialsPage(purpose: Purpose) -> impl IntoView {
    let query = use_query_map();
    let next = Memo::new(move |_| safe_next(query.with(|q| q.get("next")).as_deref()));
    leave_when_logged_in(next);

    let store = AuthStore::from_context();
    let username = typed_field("username");
    let password = typed_field("password");
    let email = typed_field("email");
    let (error, notice) = page_messages();
    let pending = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::{logged_in, Api, ClientError};
            use crate::protocol::{Registration, TokenResponse};

            pending.set(true);
            error.set(None);
            notice.set(None);
            // Login takes the same body without an address.
            let typed_email = email.get_untracked();
            let credentials = Registration {
                username: username.get_untracked(),
                password: password.get_untracked(),
                email: (purpose == Purpose::Register && !typed_email.trim().is_empty()).then_some(typed_email),
            };
            let path = match purpose {
                Purpose::Login => "/auth/login",
                Purpose::Register => "/auth/register",
            };
            leptos::task::spawn_local(async move {
                match Api::new(store).post_public::<_, TokenResponse>(path, &credentials).await {
                    // The guard's effect goes on to `next` once the store holds the token.
                    Ok(body) => logged_in(store, &body.access_token, credentials.username),
                    Err(err) => error.set(Some(describe(&err))),
                }
                pending.set(false);
            });

            fn describe(err: &ClientError) -> String {
                let base = error_message(err.code());
                match (err.code(), err.retry_after()) {
                    ("rate_limited", Some(seconds)) => format!("Too many attempts. Try again in {seconds} s."),
                    ("weak_password", _) => format!("{base} {}", err.reasons().join(" ")),
                    _ => base.to_string(),
                }
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = store;
    };

    // On the login page the username field offers passkeys in its autofill.
    let username_autocomplete = match purpose {
        Purpose::Login => "username webauthn",
        Purpose::Register => "username",
    };
    let (title, heading, action, button, autocomplete) = match purpose {
        Purpose::Login => ("Log in · Gatehouse", "Log in", LOGIN, "Log in", "current-password"),
        Purpose::Register => ("Create an account · Gatehouse", "Create an account", REGISTER, "Create account", "new-password"),
    };
    let passkeys = match purpose {
        Purpose::Login => Either::Left(passkey_sign_in(store, error)),
        Purpose::Register => Either::Right(passkey_sign_up(store, username, email, error)),
    };
    let other = move || {
        let target = next.get();
        let keep = |page: &str| with_next(page, &target);
        match purpose {
            Purpose::Login => Either::Left(view! {
                <p><a href=FORGOT_PASSWORD data-testid="forgot-link">"Forgot your password?"</a></p>
                <p>"New here? " <a href=keep(REGISTER)>"Create an account"</a></p>
            }),
            Purpose::Register => Either::Right(view! { <p>"Have an account? " <a href=keep(LOGIN)>"Log in"</a></p> }),
        }
    };

    view! {
        <Title text=title/>
        <main class="narrow">
            <section class="card">
                <h1>{heading}</h1>
                <form method="post" action=action on:submit=submit data-testid="credentials-form">
                    <input type="hidden" name="next" value=move || next.get()/>
                    <label for="username">"Username"</label>
                    <input id="username" name="username" type="text" autocomplete=username_autocomplete required
                        autocapitalize="none" spellcheck="false" bind:value=username/>
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" autocomplete=autocomplete required
                        bind:value=password/>
                    {(purpose == Purpose::Register).then(|| view! {
                        <StrengthMeter password=password username=username/>
                        <label for="email">"E-mail address " <span class="hint">"(optional, for a forgotten password)"</span></label>
                        <input id="email" name="email" type="email" autocomplete="email" bind:value=email/>
                    })}
                    <Announce message=notice kind="notice"/>
                    <Announce message=error/>
                    <button type="submit" disabled=move || pending.get() data-testid="submit">{button}</button>
                </form>
                {passkeys}
                {other}
            </section>
        </main>
    }
}

/// Signing in with a passkey, on the login page: the browser's autofill offers
/// the passkeys it has for this site in the username field (conditional
/// mediation), and a button opens its dialog. Both need JavaScript and a
/// browser with passkeys, so the button appears only once both are known.
fn passkey_sign_in(store: AuthStore, error: RwSignal<Option<String>>) -> impl IntoView {
    let available = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    let autofill = StoredValue::new_local(None::<web_sys::AbortController>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use crate::app::client::passkeys::{autofill_available, sign_in, PasskeyError};
        leptos::task::spawn_local(async move {
            let has_autofill = autofill_available().await;
            available.set(web_sys::window().is_some_and(|w| js_sys::Reflect::has(&w, &"PublicKeyCredential".into()).unwrap_or(false)));
            if !has_autofill {
                return;
            }
            let Ok(controller) = web_sys::AbortController::new() else {
                return;
            };
            let signal = controller.signal();
            autofill.set_value(Some(controller));
            if let Err(PasskeyError::Refused(_)) = sign_in(store, true, Some(signal)).await {
                error.set(Some("That passkey was not accepted. Try another way to log in.".to_string()));
            }
        });
    });
    let pending = RwSignal::new(false);
    let click = move |_| {
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::passkeys::{sign_in, PasskeyError};
            if pending.get_untracked() {
                return;
            }
            // The autofill request is set aside: one request at a time.
            autofill.update_value(|controller| {
                if let Some(controller) = controller.take() {
                    controller.abort();
                }
            });
            pending.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                match sign_in(store, false, None).await {
                    Ok(()) | Err(PasskeyError::Cancelled) => {}
                    Err(PasskeyError::Unsupported) => error.set(Some("This browser has no passkeys.".to_string())),
                    Err(PasskeyError::Refused(_)) => {
                        error.set(Some("That passkey was not accepted. Try another way to log in.".to_string()))
                    }
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (store, error);
    };
    view! {
        <Show when=move || available.get()>
            <p class="or">"or"</p>
            <button type="button" class="secondary" on:click=click disabled=move || pending.get() data-testid="passkey-login">
                "Sign in with a passkey"
            </button>
        </Show>
    }
}

/// Signing up with a passkey instead of a password, on the registration page:
/// the name and address typed in the form, and the browser's dialog makes the
/// passkey. Shown only with JavaScript in a browser with passkeys.
fn passkey_sign_up(
    store: AuthStore,
    username: RwSignal<String>,
    email: RwSignal<String>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let available = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        available.set(web_sys::window().is_some_and(|w| {
            js_sys::Reflect::has(&w, &"PublicKeyCredential".into()).unwrap_or(false)
        }));
    });
    let pending = RwSignal::new(false);
    let click = move |_| {
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::passkeys::{sign_up, PasskeyError};
            if pending.get_untracked() {
                return;
            }
            let name = username.get_untracked();
            if name.trim().is_empty() {
                error.set(Some(
                    "Choose a username first, then sign up with a passkey.".to_string(),
                ));
                return;
            }
            let typed_email = email.get_untracked();
            let address = (!typed_email.trim().is_empty()).then_some(typed_email);
            pending.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                match sign_up(store, name, address).await {
                    // The guard's effect goes on to `next` once the store holds the token.
                    Ok(()) | Err(PasskeyError::Cancelled) => {}
                    Err(PasskeyError::Unsupported) => {
                        error.set(Some("This browser has no passkeys.".to_string()))
                    }
                    Err(PasskeyError::Refused(err)) => {
                        error.set(Some(match (err.code(), err.retry_after()) {
                            ("rate_limited", Some(seconds)) => {
                                format!("Too many attempts. Try again in {seconds} s.")
                            }
                            ("invalid_passkey", _) => {
                                "The passkey could not be made. Try again.".to_string()
                            }
                            (code, _) => crate::app::components::error_message(code).to_string(),
                        }))
                    }
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (store, username, email, error);
    };
    view! {
        <Show when=move || available.get()>
            <p class="or">"or, without a password"</p>
            <button type="button" class="secondary" on:click=click disabled=move || pending.get() data-testid="passkey-sign-up">
                "Sign up with a passkey"
            </button>
        </Show>
    }
}
