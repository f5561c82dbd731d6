//! Passkeys (WebAuthn, with `webauthn-rs`): adding one to an account, signing
//! in with one without a username (discoverable credentials, offered by the
//! browser's autofill too), listing, renaming and removing them.
//!
//! The relying party is the public URL's host, or `localhost` on any port in
//! development (browsers refuse an IP address as relying party). A ceremony's
//! state lives in the database for [`CEREMONY_SECONDS`] and is taken by the
//! request that finishes it, so any instance can finish what another began and
//! none can be finished twice. Signature counters are checked by webauthn-rs:
//! a counter that does not go up (a cloned authenticator) is refused and
//! audited; synced passkeys, whose counter stays 0, pass, and their backup
//! flags are stored as they change.
//!
//! A person may also sign up with a passkey instead of a password: the
//! account is made only when the ceremony finishes, with an empty password
//! hash (no password; `password::PasswordHasher::verify` never matches it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::audit::{AuditKind, Event};
use super::email::check_email;
use super::events::{PasskeyChange, SessionEvent};
use super::limits::address_key;
use super::login::failed_login_outcome;
use super::{Auth, AuthError, ClientInfo, NewTokens, ROLE_USER};
use crate::config::Settings;
use crate::metrics::LoginMethod;
use crate::protocol::{AccessClaims, PasskeyLoginStart, PasskeySignUp, PasskeySignUpStart, PasskeyView};
use crate::store::{CeremonyKind, PasskeyRecord, Removal, StoreError, UserRecord};

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

/// The row of a passkey `user_id` just registered, named `name` (cleaned) or
/// after the day it was added.
fn passkey_record(user_id: &str, passkey: &Passkey, name: Option<&str>, now: i64) -> Result<PasskeyRecord, AuthError> {
    Ok(PasskeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_string(),
        credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
        name: name
            .and_then(clean_name)
            .unwrap_or_else(|| format!("Passkey added {}", crate::app::time_text(now).split(' ').next().unwrap_or_default())),
        credential: serde_json::to_string(passkey).map_err(|_| AuthError::PasskeyRefused)?,
        created_at: now,
        last_used_at: None,
    })
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

/// What a sign-up ceremony keeps until it finishes: the registration's state
/// and the account it is to make (whose id is the ceremony row's user id).
#[derive(Serialize, Deserialize)]
struct SignUpState {
    registration: PasskeyRegistration,
    username: String,
    email: Option<String>,
}

/// Asks the authenticator for a discoverable credential (sign-in without a
/// username); webauthn-rs's passkey options only prefer one.
fn require_resident_key(options: &mut CreationChallengeResponse) {
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
}

/// A P-256 public key whose private key nobody kept: what an assertion naming
/// an unknown credential is checked against, so that answer costs the same
/// work as a known credential's failed signature.
const STAND_IN_KEY_X: &str = "qiSCfMpQ-2-6GJ4ENuUi2Z-Oejw_lpRNuXmW0YvqSZI";
const STAND_IN_KEY_Y: &str = "L3inLNKMWOCFsIMB9eiBTWTi9OvNgnloNOXTc2w9d8w";

/// A stand-in for a credential nobody registered, shaped like the assertion
/// (its id and backup flag, which webauthn-rs checks before the signature)
/// so the check reaches the signature; it never verifies, and is refused
/// whatever the outcome.
fn stand_in_passkey(credential: &PublicKeyCredential) -> Option<Passkey> {
    // authenticatorData: a 32-byte RP id hash, then the flags (bit 3: backup eligible).
    let flags = credential.response.authenticator_data.get(32).copied().unwrap_or_default();
    serde_json::from_value(serde_json::json!({ "cred": {
        "cred_id": URL_SAFE_NO_PAD.encode(&credential.raw_id),
        "cred": { "type_": "ES256", "key": { "EC_EC2": { "curve": "SECP256R1", "x": STAND_IN_KEY_X, "y": STAND_IN_KEY_Y } } },
        "counter": 0,
        "transports": null,
        "user_verified": true,
        "backup_eligible": flags & 0x08 != 0,
        "backup_state": flags & 0x10 != 0,
        "registration_policy": "required",
        "extensions": {},
        "attestation": { "data": "None", "metadata": "None" },
        "attestation_format": "none",
    } }))
    .ok()
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
        require_resident_key(&mut options);
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
        let record = passkey_record(&claims.sub, &passkey, name, now)?;
        match self.store.add_passkey(&record).await {
            Err(StoreError::Conflict) => return Err(AuthError::PasskeyTaken),
            other => other?,
        }
        let user = self.store.user_by_id(&claims.sub).await?;
        self.passkey_added(user.as_ref(), &record, Some(&claims.sid), client).await?;
        Ok(view(&record))
    }

    async fn passkey_added(
        &self,
        user: Option<&UserRecord>,
        record: &PasskeyRecord,
        session_id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.audit(Event {
            kind: AuditKind::PasskeyAdded,
            at: record.created_at,
            account: user.map(Into::into),
            session_id,
            client,
            detail: Some(format!("passkey {}: {}", record.id, record.name)),
        })
        .await?;
        self.passkey_changed(record, PasskeyChange::Added, record.created_at).await;
        Ok(())
    }

    /// Tells the owner's live sockets what happened to one of their passkeys.
    pub(super) async fn passkey_changed(&self, record: &PasskeyRecord, change: PasskeyChange, at: i64) {
        self.publish(SessionEvent::Passkey {
            user_id: record.user_id.clone(),
            passkey_id: record.id.clone(),
            name: record.name.clone(),
            change,
            at,
        })
        .await;
    }

    /// Begins signing up with a passkey instead of a password: the name and
    /// address are checked as a registration checks them, and the rate limit
    /// of registrations is spent, but no account exists until
    /// [`Auth::finish_passkey_sign_up`]: a ceremony left unfinished leaves
    /// nothing behind.
    pub async fn start_passkey_sign_up(
        &self,
        sign_up: PasskeySignUp,
        client: &ClientInfo,
    ) -> Result<PasskeySignUpStart, AuthError> {
        let webauthn = self.webauthn()?;
        let PasskeySignUp { username, email } = sign_up;
        let email = email.filter(|e| !e.trim().is_empty()).map(|e| check_email(&e)).transpose()?;
        self.limits
            .registration(&address_key(client.ip.as_deref().unwrap_or_default()))
            .await?;
        self.free_username_key(&username).await?;
        let user_id = uuid::Uuid::new_v4().to_string();
        let handle = Uuid::parse_str(&user_id).map_err(|_| AuthError::PasskeyRefused)?;
        let (mut options, registration) = webauthn
            .start_passkey_registration(handle, &username, &username, None)
            .map_err(|_| AuthError::PasskeyRefused)?;
        require_resident_key(&mut options);
        let state = SignUpState {
            registration,
            username,
            email: email.map(|e| e.address),
        };
        let state = serde_json::to_string(&state).map_err(|_| AuthError::PasskeyRefused)?;
        let ceremony = uuid::Uuid::new_v4().to_string();
        self.store
            .save_ceremony(&ceremony, CeremonyKind::SignUp, Some(&user_id), &state, self.now() + CEREMONY_SECONDS)
            .await?;
        Ok(PasskeySignUpStart { ceremony, options })
    }

    /// Finishes signing up with a passkey: the account (without a password)
    /// and its passkey are made together, and its first session started as a
    /// registration's, with `amr: ["webauthn"]`. The name is checked again:
    /// someone may have taken it since the ceremony began.
    pub async fn finish_passkey_sign_up(
        &self,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<NewTokens, AuthError> {
        let webauthn = self.webauthn()?;
        let (user_id, state) = self
            .store
            .take_ceremony(ceremony, CeremonyKind::SignUp, self.now())
            .await?
            .ok_or(AuthError::PasskeyRefused)?;
        let user_id = user_id.ok_or(AuthError::PasskeyRefused)?;
        let state: SignUpState = serde_json::from_str(&state).map_err(|_| AuthError::PasskeyRefused)?;
        let passkey = webauthn
            .finish_passkey_registration(credential, &state.registration)
            .map_err(|_| AuthError::PasskeyRefused)?;
        let key = self.free_username_key(&state.username).await?;
        let email = state.email.as_deref().map(check_email).transpose()?;
        let now = self.now();
        let user = UserRecord {
            id: user_id,
            username: state.username,
            role: ROLE_USER.to_string(),
            password_hash: String::new(),
            created_at: now,
            password_changed_at: now,
            email: None,
            pending_email: None,
        };
        let record = passkey_record(&user.id, &passkey, name, now)?;
        match self.store.create_passkey_user(&user, &key, &record).await {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::PasskeyTaken),
            Err(StoreError::Conflict) => return Err(AuthError::UsernameTaken),
            Err(err) => return Err(err.into()),
        }
        self.passkey_added(Some(&user), &record, None, client).await?;
        self.registered(user, email, client, "webauthn").await
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
        let result = self.check_passkey_and_start(ceremony, credential, client).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => failed_login_outcome(err),
        };
        tracing::info!(outcome, "passkey login");
        crate::metrics::login(LoginMethod::Passkey, outcome);
        result
    }

    async fn check_passkey_and_start(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<NewTokens, AuthError> {
        let record = self.check_passkey_assertion(ceremony, credential, client).await?;
        let now = self.now();
        let user = self
            .store
            .user_by_id(&record.user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let tokens = self.start_session(&user, client, AuditKind::PasskeyLogin, "webauthn").await?;
        self.passkey_changed(&record, PasskeyChange::Used, now).await;
        Ok(tokens)
    }

    /// Checks an answer to the sign-in ceremony `ceremony` and records the
    /// passkey's use: the passkey it proved. Every failure is
    /// `InvalidCredentials`, at the cost of a known credential's.
    pub(super) async fn check_passkey_assertion(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<PasskeyRecord, AuthError> {
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
        let Some(record) = self.store.passkey_by_credential(&URL_SAFE_NO_PAD.encode(credential_id)).await? else {
            // The same work as a known credential whose signature fails: the
            // answer's timing tells nothing about which credentials exist.
            if let Some(stand_in) = stand_in_passkey(credential) {
                let _ = webauthn.finish_discoverable_authentication_v2(credential, state, &stand_in);
            }
            return Err(refused("unknown credential"));
        };
        let mut passkey: Passkey = serde_json::from_str(&record.credential).map_err(|_| refused("bad credential"))?;
        let result = webauthn.finish_discoverable_authentication_v2(credential, state, &passkey);
        // webauthn-rs does not check that the user handle owns the credential.
        if Uuid::parse_str(&record.user_id).ok() != Some(handle) {
            return Err(refused("the user handle does not own the credential"));
        }
        let result = match result {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // The signature holds but the counter did not go up: another
                // authenticator has this credential's key. Refused, the stored
                // counter kept; a synced passkey's counter stays 0 and never
                // gets here.
                tracing::warn!(passkey = %record.id, "a passkey's signature counter went back: refused as possibly cloned");
                let user = self.store.user_by_id(&record.user_id).await?;
                self.audit(Event {
                    kind: AuditKind::PasskeyPossiblyCloned,
                    at: now,
                    account: user.as_ref().map(Into::into),
                    session_id: None,
                    client,
                    detail: Some(format!("passkey {}: {}: its signature counter went back", record.id, record.name)),
                })
                .await?;
                return Err(AuthError::InvalidCredentials);
            }
            Err(err) => {
                tracing::warn!(error = %err, passkey = %record.id, "a passkey assertion failed");
                return Err(AuthError::InvalidCredentials);
            }
        };
        passkey.update_credential(&result);
        let stored = serde_json::to_string(&passkey).map_err(|_| refused("bad credential"))?;
        self.store.passkey_used(&record.id, &stored, now).await?;
        Ok(record)
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
        let now = self.now();
        self.audit(Event {
            kind: AuditKind::PasskeyRenamed,
            at: now,
            account: user.as_ref().map(Into::into),
            session_id: Some(&claims.sid),
            client,
            detail: Some(format!("passkey {id}: {name}")),
        })
        .await?;
        self.passkey_changed(&renamed, PasskeyChange::Renamed, now).await;
        Ok(view(&renamed))
    }

    /// Removes a passkey, unless it is the account's last way to sign in.
    pub async fn remove_passkey(&self, claims: &AccessClaims, id: &str, client: &ClientInfo) -> Result<(), AuthError> {
        self.require_recent_auth(claims)?;
        let removed = match self.store.remove_passkey(&claims.sub, id).await? {
            Removal::Removed(removed) => removed,
            Removal::NotFound => return Err(AuthError::NotFound),
            Removal::LastWay => return Err(AuthError::LastSignInMethod),
        };
        let user = self.store.user_by_id(&claims.sub).await?;
        let now = self.now();
        self.audit(Event {
            kind: AuditKind::PasskeyRemoved,
            at: now,
            account: user.as_ref().map(Into::into),
            session_id: Some(&claims.sid),
            client,
            detail: Some(format!("passkey {id}: {}", removed.name)),
        })
        .await?;
        self.passkey_changed(&removed, PasskeyChange::Removed, now).await;
        Ok(())
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
    fn the_stand_in_credential_is_read_as_a_passkey_of_the_assertions_shape() {
        let assertion: PublicKeyCredential = serde_json::from_value(serde_json::json!({
            "id": "AQID",
            "rawId": "AQID",
            "response": {
                // 32 bytes of RP id hash, then flags UP|UV|BE|BS, then a zero counter.
                "authenticatorData": URL_SAFE_NO_PAD.encode([[0u8; 32].as_slice(), &[0x1d, 0, 0, 0, 0]].concat()),
                "clientDataJSON": "e30",
                "signature": "AA",
                "userHandle": null,
            },
            "extensions": {},
            "type": "public-key",
        }))
        .unwrap();
        let stand_in = stand_in_passkey(&assertion).expect("the template is a passkey");
        assert_eq!(stand_in.cred_id().as_slice(), [1u8, 2, 3].as_slice());
        let stored = serde_json::to_value(&stand_in).unwrap();
        assert_eq!(stored["cred"]["backup_eligible"], true);
        assert_eq!(stored["cred"]["backup_state"], true);
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
