//! What a page allows the browser to run: a Content-Security-Policy on every
//! rendered page. The access token lives in the page's memory, so an injected
//! script is the threat that matters: scripts run only from this site or,
//! inline, with the nonce Leptos puts on its own hydration scripts (a fresh
//! one per response); WASM needs `'wasm-unsafe-eval'`, never `'unsafe-eval'`.

use axum::http::{header, HeaderValue};
use leptos::nonce::use_nonce;
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

/// The policy for a page whose inline scripts carry `nonce`. `connect-src
/// 'self'` covers the live socket too (CSP 3 lets `'self'` match `ws:` and
/// `wss:` on this host).
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

/// Sets the page's policy on the response being rendered, with this
/// render's nonce. Called from the shell, on the server.
pub fn set_for_this_page() {
    let (Some(response), Some(nonce)) = (use_context::<ResponseOptions>(), use_nonce()) else {
        return;
    };
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&nonce.to_string())) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
    }
}
