//! `/two-factor`: the authenticator app and the recovery codes. Setting up
//! shows a QR code drawn on the server (and the key as text, for apps that
//! cannot scan), then asks for a code: only a confirmed setup is asked for at
//! sign-in. Confirming, and asking for new codes, shows the recovery codes
//! once. Where the second-factor policy applies, a user who has none is sent
//! here before anything else.
//!
//! Every button is a form: without JavaScript it posts to `/two-factor/*`
//! (`server::forms`), which answers with the page again or, for recovery
//! codes, a page showing them; with JavaScript the same forms call the API.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::auth_store::AuthStore;
use crate::app::components::{page_messages, Announce};
use crate::app::data::preloaded_data;
use crate::app::routes::{ACCOUNT, TWO_FACTOR};
use crate::protocol::SecondFactorStatus;
#[cfg(feature = "hydrate")]
use crate::protocol::TotpSetup;

/// The caller's second factor, loaded by the page guard before the page renders.
#[cfg(feature = "ssr")]
pub async fn preload(
    auth: &crate::auth::Auth,
    claims: &crate::protocol::AccessClaims,
    extensions: &mut http::Extensions,
) {
    crate::app::data::insert_preloaded(extensions, auth.second_factor_status(claims).await);
}

#[component]
pub fn TwoFactorPage() -> impl IntoView {
    let store = AuthStore::from_context();
    let status = preloaded_data::<SecondFactorStatus>(SecondFactorStatus::PATH);
    // Shown once, after a confirmation or a renewal.
    let codes = RwSignal::new(None::<Vec<String>>);
    let code = RwSignal::new(String::new());
    let (error, notice) = page_messages();
    let pending = RwSignal::new(false);

    #[cfg(feature = "hydrate")]
    let load = move || crate::app::data::fetch_into(store, status, SecondFactorStatus::PATH);

    /// Runs `call` instead of posting the form, unless another call is under
    /// way, and shows its refusal.
    #[cfg(feature = "hydrate")]
    fn run<F>(pending: RwSignal<bool>, error: RwSignal<Option<String>>, notice: RwSignal<Option<String>>, call: F)
    where
        F: std::future::Future<Output = Result<(), crate::app::client::ClientError>> + 'static,
    {
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        error.set(None);
        notice.set(None);
        leptos::task::spawn_local(async move {
            if let Err(err) = call.await {
                error.set(Some(crate::app::components::error_message(err.code()).to_string()));
            }
            pending.set(false);
        });
    }

    let begin = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        run(pending, error, notice, async move {
            let api = crate::app::client::Api::new(store);
            let setup = api.post::<_, TotpSetup>("/auth/mfa/totp", &()).await?;
            codes.set(None);
            status.update(|s| {
                if let Some(Ok(s)) = s {
                    s.setup = Some(setup);
                }
            });
            Ok(())
        });
    };
    let confirm = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        run(pending, error, notice, async move {
            use crate::protocol::{CodeBody, RecoveryCodes};
            let api = crate::app::client::Api::new(store);
            let body = CodeBody { code: code.get_untracked() };
            let confirmed = api.post::<_, RecoveryCodes>("/auth/mfa/totp/confirm", &body).await;
            code.set(String::new());
            codes.set(Some(confirmed?.recovery_codes));
            // This session proved the app: a new token says so (the policy reads it).
            let _ = crate::app::client::refresh(store, store.current()).await;
            load();
            Ok(())
        });
    };
    let renew = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        run(pending, error, notice, async move {
            use crate::protocol::RecoveryCodes;
            let api = crate::app::client::Api::new(store);
            codes.set(Some(api.post::<_, RecoveryCodes>("/auth/mfa/recovery-codes", &()).await?.recovery_codes));
            load();
            Ok(())
        });
    };
    let remove = move |ev: SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        run(pending, error, notice, async move {
            let api = crate::app::client::Api::new(store);
            api.send::<()>(gloo_net::http::Method::DELETE, "/auth/mfa/totp", None).await?;
            codes.set(None);
            notice.set(crate::app::components::notice_message("totp_removed").map(str::to_string));
            load();
            Ok(())
        });
    };
    #[cfg(not(feature = "hydrate"))]
    let _ = store;

    let state = move || match status.get() {
        Some(Ok(SecondFactorStatus { setup: Some(setup), .. })) => view! {
            <p>"Scan this QR code with your authenticator app, or type the key into it."</p>
            <div class="qr" inner_html=setup.qr_svg data-testid="totp-qr"></div>
            <p>"Key: " <code data-testid="totp-secret">{setup.secret}</code></p>
            <form method="post" action="/two-factor/confirm" on:submit=confirm data-testid="totp-confirm-form">
                <label for="totp-code">"The six-digit code the app shows now"</label>
                <input id="totp-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required
                    bind:value=code/>
                <button type="submit" disabled=move || pending.get() data-testid="totp-confirm">"Turn on"</button>
            </form>
        }
        .into_any(),
        Some(Ok(SecondFactorStatus { totp: true, recovery_codes_left, .. })) => view! {
            <p data-testid="totp-status">"On: signing in asks for a code from your authenticator app."</p>
            <p data-testid="recovery-left">{format!("Recovery codes left: {recovery_codes_left}")}</p>
            <form method="post" action="/two-factor/recovery-codes" on:submit=renew>
                <button type="submit" disabled=move || pending.get() data-testid="renew-codes">"New recovery codes"</button>
            </form>
            <form method="post" action="/two-factor/remove" on:submit=remove>
                <button type="submit" class="secondary" disabled=move || pending.get() data-testid="totp-remove">"Turn off"</button>
            </form>
        }
        .into_any(),
        Some(Ok(_)) => view! {
            <p data-testid="totp-status">"Off: signing in needs only your password."</p>
            <form method="post" action="/two-factor/start" on:submit=begin>
                <button type="submit" disabled=move || pending.get() data-testid="totp-begin">"Set up an authenticator app"</button>
            </form>
        }
        .into_any(),
        Some(Err(err)) => view! { <p class="error" role="alert">{err.to_string()}</p> }.into_any(),
        None => view! { <p aria-busy="true">"Loading…"</p> }.into_any(),
    };
    view! {
        <Title text="Two-step sign-in · Gatehouse"/>
        <section class="card">
            <h1>"Two-step sign-in"</h1>
            {state}
            <Announce message=notice kind="notice"/>
            <Announce message=error/>
        </section>
        {move || codes.get().map(|codes| view! { <RecoveryCodeList codes=codes/> })}
        <p><a href=ACCOUNT>"Back to your account"</a></p>
    }
}

/// Fresh recovery codes, shown once; also the page a form post without
/// JavaScript answers with (`server::form_pages`).
#[component]
pub fn RecoveryCodeList(codes: Vec<String>) -> impl IntoView {
    view! {
        <section class="card" data-testid="recovery-codes">
            <h2>"Your recovery codes"</h2>
            <p class="hint">"Keep them somewhere safe: each one signs you in once if you lose your phone. \
                They are shown only now; new ones replace them all."</p>
            <ul class="codes">{codes.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}</ul>
            <p><a href=TWO_FACTOR>"Done"</a></p>
        </section>
    }
}
