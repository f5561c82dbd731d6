//! Passkeys (WebAuthn, with `webauthn-rs`): adding one to an account, signing
//! in with one without a username (discoverable credentials, offered by the
//! browser's autofill too), listing, renaming and removing them.
//!
//! The relying party is the public URL's host, or `localhost` on any port in
//! development (browsers refuse an IP address as relying party). A ceremony's
//! state lives in the database for [`CEREMONY_SECONDS`] and is taken by the
//! request that finishes it, so any instance can finish what another began and
//! none can be finished twice. Signature counters are checked by webauthn-rs
//! (a counter that goes back is refused); synced passkeys, whose counter stays
//! 0, pass, and their backup flags are stored as they change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::audit::{AuditKind, Event};
use super::limits::address_key;
use super::{Auth, AuthError, ClientInfo, NewTokens};
use crate::config::Settings;
use crate::protocol::{AccessClaims, PasskeyLoginStart, PasskeyView};
use crate::store::{CeremonyKind, PasskeyRecord, Removal, StoreError};

/// How long a ceremony may take, from its options to its answer.
const CEREMONY_SECONDS: i64 = 300;
/// Passkey names are cut to this many characters.
const MAX_NAME_CHARS: usize = 64;

/// The relying party for `settings`, or `None` where passkeys cannot work
/// (a public URL that is an IP address).
pub(super) fn relying_party(settings: &Settings) -> Option<Webauthn> {
    let (origin, any_port) = if settings.public_url.is_empty() {
        ("http://localhost".to_string(), true)
    } else {
        (settings.public_url.trim_end_matches('/').to_string(), false)
    };
    let origin = Url::parse(&origin).ok()?;
    let rp_id = origin.domain()?.to_string();
    let built = WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|builder| builder.rp_name("Gatehouse").allow_any_port(any_port).build());
    match built {
        Ok(webauthn) => Some(webauthn),
        Err(err) => {
            tracing::warn!(error = %err, "passkeys are off: the relying party could not be set up");
            None
        }
    }
}

fn view(record: &PasskeyRecord) -> PasskeyView {
    PasskeyView {
        id: record.id.clone(),
        name: record.name.clone(),
        created_at: record.created_at,
        last_used_at: record.last_used_at,
    }
}

/// A passkey's name as given: trimmed, without control characters, at most
/// [`MAX_NAME_CHARS`]; `None` if nothing is left.
fn clean_name(name: &str) -> Option<String> {
    let name: String = name.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    let name = name.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// The ceremony id of the registration a session has under way: one at a time.
fn registration_ceremony(session_id: &str) -> String {
    format!("register:{session_id}")
}

impl Auth {
    fn webauthn(&self) -> Result<&Webauthn, AuthError> {
        self.webauthn.as_ref().ok_or(AuthError::PasskeysUnavailable)
    }

    /// Begins adding a passkey to the caller's account: the options for the
    /// browser's `navigator.credentials.create()`. The credential must be
    /// discoverable (sign-in without a username) and user-verified.
    pub async fn start_passkey_registration(&self, claims: &AccessClaims) -> Result<CreationChallengeResponse, AuthError> {
        let webauthn = self.webauthn()?;
        self.require_recent_auth(claims)?;
        let user = self.store.user_by_id(&claims.sub).await?.ok_or(AuthError::InvalidToken)?;
        let handle = Uuid::parse_str(&user.id).map_err(|_| AuthError::PasskeyRefused)?;
        let existing = self
            .store
            .passkeys_of(&user.id)
            .await?
            .iter()
            .filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok())
            .collect();
        let (mut options, state) = webauthn
            .start_passkey_registration(handle, &user.username, &user.username, Some(existing))
            .map_err(|_| AuthError::PasskeyRefused)?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let state = serde_json::to_string(&state).map_err(|_| AuthError::PasskeyRefused)?;
        let now = self.now();
        self.store
            .save_ceremony(
                &registration_ceremony(&claims.sid),
                CeremonyKind::Register,
                Some(&user.id),
                &state,
                now + CEREMONY_SECONDS,
            )
            .await?;
        Ok(options)
    }

    /// Finishes adding a passkey with what the browser answered.
    pub async fn finish_passkey_registration(
        &self,
        claims: &AccessClaims,
        credential: &RegisterPublicKeyCredential,
        name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<PasskeyView, AuthError> {
        let webauthn = self.webauthn()?;
        let now = self.now();
        let (owner, state) = self
            .store
            .take_ceremony(&registration_ceremony(&claims.sid), CeremonyKind::Register, now)
            .await?
            .ok_or(AuthError::PasskeyRefused)?;
        if owner.as_deref() != Some(claims.sub.as_str()) {
            return Err(AuthError::PasskeyRefused);
        }
        let state: PasskeyRegistration = serde_json::from_str(&state).map_err(|_| AuthError::PasskeyRefused)?;
        let passkey = webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(|_| AuthError::PasskeyRefused)?;
        let record = PasskeyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: claims.sub.clone(),
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            name: name
                .and_then(clean_name)
                .unwrap_or_else(|| format!("Passkey added {}", crate::app::time_text(now).split(' ').next().unwrap_or_default())),
            credential: serde_json::to_string(&passkey).map_err(|_| AuthError::PasskeyRefused)?,
            created_at: now,
            last_used_at: None,
        };
        match self.store.add_passkey(&record).await {
            Err(StoreError::Conflict) => return Err(AuthError::PasskeyTaken),
            other => other?,
        }
        let user = self.store.user_by_id(&claims.sub).await?;
        self.audit(Event {
            kind: AuditKind::PasskeyAdded,
            at: now,
            account: user.as_ref().map(Into::into),
            session_id: Some(&claims.sid),
            client,
            detail: Some(format!("passkey {}: {}", record.id, record.name)),
        })
        .await?;
        Ok(view(&record))
    }

    /// Begins a sign-in with a passkey: options for the browser's
    /// `navigator.credentials.get()` naming no credential (the browser offers
    /// the ones it has for this site), with conditional mediation, so the
    /// same options serve autofill (the button's request sets it aside).
    pub async fn start_passkey_login(&self, client: &ClientInfo) -> Result<PasskeyLoginStart, AuthError> {
        let webauthn = self.webauthn()?;
        // Each start keeps a row until it expires: limited per address.
        self.limits
            .passkey_ceremony(&address_key(client.ip.as_deref().unwrap_or_default()))
            .await?;
        let (options, state) = webauthn.start_discoverable_authentication().map_err(|_| AuthError::InvalidCredentials)?;
        let state = serde_json::to_string(&state).map_err(|_| AuthError::InvalidCredentials)?;
        let ceremony = uuid::Uuid::new_v4().to_string();
        self.store
            .save_ceremony(&ceremony, CeremonyKind::Login, None, &state, self.now() + CEREMONY_SECONDS)
            .await?;
        Ok(PasskeyLoginStart { ceremony, options })
    }

    /// Finishes a sign-in with a passkey: the same session, cookie and token
    /// as a password login, with `amr: ["webauthn"]`. Every failure is
    /// `InvalidCredentials`, whether or not the credential is known.
    pub async fn finish_passkey_login(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<NewTokens, AuthError> {
        let webauthn = self.webauthn()?;
        let now = self.now();
        let refused = |reason: &str| {
            tracing::info!(reason, "passkey sign-in refused");
            AuthError::InvalidCredentials
        };
        let (_, state) = self
            .store
            .take_ceremony(ceremony, CeremonyKind::Login, now)
            .await?
            .ok_or_else(|| refused("unknown or expired ceremony"))?;
        let state: DiscoverableAuthentication = serde_json::from_str(&state).map_err(|_| refused("bad state"))?;
        let (handle, credential_id) = webauthn
            .identify_discoverable_authentication(credential)
            .map_err(|_| refused("no user handle"))?;
        let record = self
            .store
            .passkey_by_credential(&URL_SAFE_NO_PAD.encode(credential_id))
            .await?
            .ok_or_else(|| refused("unknown credential"))?;
        // webauthn-rs does not check that the user handle owns the credential.
        if Uuid::parse_str(&record.user_id).ok() != Some(handle) {
            return Err(refused("the user handle does not own the credential"));
        }
        let mut passkey: Passkey = serde_json::from_str(&record.credential).map_err(|_| refused("bad credential"))?;
        let result = webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
            .map_err(|err| {
                tracing::warn!(error = %err, passkey = %record.id, "a passkey assertion failed");
                AuthError::InvalidCredentials
            })?;
        passkey.update_credential(&result);
        let stored = serde_json::to_string(&passkey).map_err(|_| refused("bad credential"))?;
        self.store.passkey_used(&record.id, &stored, now).await?;
        let user = self.store.user_by_id(&record.user_id).await?.ok_or_else(|| refused("no such user"))?;
        self.start_session(&user, client, AuditKind::PasskeyLogin, "webauthn").await
    }

    pub async fn passkeys(&self, claims: &AccessClaims) -> Result<Vec<PasskeyView>, AuthError> {
        Ok(self.store.passkeys_of(&claims.sub).await?.iter().map(view).collect())
    }

    pub async fn rename_passkey(
        &self,
        claims: &AccessClaims,
        id: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<PasskeyView, AuthError> {
        let name = clean_name(name).ok_or(AuthError::PasskeyName)?;
        let renamed = self
            .store
            .rename_passkey(&claims.sub, id, &name)
            .await?
            .ok_or(AuthError::NotFound)?;
        let user = self.store.user_by_id(&claims.sub).await?;
        self.audit(Event {
            kind: AuditKind::PasskeyRenamed,
            at: self.now(),
            account: user.as_ref().map(Into::into),
            session_id: Some(&claims.sid),
            client,
            detail: Some(format!("passkey {id}: {name}")),
        })
        .await?;
        Ok(view(&renamed))
    }

    /// Removes a passkey, unless it is the account's last way to sign in.
    pub async fn remove_passkey(&self, claims: &AccessClaims, id: &str, client: &ClientInfo) -> Result<(), AuthError> {
        self.require_recent_auth(claims)?;
        match self.store.remove_passkey(&claims.sub, id).await? {
            Removal::Removed => {}
            Removal::NotFound => return Err(AuthError::NotFound),
            Removal::LastWay => return Err(AuthError::LastSignInMethod),
        }
        let user = self.store.user_by_id(&claims.sub).await?;
        self.audit(Event {
            kind: AuditKind::PasskeyRemoved,
            at: self.now(),
            account: user.as_ref().map(Into::into),
            session_id: Some(&claims.sid),
            client,
            detail: Some(format!("passkey {id}")),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_cleaned_and_cut() {
        assert_eq!(clean_name("  Laptop \u{7} key "), Some("Laptop  key".to_string()));
        assert_eq!(clean_name(" \n\t "), None);
        assert_eq!(clean_name(&"x".repeat(100)).map(|n| n.chars().count()), Some(MAX_NAME_CHARS));
    }

    #[test]
    fn the_relying_party_is_the_public_host_or_localhost() {
        let mut settings = Settings::default();
        assert!(relying_party(&settings).is_some(), "localhost on any port in development");
        settings.public_url = "https://login.example.com".into();
        assert!(relying_party(&settings).is_some());
        settings.public_url = "https://10.0.0.5".into();
        assert!(relying_party(&settings).is_none(), "an IP address cannot be a relying party");
    }
}
