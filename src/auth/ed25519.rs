//! jsonwebtoken's RustCrypto backend with one change: Ed25519 keys are parsed
//! once per key, not once per token. jsonwebtoken builds its signer from the
//! PKCS#8 DER on every call (deriving the public key, a scalar multiplication)
//! and its verifier from the raw bytes (decompressing a curve point); with few
//! keys and many tokens, that was half the cost of signing. Signatures are
//! still made and checked by ed25519-dalek, as jsonwebtoken does; every other
//! algorithm goes to jsonwebtoken's own backend unchanged.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::Signature;
use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{signature, Algorithm, DecodingKey, EncodingKey};

/// More distinct keys than a ring ever holds; past it the cache starts over.
const MAX_CACHED_KEYS: usize = 64;

/// Makes this the process's jsonwebtoken backend. Idempotent; if another
/// backend was installed first, that one stays and tokens are still correct.
pub fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory: signer,
        verifier_factory: verifier,
        jwk_utils: rust_crypto::DEFAULT_PROVIDER.jwk_utils.clone(),
    });
    let _ = provider.install_default();
}

fn cached<K: Clone>(cache: &RwLock<HashMap<Vec<u8>, K>>, bytes: &[u8], parse: impl FnOnce() -> Option<K>) -> Option<K> {
    if let Some(found) = cache.read().unwrap_or_else(|e| e.into_inner()).get(bytes) {
        return Some(found.clone());
    }
    let parsed = parse()?;
    let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_CACHED_KEYS {
        cache.clear();
    }
    cache.insert(bytes.to_vec(), parsed.clone());
    Some(parsed)
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if *algorithm != Algorithm::EdDSA {
        return (rust_crypto::DEFAULT_PROVIDER.signer_factory)(algorithm, key);
    }
    static KEYS: OnceLock<RwLock<HashMap<Vec<u8>, ed25519_dalek::SigningKey>>> = OnceLock::new();
    let der = key.inner();
    let parsed = cached(KEYS.get_or_init(Default::default), der, || {
        ed25519_dalek::SigningKey::from_pkcs8_der(der).ok()
    });
    match parsed {
        Some(key) => Ok(Box::new(Ed25519Signer(key))),
        None => Err(ErrorKind::InvalidEddsaKey.into()),
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if *algorithm != Algorithm::EdDSA {
        return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
    }
    static KEYS: OnceLock<RwLock<HashMap<Vec<u8>, ed25519_dalek::VerifyingKey>>> = OnceLock::new();
    let bytes = key.as_bytes();
    let parsed = cached(KEYS.get_or_init(Default::default), bytes, || {
        let raw: &[u8; 32] = bytes.get(..32)?.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(raw).ok()
    });
    match parsed {
        Some(key) => Ok(Box::new(Ed25519Verifier(key))),
        None => Err(ErrorKind::InvalidEddsaKey.into()),
    }
}

struct Ed25519Signer(ed25519_dalek::SigningKey);

impl signature::Signer<Vec<u8>> for Ed25519Signer {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(message).to_bytes().to_vec())
    }
}

impl JwtSigner for Ed25519Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct Ed25519Verifier(ed25519_dalek::VerifyingKey);

impl signature::Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let signature = Signature::from_slice(signature).map_err(|_| signature::Error::new())?;
        // Strict: refuses the malleable and small-order signatures that plain
        // `verify` would let through.
        self.0.verify_strict(message, &signature).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER as STOCK;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

    fn keys() -> (EncodingKey, DecodingKey) {
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let der = key.to_pkcs8_der().unwrap();
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        (EncodingKey::from_ed_der(der.as_bytes()), DecodingKey::from_ed_components(&x).unwrap())
    }

    #[test]
    fn cached_keys_sign_and_verify_like_the_stock_backend() {
        let (encoding, decoding) = keys();
        let (_, other) = keys();
        for message in [&b"header.claims"[..], b"", b"another message"] {
            let ours = super::signer(&Algorithm::EdDSA, &encoding).unwrap().try_sign(message).unwrap();
            let stock = (STOCK.signer_factory)(&Algorithm::EdDSA, &encoding).unwrap().try_sign(message).unwrap();
            assert_eq!(ours, stock, "Ed25519 signatures are deterministic");
            let verify = |key: &DecodingKey, msg: &[u8], sig: &Vec<u8>| super::verifier(&Algorithm::EdDSA, key).unwrap().verify(msg, sig).is_ok();
            assert!(verify(&decoding, message, &ours));
            assert!(!verify(&other, message, &ours), "another key");
            assert!(!verify(&decoding, b"edited", &ours), "another message");
            let mut flipped = ours.clone();
            flipped[0] ^= 1;
            assert!(!verify(&decoding, message, &flipped), "an edited signature");
            assert!(!verify(&decoding, message, &ours[..63].to_vec()), "a short signature");
        }
    }

    #[test]
    fn other_algorithms_go_to_the_stock_backend() {
        let key = EncodingKey::from_secret(b"secret");
        let ours = super::signer(&Algorithm::HS256, &key).unwrap().try_sign(b"m").unwrap();
        let stock = (STOCK.signer_factory)(&Algorithm::HS256, &key).unwrap().try_sign(b"m").unwrap();
        assert_eq!(ours, stock);
    }
}
