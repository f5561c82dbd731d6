//! The browser's token store: the access token and its decoded claims, held in
//! signals provided as context and nowhere else (no localStorage, no
//! sessionStorage, no script-readable cookie). On the server it is filled from
//! the page guard's minted token and travels to the browser in hydration data.

use leptos::prelude::*;
use serde::Deserialize;

use crate::protocol::PageAuth;

/// A token this close to its `exp` no longer counts as active: absorbs clock
/// skew between the browser and the server (a fifth of the lifetime for very
/// short-lived tokens).
pub const SKEW_SECONDS: i64 = 10;
/// The client refreshes on its own this long before expiry (a third of the
/// lifetime for very short-lived tokens).
pub const REFRESH_AHEAD_SECONDS: i64 = 60;

/// The claims the client reads. Decoded without verifying the signature: the
/// server is the source of truth and checks every token it receives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    pub exp: i64,
    pub iat: i64,
    pub sub: String,
    pub sid: String,
    pub role: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub preferred_username: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    raw: String,
    pub claims: TokenClaims,
}

impl std::fmt::Debug for AccessToken {
    // The token itself is a credential: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("claims", &self.claims).finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Reads the payload of a compact JWT. `None` for anything that is not one.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let bytes = base64url_decode(payload)?;
        // Read as text: every other JSON the browser reads is text, and a
        // second reader (`from_slice`) cost every page 1.5 KB of compressed
        // WASM.
        let claims = serde_json::from_str(std::str::from_utf8(&bytes).ok()?).ok()?;
        Some(Self {
            raw: raw.to_string(),
            claims,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn lifetime(&self) -> i64 {
        (self.claims.exp - self.claims.iat).max(0)
    }

    /// Still usable at `now`, with some seconds to spare for clock skew.
    pub fn is_active(&self, now: i64) -> bool {
        now < self.claims.exp - SKEW_SECONDS.min(self.lifetime() / 5)
    }

    /// When to refresh ahead of expiry; always before the token stops being active.
    pub fn refresh_due_at(&self) -> i64 {
        self.claims.exp - REFRESH_AHEAD_SECONDS.min(self.lifetime() / 3)
    }
}

/// Seconds since the Unix epoch by the clock of whoever runs this.
pub fn now_seconds() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        (js_sys::Date::now() / 1000.0) as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// The signals, `Copy` so every component and callback can hold them.
#[derive(Debug, Clone, Copy)]
pub struct AuthStore {
    token: RwSignal<Option<AccessToken>>,
    username: RwSignal<Option<String>>,
    /// Set once the session has ended in this page (logout, refused refresh):
    /// nothing may try to revive it while the page is being left.
    ended: RwSignal<bool>,
    /// A sensitive change was refused for want of a recent sign-in: the
    /// re-auth dialog is open until it is confirmed or dismissed.
    reauth_asked: RwSignal<bool>,
}

impl AuthStore {
    pub fn new(initial: Option<PageAuth>) -> Self {
        let (token, username) = match initial {
            Some(page) => (AccessToken::parse(&page.access_token), Some(page.username)),
            None => (None, None),
        };
        Self {
            token: RwSignal::new(token),
            username: RwSignal::new(username),
            ended: RwSignal::new(false),
            reauth_asked: RwSignal::new(false),
        }
    }

    pub fn reauth_asked(&self) -> bool {
        self.reauth_asked.get()
    }

    pub fn set_reauth_asked(&self, asked: bool) {
        self.reauth_asked.set(asked);
    }

    /// The store provided by `App`.
    pub fn from_context() -> Self {
        use_context::<Self>().unwrap_or_else(|| Self::new(None))
    }

    /// The current token, tracked.
    pub fn token(&self) -> Option<AccessToken> {
        self.token.get()
    }

    /// The current token, untracked: for callbacks and the API client.
    pub fn current(&self) -> Option<AccessToken> {
        self.token.get_untracked()
    }

    pub fn claims(&self) -> Option<TokenClaims> {
        self.token.with(|t| t.as_ref().map(|t| t.claims.clone()))
    }

    pub fn is_logged_in(&self) -> bool {
        self.token.with(Option::is_some)
    }

    pub fn is_logged_in_untracked(&self) -> bool {
        self.token.with_untracked(Option::is_some)
    }

    pub fn username(&self) -> Option<String> {
        self.username.get()
    }

    pub fn username_untracked(&self) -> Option<String> {
        self.username.get_untracked()
    }

    pub fn set_username(&self, username: String) {
        self.username.set(Some(username));
    }

    /// Stores a token from the server. A token of another session replaces the
    /// user's name, which the caller then fills in again.
    pub fn set_token(&self, raw: &str) -> Option<AccessToken> {
        let token = AccessToken::parse(raw)?;
        let same_user = self
            .token
            .with_untracked(|t| t.as_ref().is_some_and(|t| t.claims.sub == token.claims.sub));
        if !same_user {
            self.username.set(None);
        }
        self.token.set(Some(token.clone()));
        Some(token)
    }

    /// Takes a token (and its user's name) another tab obtained, unless ours
    /// lives longer.
    pub fn adopt_token(&self, raw: &str, username: Option<String>) {
        let Some(token) = AccessToken::parse(raw) else {
            return;
        };
        let newer = self
            .token
            .with_untracked(|t| t.as_ref().is_none_or(|t| t.claims.exp <= token.claims.exp));
        if newer {
            self.set_token(raw);
            if let Some(username) = username {
                self.set_username(username);
            }
        }
    }

    /// This page is ending the session (logout, logout everywhere): nothing may
    /// refresh it meanwhile, but the token stays for the call that ends it.
    pub fn begin_ending(&self) {
        self.ended.set(true);
    }

    /// The call that was to end the session failed: it goes on.
    pub fn cancel_ending(&self) {
        if self.is_logged_in_untracked() {
            self.ended.set(false);
        }
    }

    /// Empties the store for good: the session is over.
    pub fn end(&self) {
        self.ended.set(true);
        self.token.set(None);
        self.username.set(None);
    }

    pub fn has_ended(&self) -> bool {
        self.ended.get_untracked()
    }
}

/// Unpadded base64url, as in a JWT. In the browser its own decoder does it:
/// the `base64` crate's engine was 2.9 KB of the module every page loads.
#[cfg(not(feature = "hydrate"))]
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(feature = "hydrate")]
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    // `atob` reads the standard alphabet, with or without padding, and
    // answers one character per byte.
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let standard: String = text.chars().map(|c| match c {
        '-' => '+',
        '_' => '/',
        c => c,
    }).collect();
    let binary = web_sys::window()?.atob(&standard).ok()?;
    binary.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        use base64::Engine as _;
        format!("eyJhbGciOiJFZERTQSJ9.{}.c2ln", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn decodes_the_payload() {
        let raw = token(r#"{"exp":1000,"iat":100,"sub":"u1","sid":"s1","role":"user","iss":"x"}"#);
        let parsed = AccessToken::parse(&raw);
        let claims = parsed.as_ref().map(|t| t.claims.clone());
        assert_eq!(claims.as_ref().map(|c| c.sid.as_str()), Some("s1"));
        assert_eq!(claims.map(|c| c.exp), Some(1000));
        assert!(!format!("{parsed:?}").contains(&raw), "Debug must not print the token");
    }

    #[test]
    fn refuses_what_is_not_a_jwt() {
        for raw in ["", "a.b", "a.b.c.d", "a.!!!.c", &token("[]"), &token(r#"{"exp":"soon"}"#)] {
            assert!(AccessToken::parse(raw).is_none(), "{raw:?}");
        }
    }

    #[test]
    fn activity_keeps_a_margin_for_skew() {
        let t = AccessToken::parse(&token(r#"{"exp":1000,"iat":100,"sub":"u","sid":"s","role":"user"}"#));
        let t = t.as_ref();
        assert_eq!(t.map(|t| t.is_active(989)), Some(true));
        assert_eq!(t.map(|t| t.is_active(990)), Some(false));
        assert_eq!(t.map(AccessToken::refresh_due_at), Some(940));
    }

    #[test]
    fn short_lifetimes_scale_the_margins() {
        let t = AccessToken::parse(&token(r#"{"exp":1030,"iat":1000,"sub":"u","sid":"s","role":"user"}"#));
        let t = t.as_ref();
        assert_eq!(t.map(AccessToken::refresh_due_at), Some(1020));
        assert_eq!(t.map(|t| t.is_active(1023)), Some(true));
        assert_eq!(t.map(|t| t.is_active(1024)), Some(false));
    }
}
