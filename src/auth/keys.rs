//! Ed25519 signing keys: created on first start, kept in the database so every
//! instance and every restart signs and verifies with the same keys, rotated by
//! `gatehouse keys rotate`. A retired key stays published until its last token
//! has expired.

use std::sync::{Arc, Mutex, RwLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand_core::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::key_encryption::{is_sealed, KeyEncryptionKey};
use super::AuthError;
use crate::store::{KeyRecord, Store};

/// What can go wrong with the signing keys themselves.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("there is no active signing key")]
    NoActiveKey,
    #[error("a new signing key could not be encoded")]
    Encode(#[source] ed25519_dalek::pkcs8::Error),
    #[error("the stored private key {kid} is not valid base64")]
    StoredPrivate {
        kid: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("the stored public key {kid} is not valid")]
    StoredPublic {
        kid: String,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("an access token could not be signed")]
    Signing(#[source] jsonwebtoken::errors::Error),
    #[error("the key encryption key file {path} cannot be read")]
    EncryptionKeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the key encryption key must be 32 bytes, base64 (for example `openssl rand -base64 32`)")]
    MalformedEncryptionKey,
    #[error("a signing key could not be encrypted")]
    Sealing,
    #[error("signing key {kid} cannot be decrypted: the key encryption key is not the one it was encrypted with")]
    WrongEncryptionKey { kid: String },
    #[error("signing key {kid} is encrypted: set GATEHOUSE_KEY_ENCRYPTION_KEY (or key_encryption_key_file) to the key it was encrypted with")]
    EncryptedWithoutKey { kid: String },
}

impl From<KeyError> for AuthError {
    fn from(err: KeyError) -> Self {
        Self::Keys(err)
    }
}

/// One key, ready to sign (if still active) and verify.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public key, base64url: the JWK's `x`.
    pub x: String,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A public key as published in `/.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// How often (seconds) an unknown `kid` may trigger a reload from the database.
const RELOAD_AT_MOST_EVERY: i64 = 5;

/// Seconds a retired key outlives the longest access token it may have signed.
const RETIRED_KEY_MARGIN: i64 = 120;

pub struct KeyRing {
    store: Store,
    /// Encrypts private keys at rest, if configured.
    encryption: Option<KeyEncryptionKey>,
    /// A retired key is kept this long: the longest an access token lives, and a margin.
    keep_retired_for: i64,
    keys: RwLock<Arc<Vec<Arc<SigningKey>>>>,
    /// When the keys were last read (the core's clock).
    last_reload: Mutex<Option<i64>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one if the database has none. With
    /// a key encryption key, keys stored unencrypted are encrypted in place.
    pub async fn load(
        store: Store,
        access_ttl: i64,
        encryption: Option<KeyEncryptionKey>,
        now: i64,
    ) -> Result<Self, AuthError> {
        let ring = Self {
            store,
            encryption,
            // Other instances may sign with a retired key until their next
            // reload: a margin keeps those tokens verifiable to the end.
            keep_retired_for: access_ttl + RETIRED_KEY_MARGIN,
            keys: RwLock::new(Arc::new(Vec::new())),
            last_reload: Mutex::new(None),
        };
        ring.reload(now).await?;
        if ring.active().is_none() {
            Self::rotate(&ring.store, ring.encryption.as_ref(), now).await?;
            ring.reload(now).await?;
        }
        if let Some(encryption) = &ring.encryption {
            ring.encrypt_stored_keys(encryption).await?;
        }
        Ok(ring)
    }

    /// Whether private keys are encrypted at rest.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// Encrypts every stored private key that is not yet (a database from
    /// before the key encryption key was set).
    async fn encrypt_stored_keys(&self, encryption: &KeyEncryptionKey) -> Result<(), AuthError> {
        // Retired keys too: a key no longer published could still sign.
        for record in self.store.signing_keys(i64::MIN).await? {
            if is_sealed(&record.private_key) {
                continue;
            }
            let der = plain_der(&record)?;
            let sealed = encryption.seal(&record.kid, &der)?;
            self.store
                .replace_private_key(&record.kid, &record.private_key, &sealed)
                .await?;
        }
        Ok(())
    }

    /// Adds a new active key, retiring the current one, encrypted with
    /// `encryption` if given. Returns the new `kid`.
    pub async fn rotate(store: &Store, encryption: Option<&KeyEncryptionKey>, now: i64) -> Result<String, AuthError> {
        let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let der = signing.to_pkcs8_der().map_err(KeyError::Encode)?;
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        let kid = thumbprint(&x);
        let private_key = match encryption {
            Some(encryption) => encryption.seal(&kid, der.as_bytes())?,
            None => STANDARD.encode(der.as_bytes()),
        };
        store
            .add_signing_key(&KeyRecord {
                kid: kid.clone(),
                private_key,
                public_key: x,
                created_at: now,
                retired_at: None,
            })
            .await?;
        Ok(kid)
    }

    /// Re-reads the keys from the database (another instance may have rotated).
    pub async fn reload(&self, now: i64) -> Result<(), AuthError> {
        let records = self.store.signing_keys(now - self.keep_retired_for).await?;
        let keys = records
            .iter()
            .map(|record| decode_record(record, self.encryption.as_ref()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        Ok(())
    }

    /// Reloads unless that happened a moment ago: the answer to an unknown `kid`
    /// without letting forged tokens hammer the database.
    pub async fn reload_if_stale(&self, now: i64) -> Result<bool, AuthError> {
        let stale = self
            .last_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| now - at >= RELOAD_AT_MOST_EVERY || now < at);
        if stale {
            self.reload(now).await?;
        }
        Ok(stale)
    }

    fn snapshot(&self) -> Arc<Vec<Arc<SigningKey>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key new tokens are signed with: the newest unretired one.
    pub fn active(&self) -> Option<Arc<SigningKey>> {
        self.snapshot().iter().find(|k| k.retired_at.is_none()).cloned()
    }

    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.snapshot().iter().find(|k| k.kid == kid).cloned()
    }

    /// Every key whose tokens may still be live.
    pub fn jwks(&self, now: i64) -> Jwks {
        let keys = self
            .snapshot()
            .iter()
            .filter(|k| k.retired_at.is_none_or(|at| at + self.keep_retired_for > now))
            .map(|k| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: k.x.clone(),
                kid: k.kid.clone(),
                alg: "EdDSA",
                use_: "sig",
            })
            .collect();
        Jwks { keys }
    }
}

/// The DER of a private key stored unencrypted.
fn plain_der(record: &KeyRecord) -> Result<Vec<u8>, KeyError> {
    STANDARD
        .decode(&record.private_key)
        .map_err(|source| KeyError::StoredPrivate {
            kid: record.kid.clone(),
            source,
        })
}

fn decode_record(record: &KeyRecord, encryption: Option<&KeyEncryptionKey>) -> Result<SigningKey, KeyError> {
    let der = match (is_sealed(&record.private_key), encryption) {
        (true, Some(encryption)) => encryption.open(&record.kid, &record.private_key)?,
        (true, None) => {
            return Err(KeyError::EncryptedWithoutKey {
                kid: record.kid.clone(),
            })
        }
        (false, _) => plain_der(record)?,
    };
    let decoding = DecodingKey::from_ed_components(&record.public_key).map_err(|source| KeyError::StoredPublic {
        kid: record.kid.clone(),
        source,
    })?;
    Ok(SigningKey {
        kid: record.kid.clone(),
        encoding: EncodingKey::from_ed_der(&der),
        decoding,
        x: record.public_key.clone(),
        retired_at: record.retired_at,
    })
}

/// RFC 7638 JWK thumbprint: a `kid` that names the key itself.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
