//! The refresh cookie: `HttpOnly; Secure; SameSite=Strict; Path=/` with the
//! `__Host-` prefix (RFC 6265bis §4.1.3.2: no `Domain`, so no subdomain can
//! set or shadow it), unless plain-HTTP local use was configured.

use axum::http::HeaderValue;

use crate::auth::refresh_token::RefreshToken;
use crate::auth::{CookieChange, NewTokens};

#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    secure: bool,
}

impl CookiePolicy {
    pub fn new(secure: bool) -> Self {
        Self { secure }
    }

    pub fn name(&self) -> &'static str {
        if self.secure {
            "__Host-gatehouse_refresh"
        } else {
            "gatehouse_refresh"
        }
    }

    /// The cookie that carries a password sign-in to its second step
    /// without JavaScript (`/login-code`): the `mfa_token`, for five minutes.
    pub fn second_step_name(&self) -> &'static str {
        if self.secure {
            "__Host-gatehouse_mfa"
        } else {
            "gatehouse_mfa"
        }
    }

    pub fn set_second_step(&self, mfa_token: &RefreshToken, max_age: i64) -> HeaderValue {
        self.header_named(self.second_step_name(), mfa_token.expose(), max_age)
    }

    pub fn clear_second_step(&self) -> HeaderValue {
        self.header_named(self.second_step_name(), "", 0)
    }

    fn header(&self, value: &str, max_age: i64) -> HeaderValue {
        self.header_named(self.name(), value, max_age)
    }

    fn header_named(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            max_age.max(0)
        );
        // The token is base64url and the rest is ASCII: always a valid header.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Sets the cookie to `token` for `max_age` seconds.
    fn set(&self, token: &RefreshToken, max_age: i64) -> HeaderValue {
        self.header(token.expose(), max_age)
    }

    /// Sets the cookie to the refresh token of a login, registration or
    /// rotation, for the session's remaining life at `now`: the browser keeps
    /// it no longer than the server would accept it.
    pub fn set_for_tokens(&self, tokens: &NewTokens, now: i64) -> HeaderValue {
        self.set(&tokens.refresh, tokens.session.ends_at() - now)
    }

    /// The `Set-Cookie` that what a page load or form post found calls for,
    /// if any.
    pub fn for_change(&self, change: &CookieChange, now: i64) -> Option<HeaderValue> {
        match change {
            CookieChange::Keep => None,
            CookieChange::Renew { token, ends_at } => Some(self.set(token, ends_at - now)),
            CookieChange::Clear => Some(self.clear()),
        }
    }

    pub fn clear(&self) -> HeaderValue {
        self.header("", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookie_attributes() {
        let token = RefreshToken::generate();
        let cookie = CookiePolicy::new(true).set(&token, 600);
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with(&format!("__Host-gatehouse_refresh={}; ", token.expose())));
        for attribute in ["Path=/", "Max-Age=600", "HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(text.split("; ").any(|a| a == attribute), "{attribute} in {text}");
        }
        assert!(!text.contains("Domain"), "__Host- cookies carry no Domain");
    }

    #[test]
    fn plain_http_cookie_has_no_prefix_and_no_secure() {
        let text = CookiePolicy::new(false).clear().to_str().unwrap().to_string();
        assert!(text.starts_with("gatehouse_refresh=; "));
        assert!(text.contains("Max-Age=0"));
        assert!(!text.contains("Secure"));
    }
}
