//! Pages a form post without JavaScript answers with directly, where a
//! redirect would lose what must be shown: fresh recovery codes (shown once,
//! never put in a URL or stored), and the re-auth step, which carries the
//! form it interrupted so that it goes through afterwards without being
//! typed again. Drawn with the app's components and stylesheet; no script
//! runs on them, and nothing of them is cached.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use leptos_meta::HashedStylesheet;

use super::AppState;
use crate::app::routes::TWO_FACTOR;
use crate::app::RecoveryCodeList;

/// Nothing but this site's stylesheet, and forms posted back to this site.
const POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The form actions a re-auth may complete, with the page each comes from.
pub const SENSITIVE_FORMS: [(&str, &str); 6] = [
    ("/account/password", crate::app::routes::ACCOUNT),
    ("/account/email", crate::app::routes::ACCOUNT),
    ("/logout-all", crate::app::routes::SESSIONS),
    ("/two-factor/start", TWO_FACTOR),
    ("/two-factor/recovery-codes", TWO_FACTOR),
    ("/two-factor/remove", TWO_FACTOR),
];

/// The page the sensitive form `action` is on, if it is one.
pub fn page_of_sensitive(action: &str) -> Option<&'static str> {
    SENSITIVE_FORMS.iter().find(|(form, _)| *form == action).map(|(_, page)| *page)
}

fn document(state: &AppState, title: &'static str, body: impl IntoView + 'static) -> Response {
    let options = state.leptos.clone();
    let html = Owner::new().with(|| {
        view! {
            <!DOCTYPE html>
            <html lang="en">
                <head>
                    <meta charset="utf-8"/>
                    <meta name="viewport" content="width=device-width, initial-scale=1"/>
                    <title>{title}</title>
                    <HashedStylesheet options=options id="leptos"/>
                </head>
                <body>
                    <main class="narrow">{body}</main>
                </body>
            </html>
        }
        .to_html()
    });
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

/// Fresh recovery codes, shown this once.
pub fn recovery_codes(state: &AppState, codes: Vec<String>) -> Response {
    document(state, "Your recovery codes · Gatehouse", view! { <RecoveryCodeList codes=codes/> })
}

/// The re-auth step for the form posted to `action` with `fields`: a
/// password or a code, then `/reauth` completes that form. `error` says why
/// an earlier try was refused.
pub fn reauth(state: &AppState, action: &str, fields: Vec<(String, String)>, error: Option<&'static str>) -> Response {
    let back = page_of_sensitive(action).unwrap_or(crate::app::routes::DASHBOARD);
    let carried = fields
        .into_iter()
        .map(|(name, value)| view! { <input type="hidden" name=format!("form.{name}") value=value/> })
        .collect_view();
    let body = view! {
        <section class="card" data-testid="reauth-page">
            <h1>"Confirm it is you"</h1>
            <p class="hint">"This change needs a recent sign-in. Confirm, and it goes through as you sent it."</p>
            <form method="post" action="/reauth">
                <input type="hidden" name="then" value=action.to_string()/>
                {carried}
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" autofocus/>
                <label for="code">"Or a code from your authenticator app, or a recovery code"</label>
                <input id="code" name="code" type="text" autocomplete="one-time-code" autocapitalize="none" spellcheck="false"/>
                {error.map(|error| view! { <p class="error" role="alert">{error}</p> })}
                <button type="submit" data-testid="reauth-submit">"Confirm"</button>
            </form>
            <p><a href=back>"Cancel"</a></p>
        </section>
    };
    document(state, "Confirm it is you · Gatehouse", body)
}
