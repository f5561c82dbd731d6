//! Signing keys encrypted at rest: a key kept outside the database (from
//! `GATEHOUSE_KEY_ENCRYPTION_KEY`, or the file `key_encryption_key_file`
//! names) encrypts each private signing key with XChaCha20-Poly1305 before it
//! is stored, bound to its `kid`. A copy of the database alone then cannot
//! sign tokens.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};

use super::keys::KeyError;
use crate::config::Settings;

/// The environment variable that holds the key, base64 (32 bytes).
pub const KEY_ENCRYPTION_KEY_ENV: &str = "GATEHOUSE_KEY_ENCRYPTION_KEY";

/// What marks a stored private key as encrypted, and with which scheme.
const SEALED_PREFIX: &str = "xchacha20poly1305:";
const NONCE_BYTES: usize = 24;

#[derive(Clone)]
pub struct KeyEncryptionKey(Key);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(…)")
    }
}

impl KeyEncryptionKey {
    /// The configured key, if any: the environment variable, else the file
    /// the settings name.
    pub fn configured(settings: &Settings) -> Result<Option<Self>, KeyError> {
        if let Ok(text) = std::env::var(KEY_ENCRYPTION_KEY_ENV) {
            return Self::parse(&text).map(Some);
        }
        if settings.key_encryption_key_file.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&settings.key_encryption_key_file).map_err(|source| {
            KeyError::EncryptionKeyFile {
                path: settings.key_encryption_key_file.clone(),
                source,
            }
        })?;
        Self::parse(&text).map(Some)
    }

    /// 32 bytes, base64 (`openssl rand -base64 32`).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::MalformedEncryptionKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::MalformedEncryptionKey)?;
        Ok(Self(key.into()))
    }

    /// `der` encrypted for storage as the private key of `kid`.
    pub fn seal(&self, kid: &str, der: &[u8]) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let sealed = XChaCha20Poly1305::new(&self.0)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: der,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Sealing)?;
        Ok(format!(
            "{SEALED_PREFIX}{}",
            STANDARD.encode([nonce.as_slice(), &sealed].concat())
        ))
    }

    /// The DER of the stored private key of `kid`, which [`is_sealed`].
    pub fn open(&self, kid: &str, stored: &str) -> Result<Vec<u8>, KeyError> {
        let wrong_key = || KeyError::WrongEncryptionKey { kid: kid.to_string() };
        let bytes = STANDARD
            .decode(stored.strip_prefix(SEALED_PREFIX).unwrap_or(stored))
            .map_err(|_| wrong_key())?;
        if bytes.len() <= NONCE_BYTES {
            return Err(wrong_key());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        XChaCha20Poly1305::new(&self.0)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| wrong_key())
    }
}

/// Whether a stored private key is encrypted.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::parse(&STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn sealed_keys_open_with_their_key_and_kid_only() {
        let sealed = key(1).seal("kid-a", b"private der").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(&STANDARD.encode(b"private der")));
        assert_eq!(key(1).open("kid-a", &sealed).unwrap(), b"private der");
        assert!(matches!(
            key(2).open("kid-a", &sealed),
            Err(KeyError::WrongEncryptionKey { .. })
        ));
        assert!(key(1).open("kid-b", &sealed).is_err(), "bound to its kid");
        assert_ne!(
            sealed,
            key(1).seal("kid-a", b"private der").unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn only_32_bytes_of_base64_make_a_key() {
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([0u8; 32])).is_ok());
        assert!(KeyEncryptionKey::parse(&format!("{}\n", STANDARD.encode([0u8; 32]))).is_ok());
        for bad in ["", "not base64!", &STANDARD.encode([0u8; 16])] {
            assert!(
                matches!(KeyEncryptionKey::parse(bad), Err(KeyError::MalformedEncryptionKey)),
                "{bad}"
            );
        }
    }
}
