//! Access tokens: short-lived JWTs (RFC 7519) in the profile of RFC 9068
//! (`typ: at+jwt`, `iss`, `aud`, `sub`, `exp`, `iat`, `jti`), signed with
//! Ed25519. Verification pins everything, as RFC 8725 §3 asks (algorithm,
//! `typ`, issuer, audience, key by `kid` from our own ring); nothing in a
//! token's header chooses how it is checked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Header, Validation};
use sha2::{Digest, Sha256};

use super::cache::{forget_expired_in, insert_bounded};
use super::keys::{KeyError, KeyRing, SigningKey};
use super::AuthError;
use crate::protocol::{debug_redacting, AccessClaims};
use crate::store::SessionRecord;

pub const TOKEN_TYPE: &str = "at+jwt";
/// Anything longer is refused unparsed.
pub const MAX_TOKEN_LEN: usize = 4096;
/// How far in the future `iat` or `nbf` may be, and how much longer than
/// `access_ttl` a token may live (clocks of instances differ a little).
pub const CLOCK_SKEW: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid")]
    Invalid,
    #[error("the access token was signed with an unknown key")]
    UnknownKey,
}

/// Whom a token is for: a session and its user.
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub role: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    /// Space-separated methods, as the session keeps them.
    pub amr: &'a str,
    pub auth_time: i64,
    pub session_id: &'a str,
    /// When the session ends (idle or absolute): no token of it outlives that.
    pub session_ends_at: i64,
}

impl<'a> From<&'a SessionRecord> for TokenSubject<'a> {
    fn from(session: &'a SessionRecord) -> Self {
        Self {
            user_id: &session.user_id,
            username: &session.username,
            role: &session.role,
            email: session.email.as_deref(),
            email_verified: session.email_verified,
            amr: &session.amr,
            auth_time: session.auth_time,
            session_id: &session.id,
            session_ends_at: session.ends_at(),
        }
    }
}

/// A freshly signed token and its lifetime.
#[derive(Clone)]
pub struct IssuedAccessToken {
    pub token: String,
    pub claims: AccessClaims,
    pub expires_in: u64,
}
debug_redacting!(IssuedAccessToken { claims, expires_in; secret: token });

pub struct AccessTokens {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: String,
    ttl: i64,
    validation: Validation,
    /// SHA-256 of a token whose signature, header and claims passed → its
    /// claims: a token is checked once, not on every request, until it expires.
    /// Revocation is checked by the caller on every request regardless.
    verified: RwLock<HashMap<[u8; 32], Arc<AccessClaims>>>,
    /// Session id → the token its last page load received (see `issue_for_page`).
    page_tokens: RwLock<HashMap<String, PageToken>>,
}

/// A token handed to a page load, and the key that signed it.
struct PageToken {
    kid: String,
    issued: IssuedAccessToken,
}

impl AccessTokens {
    pub fn new(keys: Arc<KeyRing>, issuer: String, audience: String, ttl: i64) -> Self {
        super::ed25519::install();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        // Time is checked below against the injected clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = true;
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_audience(&[audience.as_str()]);
        validation.required_spec_claims =
            ["exp", "iat", "iss", "aud", "sub"].iter().map(|c| c.to_string()).collect::<HashSet<_>>();
        Self {
            keys,
            issuer,
            audience,
            ttl,
            validation,
            verified: RwLock::new(HashMap::new()),
            page_tokens: RwLock::new(HashMap::new()),
        }
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    pub fn issue(&self, subject: TokenSubject<'_>, now: i64) -> Result<IssuedAccessToken, AuthError> {
        let key = self.active_key()?;
        self.sign(&key, subject, now)
    }

    /// A token for a page load of a session: the one the session's previous
    /// page load received, while it has at least half its lifetime left and
    /// names the same user, role and signing key; otherwise a new one. Signing
    /// is most of what a guarded page costs beyond rendering, and a user
    /// clicking through pages or opening tabs needs no new token each time.
    /// The caller has checked that the session is live.
    pub fn issue_for_page(&self, subject: TokenSubject<'_>, now: i64) -> Result<IssuedAccessToken, AuthError> {
        let key = self.active_key()?;
        // Near the session's end every token is cut short; half of what is
        // left of the session is then as good as half a lifetime.
        let lifetime = self.ttl.min(subject.session_ends_at - now);
        let reusable = |page: &PageToken| {
            let claims = &page.issued.claims;
            page.kid == key.kid
                && claims.sub == subject.user_id
                && claims.preferred_username == subject.username
                && claims.role == subject.role
                && claims.email.as_deref() == subject.email
                && claims.email_verified == subject.email_verified
                && claims.auth_time == subject.auth_time
                && claims.amr.join(" ") == subject.amr
                && claims.iat <= now
                && claims.exp <= subject.session_ends_at
                && 2 * (claims.exp - now) >= lifetime
        };
        let previous = self
            .page_tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(subject.session_id)
            .filter(|p| reusable(p))
            .map(|p| p.issued.clone());
        if let Some(mut issued) = previous {
            issued.expires_in = u64::try_from(issued.claims.exp - now).unwrap_or(0);
            return Ok(issued);
        }
        let issued = self.sign(&key, subject, now)?;
        let page = PageToken {
            kid: key.kid.clone(),
            issued: issued.clone(),
        };
        let mut pages = self.page_tokens.write().unwrap_or_else(|e| e.into_inner());
        insert_bounded(&mut pages, subject.session_id.to_string(), page, |p| p.issued.claims.exp <= now);
        Ok(issued)
    }

    fn active_key(&self) -> Result<Arc<SigningKey>, AuthError> {
        self.keys
            .active()
            .ok_or(AuthError::Keys(KeyError::NoActiveKey))
    }

    /// Signs a token for `subject` that lives `access_ttl`, or less where
    /// its session ends sooner: a token never outlives its session.
    fn sign(&self, key: &SigningKey, subject: TokenSubject<'_>, now: i64) -> Result<IssuedAccessToken, AuthError> {
        let exp = (now + self.ttl).min(subject.session_ends_at);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.to_string(),
            exp,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: subject.session_id.to_string(),
            role: subject.role.to_string(),
            preferred_username: subject.username.to_string(),
            email: subject.email.map(str::to_string),
            email_verified: subject.email_verified,
            amr: subject.amr.split_whitespace().map(str::to_string).collect(),
            auth_time: subject.auth_time,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TOKEN_TYPE.to_string());
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(KeyError::Signing)?;
        Ok(IssuedAccessToken {
            token,
            claims,
            expires_in: u64::try_from(exp - now).unwrap_or(0),
        })
    }

    /// Checks signature, header, issuer, audience and times. Revocation is the
    /// caller's next step.
    /// Shared, not copied: the claims of a token seen before come straight from
    /// the cache on every request that carries it.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.verified.read().unwrap_or_else(|e| e.into_inner()).get(&digest).cloned();
        if let Some(claims) = known {
            return if claims.exp <= now { Err(TokenError::Expired) } else { Ok(claims) };
        }
        let claims = Arc::new(self.verify_uncached(token, now)?);
        self.remember(digest, &claims, now);
        Ok(claims)
    }

    /// Drops verified and page tokens that have expired, so the caches hold
    /// only live ones between the times they fill up.
    pub fn forget_expired(&self, now: i64) {
        forget_expired_in(&mut self.verified.write().unwrap_or_else(|e| e.into_inner()), |c| c.exp <= now);
        forget_expired_in(&mut self.page_tokens.write().unwrap_or_else(|e| e.into_inner()), |p| {
            p.issued.claims.exp <= now
        });
    }

    fn remember(&self, digest: [u8; 32], claims: &Arc<AccessClaims>, now: i64) {
        let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
        insert_bounded(&mut verified, digest, claims.clone(), |c| c.exp <= now);
    }

    fn verify_uncached(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        // RFC 9068 §4: `at+jwt`, or its media type, and nothing else.
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt"));
        // Keys come from our ring only: headers naming other keys are refused
        // (RFC 8725 §3.10).
        let foreign_key_hint = header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some();
        if header.alg != Algorithm::EdDSA || !typ_ok || foreign_key_hint {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self.keys.find(&kid).ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.iat > now + CLOCK_SKEW || claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW) {
            return Err(TokenError::Invalid);
        }
        // Revocations are remembered for `access_ttl` and a margin: a token
        // meant to live longer (signed under a longer setting, or forged
        // with a stolen key) could outlive its revocation.
        if claims.exp - claims.iat > self.ttl + CLOCK_SKEW {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}
