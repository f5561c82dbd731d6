//! Types both sides use: request and response bodies, access-token claims and the
//! password rule. Plain data, compiled for the server and the browser alike.

use serde::{Deserialize, Serialize};

pub mod live;
pub mod password_rule;
pub mod username_rule;

/// `Debug` for a struct holding secrets: every field is named, and the
/// secret ones print as `<redacted>`, so a value logged by mistake never
/// shows a password or a token.
macro_rules! debug_redacting {
    ($type:ident { $($field:ident),* ; secret: $($secret:ident),+ }) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &format_args!("<redacted>")))+
                    .finish()
            }
        }
    };
}
// Only server-side types hold secrets worth redacting.
#[cfg(feature = "ssr")]
pub(crate) use debug_redacting;

/// The role every registered user has.
pub const ROLE_USER: &str = "user";
/// The role that may see `/admin` and `/api/admin/*`.
pub const ROLE_ADMIN: &str = "admin";

/// `POST /auth/register` and `POST /auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}
debug_redacting!(Credentials { username; secret: password });

/// `POST /auth/password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// Not looked at for an account without a password (passkeys only),
    /// which sets its first one so; may be left out then.
    #[serde(default)]
    pub current_password: String,
    pub new_password: String,
}
debug_redacting!(PasswordChange { ; secret: current_password, new_password });

/// The body of every response that hands out an access token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The second-factor policy covers this user and the session shows none:
    /// everything but setting one up waits (`/two-factor`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub second_factor_required: bool,
}
debug_redacting!(TokenResponse { token_type, expires_in, second_factor_required; secret: access_token });

/// `GET /api/me`. `email` is the verified address, else the one waiting for
/// verification (`email_verified` false), else null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub role: String,
    pub session_id: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// `POST /auth/register`: credentials and, optionally, an address to verify.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}
debug_redacting!(Registration { username, email; secret: password });

/// One entry of `GET /auth/passkeys`, and the answer of adding or renaming one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// `POST /auth/passkeys/register/finish`: what the browser's
/// `navigator.credentials.create()` gave, and a name (a default if none).
/// Signing up with a passkey (no access token) names its `ceremony` too.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistrationFinish {
    pub credential: webauthn_rs_proto::RegisterPublicKeyCredential,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
}

/// `POST /auth/passkeys/register/start` without an access token: signing up
/// with a passkey instead of a password, under this name and, optionally,
/// with an address to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignUp {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The answer to a [`PasskeySignUp`]: the options for
/// `navigator.credentials.create()` and the ceremony to finish with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeySignUpStart {
    pub ceremony: String,
    pub options: webauthn_rs_proto::CreationChallengeResponse,
}

/// `POST /auth/passkeys/login/start`: the options for
/// `navigator.credentials.get()` and the ceremony to finish with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeyLoginStart {
    pub ceremony: String,
    pub options: webauthn_rs_proto::RequestChallengeResponse,
}

/// `POST /auth/passkeys/login/finish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginFinish {
    pub ceremony: String,
    pub credential: webauthn_rs_proto::PublicKeyCredential,
}

/// `PATCH /auth/passkeys/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRename {
    pub name: String,
}

/// `POST /auth/email` and `POST /auth/password-reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailAddressBody {
    pub email: String,
}

/// `POST /auth/email/verify`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTokenBody {
    pub token: String,
}
debug_redacting!(MailTokenBody { ; secret: token });

/// `POST /auth/password-reset/confirm`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub new_password: String,
}
debug_redacting!(PasswordResetConfirm { ; secret: token, new_password });

/// `POST /auth/login` for an account with a second factor: no session exists
/// yet; `POST /auth/login/mfa` with the token and a code finishes the sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaRequired {
    pub mfa_required: bool,
    pub mfa_token: String,
}
debug_redacting!(MfaRequired { mfa_required; secret: mfa_token });

/// `POST /auth/login/mfa`: an authenticator-app code or a recovery code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaLogin {
    pub mfa_token: String,
    pub code: String,
}
debug_redacting!(MfaLogin { ; secret: mfa_token, code });

/// `POST /auth/mfa/totp`: a setup waiting for its first code. `qr_svg` draws
/// `otpauth_uri` as a QR code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpSetup {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}
debug_redacting!(TotpSetup { qr_svg; secret: secret, otpauth_uri });

/// `POST /auth/mfa/totp/confirm`: a code from the app.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    pub code: String,
}
debug_redacting!(CodeBody { ; secret: code });

/// Fresh recovery codes, shown once: each signs in once instead of a code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}
debug_redacting!(RecoveryCodes { ; secret: recovery_codes });

/// `GET /auth/mfa`: the caller's second factor.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorStatus {
    /// An authenticator app is set up and confirmed.
    pub totp: bool,
    pub recovery_codes_left: i64,
    /// A setup begun and not yet confirmed: its QR code and key again, so
    /// the setup page can be left and come back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<TotpSetup>,
}
debug_redacting!(SecondFactorStatus { totp, recovery_codes_left; secret: setup });

impl SecondFactorStatus {
    /// Where it is read: the API's route, and the pages that load it.
    pub const PATH: &'static str = "/auth/mfa";
}

/// `POST /auth/reauth`: the password, a code (app or recovery), or a
/// passkey's answer to a sign-in ceremony (`ceremony` and `credential`).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reauth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<webauthn_rs_proto::PublicKeyCredential>,
}
debug_redacting!(Reauth { ceremony; secret: password, code, credential });

/// Who is logged in, as the server found out from the refresh cookie while
/// rendering a page, with an access token minted for that session. Travels to
/// the browser in the hydration data, so the page starts with a full token store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageAuth {
    pub access_token: String,
    pub expires_in: u64,
    pub username: String,
}
debug_redacting!(PageAuth { expires_in, username; secret: access_token });

/// One entry of `GET /auth/sessions`. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub current: bool,
}

/// One entry of `GET /api/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
}

/// One entry of `GET /api/admin/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventView {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// One page of a list (`GET /auth/sessions`, `/api/admin/users`,
/// `/api/admin/events`): its items and, if more follow, the cursor of the next
/// page. Over HTTP the body is `items` alone, as before lists paged, and the
/// cursor comes in a `Link: <…?limit=…&cursor=…>; rel="next"` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The `cursor` parameter of the `rel="next"` target in a `Link` header.
pub fn next_cursor(link: &str) -> Option<String> {
    let target = link
        .split(',')
        .find(|part| part.split(';').skip(1).any(|param| param.trim() == r#"rel="next""#))?;
    let url = target.split_once('<')?.1.split_once('>')?.0;
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("cursor=")?;
        Some(
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned(),
        )
    })
}

/// Every error response: a stable machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// Why a password was refused, when it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The claims of an access token (`typ: at+jwt`). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user's id.
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// The session the token belongs to.
    pub sid: String,
    pub role: String,
    /// The user's name (OpenID Connect's claim name), so answering who the
    /// caller is needs no database read. Empty in tokens issued before it existed.
    #[serde(default)]
    pub preferred_username: String,
    /// The user's e-mail address (OpenID Connect's claims): the verified one,
    /// else the one waiting for verification, with `email_verified` false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    /// How the user proved who they are (RFC 8176 method names: `pwd`,
    /// `webauthn`, `otp`, …) and when, for the session the token belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(default)]
    pub auth_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_cursor_is_read_from_a_link_header() {
        assert_eq!(
            next_cursor(r#"</auth/sessions?limit=5&cursor=czox>; rel="next""#).as_deref(),
            Some("czox")
        );
        assert_eq!(
            next_cursor(r#"</x?cursor=a>; rel="prev", </x?limit=1&cursor=b%3D>; rel="next""#).as_deref(),
            Some("b=")
        );
        assert_eq!(next_cursor(r#"</x?cursor=a>; rel="prev""#), None);
        assert_eq!(next_cursor("garbage"), None);
    }

    #[test]
    fn debug_output_hides_passwords_and_tokens() {
        let credentials = Credentials {
            username: "ada".into(),
            password: "hunter2-secret".into(),
        };
        let change = PasswordChange {
            current_password: "old-secret".into(),
            new_password: "new-secret".into(),
        };
        let token = TokenResponse {
            access_token: "eyJ.secret.sig".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            second_factor_required: false,
        };
        let page = PageAuth {
            access_token: "eyJ.secret.sig".into(),
            expires_in: 900,
            username: "ada".into(),
        };
        let shown = format!("{credentials:?} {change:?} {token:?} {page:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("username: \"ada\"") && shown.contains("password: <redacted>"), "{shown}");
        assert!(shown.contains("expires_in: 900"), "{shown}");
    }
}
