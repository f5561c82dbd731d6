//! Password hashing with argon2id, off the async runtime and with bounded
//! concurrency so a burst of logins cannot starve the server.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use tokio::sync::Semaphore;

use super::AuthError;

/// A password held only as long as needed; never printed.
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Match { needs_rehash: bool },
    Mismatch,
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that answer costs the
    /// same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(memory_kib: u32, iterations: u32, parallelism: u32, concurrency: usize) -> Result<Self, AuthError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            concurrency
        };
        let mut hasher = Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy_hash: Arc::from(""),
        };
        let mut random = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        hasher.dummy_hash = hasher.hash(Password::new(hex(&random))).await?.into();
        Ok(hasher)
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    pub async fn hash(&self, password: Password) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Self::argon2(params)
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| AuthError::Internal(format!("argon2: {e}")))
        })
        .await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is
    /// no such user (always a mismatch, at the same cost).
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<Verification, AuthError> {
        let params = self.params.clone();
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(Verification::Mismatch);
            };
            let matched = Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok();
            if !(matched && known) {
                return Ok(Verification::Mismatch);
            }
            let current = parsed.algorithm.as_str() == "argon2id"
                && Params::try_from(&parsed).is_ok_and(|p| {
                    p.m_cost() == params.m_cost() && p.t_cost() == params.t_cost() && p.p_cost() == params.p_cost()
                });
            Ok(Verification::Match { needs_rehash: !current })
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("hashing pool closed".to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task: {e}")))?
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hasher(m: u32) -> PasswordHasher {
        PasswordHasher::new(m, 1, 1, 2).await.unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let h = hasher(1024).await;
        let a = h.hash(Password::new("s3cret pass".into())).await.unwrap();
        let b = h.hash(Password::new("s3cret pass".into())).await.unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        let ok = h.verify(Password::new("s3cret pass".into()), Some(a.clone())).await.unwrap();
        assert_eq!(ok, Verification::Match { needs_rehash: false });
        let bad = h.verify(Password::new("wrong".into()), Some(a)).await.unwrap();
        assert_eq!(bad, Verification::Mismatch);
    }

    #[tokio::test]
    async fn unknown_user_never_matches_even_the_dummy_password() {
        let h = hasher(1024).await;
        let result = h.verify(Password::new(String::new()), None).await.unwrap();
        assert_eq!(result, Verification::Mismatch);
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let old = hasher(1024).await.hash(Password::new("pw".into())).await.unwrap();
        let result = hasher(2048).await.verify(Password::new("pw".into()), Some(old)).await.unwrap();
        assert_eq!(result, Verification::Match { needs_rehash: true });
    }

    #[test]
    fn passwords_do_not_print() {
        assert_eq!(format!("{:?}", Password::new("hunter2".into())), "Password(<redacted>)");
    }
}
