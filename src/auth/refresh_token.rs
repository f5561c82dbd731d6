//! Refresh tokens: 256 random bits, handed to the browser once (in an
//! `HttpOnly` cookie), stored only as a hash, so a copy of the database
//! cannot be used to refresh (RFC 6749 §10.4, RFC 9700 §4.14).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

const BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const ENCODED_LEN: usize = 43;

#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only what [`generate`](Self::generate) produces.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = text.len() == ENCODED_LEN
            && URL_SAFE_NO_PAD.decode(text).is_ok_and(|bytes| bytes.len() == BYTES);
        well_formed.then(|| Self(text.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps: SHA-256, hex. The token has 256 bits of entropy,
    /// so a fast hash is enough; lookups by hash need no constant-time compare.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::new_with_prefix(b"gatehouse/refresh-token/v1\0").chain_update(&self.0).finalize())
    }

    /// Seals `successor` so that only the holder of `self` can recover it: the
    /// one-time pad is derived from `self`, which the database never sees, and
    /// each token has exactly one successor.
    pub fn seal(&self, successor: &RefreshToken) -> String {
        let pad = self.pad();
        let plain = successor.0.as_bytes();
        hex::encode(plain.iter().zip(pad.iter().cycle()).map(|(a, b)| a ^ b).collect::<Vec<_>>())
    }

    pub fn unseal(&self, sealed: &str) -> Option<RefreshToken> {
        let bytes = hex::decode(sealed).ok()?;
        let pad = self.pad();
        let plain: Vec<u8> = bytes.iter().zip(pad.iter().cycle()).map(|(a, b)| a ^ b).collect();
        RefreshToken::parse(std::str::from_utf8(&plain).ok()?)
    }

    fn pad(&self) -> [u8; 64] {
        let first = Sha256::new_with_prefix(b"gatehouse/successor-pad/v1/0\0").chain_update(&self.0).finalize();
        let second = Sha256::new_with_prefix(b"gatehouse/successor-pad/v1/1\0").chain_update(&self.0).finalize();
        let mut pad = [0u8; 64];
        pad[..32].copy_from_slice(&first);
        pad[32..].copy_from_slice(&second);
        pad
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_parse_back() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ENCODED_LEN);
        assert_eq!(RefreshToken::parse(a.expose()), Some(a.clone()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn garbage_does_not_parse() {
        for bad in ["", "abc", &"A".repeat(42), &"!".repeat(43), &"A".repeat(44)] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_the_predecessor_unseals_the_successor() {
        let old = RefreshToken::generate();
        let new = RefreshToken::generate();
        let sealed = old.seal(&new);
        assert!(!sealed.contains(new.expose()));
        assert_eq!(old.unseal(&sealed), Some(new));
        assert_eq!(RefreshToken::generate().unseal(&sealed), None);
        assert_eq!(old.unseal("zz"), None);
    }

    #[test]
    fn tokens_do_not_print() {
        assert_eq!(format!("{:?}", RefreshToken::generate()), "RefreshToken(<redacted>)");
    }
}
