//! The live socket, `GET /ws?access_token=<jwt>`: its close codes and messages.

use serde::{Deserialize, Serialize};

pub const PATH: &str = "/ws";
/// The access token is missing, invalid (`invalid_token`) or expired
/// (`token_expired`): refresh, then reconnect.
pub const CLOSE_TOKEN: u16 = 4001;
/// The session was revoked (`session_revoked`): a refresh will be refused too.
pub const CLOSE_REVOKED: u16 = 1008;
/// The server is shutting down (`going_away`): reconnect, with backoff; a
/// load balancer sends the new socket to another instance.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The user has too many sockets open (`too_many_sockets`).
pub const CLOSE_TOO_MANY: u16 = 1013;
pub const REASON_EXPIRED: &str = "token_expired";
pub const REASON_INVALID: &str = "invalid_token";
pub const REASON_REVOKED: &str = "session_revoked";
pub const REASON_TOO_MANY: &str = "too_many_sockets";
pub const REASON_GOING_AWAY: &str = "going_away";
/// Larger messages from a client end its socket.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// What the server sends. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "ServerFields")]
pub enum ServerMessage {
    /// The socket is authenticated until `expires_at`, after connecting and
    /// after every accepted `reauth`.
    Ready {
        session_id: String,
        expires_at: i64,
    },
    /// A login elsewhere.
    SessionCreated {
        session_id: String,
        user_agent: Option<String>,
        ip: Option<String>,
        at: i64,
    },
    /// Another session of the user ended.
    SessionRevoked {
        session_id: String,
        reason: String,
        at: i64,
    },
    PasswordChanged {
        at: i64,
    },
    /// Something else that protects the account changed: `change` is
    /// `totp_enabled`, `totp_disabled`, `recovery_codes_renewed` or
    /// `recovery_code_used`.
    AccountChanged {
        change: String,
        at: i64,
    },
    /// A passkey of the user was added, used to sign in, renamed or removed.
    Passkey {
        passkey_id: String,
        name: String,
        change: PasskeyChange,
        at: i64,
    },
}

/// What happened to a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyChange {
    Added,
    /// Used to sign in.
    Used,
    Renamed,
    Removed,
}

impl PasskeyChange {
    pub const ALL: [Self; 4] = [Self::Added, Self::Used, Self::Renamed, Self::Removed];

    pub fn name(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Used => "used",
            Self::Renamed => "renamed",
            Self::Removed => "removed",
        }
    }
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
    passkey_id: Option<String>,
    name: Option<String>,
    change: Option<String>,
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
            passkey_id,
            name,
            change,
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
            "account_changed" => Ok(Self::AccountChanged {
                change: required(change, &kind, "change")?,
                at: required(at, &kind, "at")?,
            }),
            "passkey" => {
                let change = required(change, &kind, "change")?;
                Ok(Self::Passkey {
                    passkey_id: required(passkey_id, &kind, "passkey_id")?,
                    name: required(name, &kind, "name")?,
                    change: PasskeyChange::ALL
                        .into_iter()
                        .find(|known| known.name() == change)
                        .ok_or_else(|| format!("unknown passkey change `{change}`"))?,
                    at: required(at, &kind, "at")?,
                })
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_read_back_as_sent() {
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
            ServerMessage::AccountChanged {
                change: "totp_enabled".into(),
                at: 5,
            },
            ServerMessage::Passkey {
                passkey_id: "p1".into(),
                name: "Laptop".into(),
                change: PasskeyChange::Renamed,
                at: 5,
            },
        ];
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), message, "{text}");
        }
        let ready = serde_json::to_value(ServerMessage::PasswordChanged { at: 6 }).unwrap();
        assert_eq!(ready, serde_json::json!({"type": "password_changed", "at": 6}));
        for change in PasskeyChange::ALL {
            assert_eq!(serde_json::to_value(change).unwrap(), change.name());
        }
        for bad in [
            r#"{"type":"ready","session_id":"s"}"#,
            r#"{"type":"party","at":1}"#,
            r#"{"at":1}"#,
            r#"{"type":"passkey","passkey_id":"p","name":"n","change":"stolen","at":1}"#,
            r#"{"type":"passkey","passkey_id":"p","name":"n","at":1}"#,
        ] {
            assert!(serde_json::from_str::<ServerMessage>(bad).is_err(), "{bad}");
        }
    }
}
