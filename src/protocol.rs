//! Types both sides use: request and response bodies, access-token claims and the
//! password rule. Plain data, compiled for the server and the browser alike.

use serde::{Deserialize, Serialize};

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
}
debug_redacting!(TokenResponse { token_type, expires_in; secret: access_token });

/// `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub role: String,
    pub session_id: String,
}

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

/// Every error response: a stable machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// Why a password was refused, when it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The live socket, `GET /ws?access_token=<jwt>`: its close codes and messages.
pub mod live {
    use serde::{Deserialize, Serialize};

    pub const PATH: &str = "/ws";
    /// The access token is missing, invalid (`invalid_token`) or expired
    /// (`token_expired`): refresh, then reconnect.
    pub const CLOSE_TOKEN: u16 = 4001;
    /// The session was revoked (`session_revoked`): a refresh will be refused too.
    pub const CLOSE_REVOKED: u16 = 1008;
    /// The user has too many sockets open (`too_many_sockets`).
    pub const CLOSE_TOO_MANY: u16 = 1013;
    pub const REASON_EXPIRED: &str = "token_expired";
    pub const REASON_INVALID: &str = "invalid_token";
    pub const REASON_REVOKED: &str = "session_revoked";
    pub const REASON_TOO_MANY: &str = "too_many_sockets";
    /// Larger messages from a client end its socket.
    pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

    /// What the server sends. Times are Unix seconds.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", try_from = "ServerFields")]
    pub enum ServerMessage {
        /// The socket is authenticated until `expires_at`, after connecting and
        /// after every accepted `reauth`.
        Ready { session_id: String, expires_at: i64 },
        /// A login elsewhere.
        SessionCreated {
            session_id: String,
            user_agent: Option<String>,
            ip: Option<String>,
            at: i64,
        },
        /// Another session of the user ended.
        SessionRevoked { session_id: String, reason: String, at: i64 },
        PasswordChanged { at: i64 },
    }

    /// A server message's fields read flat, `type` among them. serde reads a
    /// `type`-tagged enum by first copying each message into a tree of generic
    /// values; that reader cost the module every page loads 4.5 KB of
    /// compressed WASM. A flat struct is read in one pass.
    #[derive(Deserialize)]
    struct ServerFields {
        #[serde(rename = "type")]
        kind: String,
        session_id: Option<String>,
        expires_at: Option<i64>,
        user_agent: Option<String>,
        ip: Option<String>,
        reason: Option<String>,
        at: Option<i64>,
    }

    impl TryFrom<ServerFields> for ServerMessage {
        type Error = String;

        fn try_from(fields: ServerFields) -> Result<Self, String> {
            let ServerFields {
                kind,
                session_id,
                expires_at,
                user_agent,
                ip,
                reason,
                at,
            } = fields;
            match kind.as_str() {
                "ready" => Ok(Self::Ready {
                    session_id: required(session_id, &kind, "session_id")?,
                    expires_at: required(expires_at, &kind, "expires_at")?,
                }),
                "session_created" => Ok(Self::SessionCreated {
                    session_id: required(session_id, &kind, "session_id")?,
                    user_agent,
                    ip,
                    at: required(at, &kind, "at")?,
                }),
                "session_revoked" => Ok(Self::SessionRevoked {
                    session_id: required(session_id, &kind, "session_id")?,
                    reason: required(reason, &kind, "reason")?,
                    at: required(at, &kind, "at")?,
                }),
                "password_changed" => Ok(Self::PasswordChanged {
                    at: required(at, &kind, "at")?,
                }),
                other => Err(format!("unknown message type `{other}`")),
            }
        }
    }

    /// `value`, or why a `kind` message without `field` is refused.
    pub(crate) fn required<T>(value: Option<T>, kind: &str, field: &str) -> Result<T, String> {
        value.ok_or_else(|| format!("a `{kind}` message needs `{field}`"))
    }

    /// What a client may send.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    pub enum ClientMessage {
        /// A newer access token of the same session keeps the socket open past
        /// the old one's expiry.
        Reauth { access_token: String },
    }
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
}

/// The password rule, shared so the browser's strength meter and the server
/// refuse exactly the same passwords.
pub mod password_rule {
    /// zxcvbn scores 0 to 4; anything below this is refused.
    pub const MIN_SCORE: u8 = 3;
    /// Longer passwords are refused before any hashing work.
    pub const MAX_CHARS: usize = 256;

    /// The outcome of checking a password: its score and, if refused, why.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Strength {
        pub score: u8,
        pub reasons: Vec<String>,
    }

    impl Strength {
        pub fn acceptable(&self) -> bool {
            self.reasons.is_empty()
        }
    }

    /// Rates `password`, treating `user_inputs` (such as the username) as known
    /// to an attacker.
    pub fn check(password: &str, user_inputs: &[&str]) -> Strength {
        if password.is_empty() {
            return Strength {
                score: 0,
                reasons: vec!["Enter a password.".to_string()],
            };
        }
        if password.chars().count() > MAX_CHARS {
            return Strength {
                score: 0,
                reasons: vec![format!("Use at most {MAX_CHARS} characters.")],
            };
        }
        let entropy = zxcvbn::zxcvbn(password, user_inputs);
        let score = u8::from(entropy.score());
        let mut reasons = Vec::new();
        if score < MIN_SCORE {
            if let Some(feedback) = entropy.feedback() {
                if let Some(warning) = feedback.warning() {
                    reasons.push(warning.to_string());
                }
                reasons.extend(feedback.suggestions().iter().map(|s| s.to_string()));
            }
            if reasons.is_empty() {
                reasons.push("This password is too easy to guess.".to_string());
            }
        }
        Strength { score, reasons }
    }
}

/// Username rule: 3 to 32 ASCII letters, digits, `.`, `_` or `-`.
pub mod username_rule {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 32;

    /// Returns why `username` is not acceptable, if it is not.
    pub fn problem(username: &str) -> Option<String> {
        let count = username.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&count) {
            return Some(format!(
                "A username has {MIN_CHARS} to {MAX_CHARS} characters."
            ));
        }
        if !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            // ASCII only: no look-alike names ("аlice" in Cyrillic), no invisible characters.
            return Some("A username uses only the letters a-z, digits, '.', '_' and '-'.".to_string());
        }
        None
    }

    /// The form two usernames are compared in: "Alice" and "alice" are one name.
    pub fn key(username: &str) -> String {
        username.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn server_messages_read_back_as_sent() {
        use live::ServerMessage;
        let messages = [
            ServerMessage::Ready {
                session_id: "s1".into(),
                expires_at: 9,
            },
            ServerMessage::SessionCreated {
                session_id: "s2".into(),
                user_agent: Some("curl/8".into()),
                ip: None,
                at: 7,
            },
            ServerMessage::SessionRevoked {
                session_id: "s3".into(),
                reason: "logout".into(),
                at: 8,
            },
            ServerMessage::PasswordChanged { at: 6 },
        ];
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), message, "{text}");
        }
        let ready = serde_json::to_value(ServerMessage::PasswordChanged { at: 6 }).unwrap();
        assert_eq!(ready, serde_json::json!({"type": "password_changed", "at": 6}));
        for bad in [r#"{"type":"ready","session_id":"s"}"#, r#"{"type":"party","at":1}"#, r#"{"at":1}"#] {
            assert!(serde_json::from_str::<ServerMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weak_passwords_are_refused_with_reasons() {
        for weak in ["password", "12345678", "alice2024", "qwertyuiop"] {
            let strength = password_rule::check(weak, &["alice"]);
            assert!(!strength.acceptable(), "{weak} accepted");
            assert!(!strength.reasons.is_empty());
        }
    }

    #[test]
    fn strong_passwords_pass() {
        let strength = password_rule::check("correct horse battery staple 42!", &["alice"]);
        assert!(strength.acceptable(), "{:?}", strength);
        assert!(strength.score >= password_rule::MIN_SCORE);
    }

    #[test]
    fn the_username_counts_against_the_password() {
        let alone = password_rule::check("Zebulon-Quartzfield", &[]);
        let known = password_rule::check("Zebulon-Quartzfield", &["Zebulon-Quartzfield"]);
        assert!(known.score < alone.score);
    }

    #[test]
    fn overlong_passwords_are_refused_before_rating() {
        let long = "x".repeat(password_rule::MAX_CHARS + 1);
        assert!(!password_rule::check(&long, &[]).acceptable());
    }

    #[test]
    fn username_rules() {
        assert!(username_rule::problem("alice").is_none());
        assert!(username_rule::problem("Zoe_o-k.1").is_none());
        // Look-alikes of ASCII names are not names.
        assert!(username_rule::problem("Zoë").is_some());
        assert!(username_rule::problem("\u{430}lice").is_some());
        assert!(username_rule::problem("ａｌｉｃｅ").is_some());
        assert!(username_rule::problem("al").is_some());
        assert!(username_rule::problem("a\0lice").is_some());
        assert!(username_rule::problem("al ice").is_some());
        assert!(username_rule::problem("\u{202e}alice").is_some());
        assert!(username_rule::problem(&"a".repeat(33)).is_some());
        assert_eq!(username_rule::key("Alice"), "alice");
    }
}
