//! `/login` and `/register`: one form, posted as a plain form without
//! JavaScript (`server::forms`) and sent to the JSON API with it. An account
//! with a second factor then asks for a code: in place with JavaScript (the
//! `mfa_token` stays in memory), on `/login-code` without (it waits in a
//! cookie).

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
use crate::app::routes::{safe_next, with_next, FORGOT_PASSWORD, LOGIN, LOGIN_CODE, REGISTER};

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
    // Set when the password was right and the account asks for a code.
    let second_step = RwSignal::new(None::<String>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::{logged_in, Api, ClientError};
            use crate::protocol::Registration;

            /// A login's answer: tokens, or the second step's token.
            #[derive(serde::Deserialize)]
            struct LoginAnswer {
                access_token: Option<String>,
                mfa_token: Option<String>,
                #[serde(default)]
                second_factor_required: bool,
            }

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
                match Api::new(store).post_public::<_, LoginAnswer>(path, &credentials).await {
                    // The guard's effect goes on to `next` once the store holds the token.
                    // The policy wants a second factor first: its setup, whatever `next` said.
                    Ok(LoginAnswer {
                        access_token: Some(token),
                        second_factor_required: true,
                        ..
                    }) => {
                        logged_in(store, &token, credentials.username);
                        let _ = window().location().assign(crate::app::routes::TWO_FACTOR);
                    }
                    Ok(LoginAnswer {
                        access_token: Some(token),
                        ..
                    }) => logged_in(store, &token, credentials.username),
                    Ok(LoginAnswer {
                        mfa_token: Some(mfa_token),
                        ..
                    }) => {
                        password.set(String::new());
                        second_step.set(Some(mfa_token));
                    }
                    Ok(_) => error.set(Some(error_message("unavailable").to_string())),
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

    let username_now = Signal::derive(move || username.get());
    view! {
        <Title text=title/>
        <main class="narrow">
        <section class="card" hidden=move || second_step.with(Option::is_some)>
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
            {move || second_step.get().map(|token| view! {
                <CodeStep mfa_token=Some(token) next=next username=username_now error=error/>
            })}
        </main>
    }
}

/// `/login-code`: the second step of a sign-in begun without JavaScript.
#[component]
pub fn LoginCodePage() -> impl IntoView {
    let query = use_query_map();
    let next = Memo::new(move |_| safe_next(query.with(|q| q.get("next")).as_deref()));
    leave_when_logged_in(next);
    let (error, _) = page_messages();
    view! {
        <Title text="Enter your code · Gatehouse"/>
        <main class="narrow">
            <CodeStep mfa_token=None next=next username=Signal::derive(String::new) error=error/>
        </main>
    }
}

/// Asks for a code from the authenticator app or a recovery code. With the
/// `mfa_token` in memory it is sent to the API; without one the form posts
/// to `/login-code`, whose cookie holds it.
#[component]
fn CodeStep(
    mfa_token: Option<String>,
    next: Memo<String>,
    username: Signal<String>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let store = AuthStore::from_context();
    let code = typed_field("code");
    let pending = RwSignal::new(false);
    let in_memory = mfa_token.is_some();
    let submit = move |ev: SubmitEvent| {
        if !in_memory {
            return;
        }
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use crate::app::client::{logged_in, Api};
            use crate::protocol::{MfaLogin, TokenResponse};

            if pending.get_untracked() {
                return;
            }
            pending.set(true);
            error.set(None);
            let step = MfaLogin {
                mfa_token: mfa_token.clone().unwrap_or_default(),
                code: code.get_untracked(),
            };
            leptos::task::spawn_local(async move {
                match Api::new(store).post_public::<_, TokenResponse>("/auth/login/mfa", &step).await {
                    Ok(body) => logged_in(store, &body.access_token, username.get_untracked()),
                    Err(err) => {
                        code.set(String::new());
                        error.set(Some(error_message(err.code()).to_string()));
                    }
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (store, &mfa_token, username);
    };
    view! {
        <section class="card">
            <h1>"Enter your code"</h1>
            <p class="hint">"Open your authenticator app and type the six-digit code it shows for Gatehouse. \
                Lost the app? Type one of your recovery codes instead."</p>
            <form method="post" action=LOGIN_CODE on:submit=submit data-testid="code-form">
                <input type="hidden" name="next" value=move || next.get()/>
                <label for="code">"Code"</label>
                <input id="code" name="code" type="text" autocomplete="one-time-code" required autofocus
                    autocapitalize="none" spellcheck="false" bind:value=code/>
                <Announce message=error/>
                <button type="submit" disabled=move || pending.get() data-testid="code-submit">"Continue"</button>
            </form>
            <p><a href=move || with_next(LOGIN, &next.get()) rel="external">"Start again"</a></p>
        </section>
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
            available.set(crate::app::client::passkeys::supported());
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
        available.set(crate::app::client::passkeys::supported());
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
