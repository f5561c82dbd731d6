//! Password hashing with argon2id on threads of its own, one per hash allowed
//! at once, so a burst of logins cannot starve the server. Each thread keeps
//! its argon2 working memory between hashes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand_core::OsRng;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use super::AuthError;

/// Why a password could not be hashed or checked: never the person's fault,
/// always the server's.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("the argon2 parameters are not valid")]
    Parameters(#[source] argon2::Error),
    #[error("a hashing thread could not be started")]
    Thread(#[source] std::io::Error),
    #[error("argon2 failed")]
    Argon2(#[source] argon2::Error),
    #[error("the hash could not be written as a PHC string")]
    Encoding(#[source] argon2::password_hash::Error),
    #[error("the hashing threads have stopped")]
    Stopped,
    #[error("a hash panicked on its thread")]
    Panicked,
}

impl From<HashingError> for AuthError {
    fn from(err: HashingError) -> Self {
        Self::Hashing(err)
    }
}

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

/// argon2's working memory (`m_cost` KiB), one per hashing thread.
/// Allocating it for every hash, as argon2's own `PasswordHasher` does, means
/// zeroing megabytes that argon2's first pass overwrites anyway, and mapping
/// and unmapping them while other hashes run; that made hashes running side
/// by side slower than one alone.
type WorkingMemory = Vec<Block>;

/// A hash waiting for a hashing thread, to run in that thread's memory.
type Job = Box<dyn FnOnce(&mut WorkingMemory) + Send>;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Hashes waiting for a thread. The threads end when the last clone of
    /// the hasher is dropped.
    jobs: Sender<Job>,
    /// Verified against when the user does not exist, so that answer costs the
    /// same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        concurrency: usize,
    ) -> Result<Self, HashingError> {
        let params = Params::new(memory_kib, iterations, parallelism, None).map_err(HashingError::Parameters)?;
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            concurrency
        };
        let (jobs, waiting) = channel::<Job>();
        let waiting = Arc::new(Mutex::new(waiting));
        for number in 0..concurrency {
            let (waiting, blocks) = (waiting.clone(), params.block_count());
            std::thread::Builder::new()
                .name(format!("argon2-{number}"))
                .spawn(move || hashing_thread(&waiting, blocks))
                .map_err(HashingError::Thread)?;
        }
        let mut hasher = Self {
            params,
            jobs,
            dummy_hash: Arc::from(""),
        };
        let mut random = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        hasher.dummy_hash = hasher.hash(Password::new(hex::encode(random))).await?.into();
        Ok(hasher)
    }

    pub async fn hash(&self, password: Password) -> Result<String, HashingError> {
        let params = self.params.clone();
        self.blocking(move |memory| {
            let salt = SaltString::generate(&mut OsRng);
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt
                .as_salt()
                .decode_b64(&mut salt_bytes)
                .map_err(HashingError::Encoding)?;
            let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
            fill(&argon2, password.expose().as_bytes(), salt_bytes, &mut output, memory)
                .map_err(HashingError::Argon2)?;
            let hash = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(HashingError::Encoding)?,
                salt: Some(salt.as_salt()),
                hash: Some(Output::new(&output).map_err(HashingError::Encoding)?),
            };
            Ok(hash.to_string())
        })
        .await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is
    /// no such user or the user has no password (an empty hash: an account
    /// that signs in with passkeys only): always a mismatch, at the same cost.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<Verification, HashingError> {
        let params = self.params.clone();
        let stored = stored.filter(|hash| !hash.is_empty());
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.blocking(move |memory| {
            let Some(parsed) = StoredHash::parse(&stored) else {
                return Ok(Verification::Mismatch);
            };
            let argon2 = Argon2::new(parsed.algorithm, parsed.version, parsed.params.clone());
            let mut output = vec![0u8; parsed.output.len()];
            let matched = fill(&argon2, password.expose().as_bytes(), &parsed.salt, &mut output, memory).is_ok()
                && bool::from(output.ct_eq(parsed.output.as_bytes()));
            if !(matched && known) {
                return Ok(Verification::Mismatch);
            }
            let current = parsed.algorithm == Algorithm::Argon2id
                && parsed.version == Version::V0x13
                && parsed.params.m_cost() == params.m_cost()
                && parsed.params.t_cost() == params.t_cost()
                && parsed.params.p_cost() == params.p_cost();
            Ok(Verification::Match { needs_rehash: !current })
        })
        .await
    }

    /// Runs `work` on the next free hashing thread, with that thread's
    /// working memory.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WorkingMemory) -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let (done, result) = oneshot::channel();
        let queued = crate::metrics::QueuedHash::queued();
        let job: Job = Box::new(move |memory| {
            queued.started();
            // Nobody waits for this hash any more (a client hung up while it
            // queued): the thread goes on to the next instead.
            if !done.is_closed() {
                let _ = done.send(work(memory));
            }
        });
        self.jobs.send(job).map_err(|_| HashingError::Stopped)?;
        result.await.map_err(|_| HashingError::Panicked)?
    }
}

/// One hashing thread. It takes the next waiting hash as soon as it is done
/// with one, so while logins queue every core keeps hashing, without a round
/// trip through the async runtime between hashes. A hash runs to its end once
/// started, even if its caller has gone: no more hashes run at once than there
/// are threads.
fn hashing_thread(waiting: &Mutex<Receiver<Job>>, blocks: usize) {
    let mut memory = WorkingMemory::new();
    loop {
        let next = waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
        let Ok(job) = next else {
            return;
        };
        // Allocated on this thread's first hash.
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        // A hash that panics fails alone (its caller sees the answer channel
        // closed); the thread and its memory go on to the next.
        let _ = catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
    }
}

/// The parts of a stored PHC string that hashing a candidate password needs.
struct StoredHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    output: Output,
}

impl StoredHash {
    fn parse(stored: &str) -> Option<Self> {
        let parsed = PasswordHash::new(stored).ok()?;
        let version = match parsed.version {
            Some(version) => Version::try_from(version).ok()?,
            None => Version::default(),
        };
        let mut salt = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?.to_vec();
        Some(Self {
            algorithm: Algorithm::try_from(parsed.algorithm).ok()?,
            version,
            params: Params::try_from(&parsed).ok()?,
            salt,
            output: parsed.hash?,
        })
    }
}

/// Hashes into `output` in `memory`. A stored hash with a higher memory cost
/// than configured (from before the cost was lowered) gets memory of its own,
/// not kept.
///
/// After a single pass, the first blocks of each lane are cheap functions of
/// the password (no memory-hard work between): kept memory is cleared then.
/// After two or more passes every block depends on the whole first pass.
fn fill(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
    memory: &mut WorkingMemory,
) -> Result<(), argon2::Error> {
    let params = argon2.params();
    let Some(memory) = memory.get_mut(..params.block_count()) else {
        return argon2.hash_password_into(password, salt, output);
    };
    let result = argon2.hash_password_into_with_memory(password, salt, output, &mut *memory);
    if params.t_cost() < 2 {
        memory.fill(Block::default());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hasher(m: u32) -> PasswordHasher {
        PasswordHasher::new(m, 1, 1, 2).await.unwrap()
    }

    async fn check(h: &PasswordHasher, password: &str, stored: &str) -> Verification {
        h.verify(Password::new(password.into()), Some(stored.into()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let h = hasher(1024).await;
        let a = h.hash(Password::new("s3cret pass".into())).await.unwrap();
        let b = h.hash(Password::new("s3cret pass".into())).await.unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        let ok = check(&h, "s3cret pass", &a).await;
        assert_eq!(ok, Verification::Match { needs_rehash: false });
        let bad = check(&h, "wrong", &a).await;
        assert_eq!(bad, Verification::Mismatch);
    }

    #[tokio::test]
    async fn unknown_user_never_matches_even_the_dummy_password() {
        let h = hasher(1024).await;
        let result = h.verify(Password::new(String::new()), None).await.unwrap();
        assert_eq!(result, Verification::Mismatch);
    }

    #[tokio::test]
    async fn an_account_without_a_password_never_matches_and_costs_a_whole_verify() {
        let h = hasher(1024).await;
        for tried in ["", "anything"] {
            let result = h
                .verify(Password::new(tried.into()), Some(String::new()))
                .await
                .unwrap();
            assert_eq!(result, Verification::Mismatch, "{tried:?}");
        }
        // The same hashing work as a wrong password against a real hash:
        // medians of interleaved rounds.
        let real = h.hash(Password::new("a real one".into())).await.unwrap();
        let (mut empty, mut wrong) = (Vec::new(), Vec::new());
        for _ in 0..31 {
            for (stored, times) in [(String::new(), &mut empty), (real.clone(), &mut wrong)] {
                let started = std::time::Instant::now();
                h.verify(Password::new("wrong".into()), Some(stored))
                    .await
                    .unwrap();
                times.push(started.elapsed());
            }
        }
        empty.sort();
        wrong.sort();
        let (empty, wrong) = (empty[15], wrong[15]);
        assert!(
            empty * 2 > wrong && wrong * 2 > empty,
            "no password {empty:?}, a wrong one {wrong:?}"
        );
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let old = hasher(1024).await.hash(Password::new("pw".into())).await.unwrap();
        let result = check(&hasher(2048).await, "pw", &old).await;
        assert_eq!(result, Verification::Match { needs_rehash: true });
    }

    #[tokio::test]
    async fn a_costlier_stored_hash_still_verifies_and_asks_for_a_rehash() {
        let costly = hasher(4096).await.hash(Password::new("pw".into())).await.unwrap();
        let cheap = hasher(1024).await;
        let result = check(&cheap, "pw", &costly).await;
        assert_eq!(result, Verification::Match { needs_rehash: true });
        let wrong = check(&cheap, "pw!", &costly).await;
        assert_eq!(wrong, Verification::Mismatch);
    }

    #[tokio::test]
    async fn hashes_are_the_ones_argon2s_own_hasher_makes_and_checks() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = hasher(1024).await;
        let params = Params::new(1024, 1, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"shared secret", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let ok = check(&h, "shared secret", &theirs).await;
        assert_eq!(ok, Verification::Match { needs_rehash: false });
        let bad = check(&h, "shared secreT", &theirs).await;
        assert_eq!(bad, Verification::Mismatch);

        let ours = h.hash(Password::new("shared secret".into())).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"shared secret", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"shared secreT", &parsed).is_err());
    }

    #[tokio::test]
    async fn hashes_running_at_once_do_not_mix_their_memory() {
        let h = hasher(1024).await;
        let hashes =
            futures_util::future::join_all((0..8).map(|i| h.hash(Password::new(format!("password {i}"))))).await;
        for (i, hash) in hashes.into_iter().enumerate() {
            let hash = hash.unwrap();
            let ok = check(&h, &format!("password {i}"), &hash).await;
            assert_eq!(ok, Verification::Match { needs_rehash: false }, "password {i}");
        }
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_there_are_threads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let h = hasher(1024).await;
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..6).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            h.blocking(move |_| {
                most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        });
        for done in futures_util::future::join_all(jobs).await {
            done.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hash_whose_caller_has_gone_is_never_started() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let h = PasswordHasher::new(1024, 1, 1, 1).await.unwrap();
        let busy = tokio::spawn({
            let h = h.clone();
            async move {
                h.blocking(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    Ok(())
                })
                .await
            }
        });
        // The busy hash goes first and takes the only thread.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let started = started.clone();
            let abandoned = h.blocking(move |_| Ok(started.fetch_add(1, Ordering::SeqCst)));
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), abandoned).await;
        }
        busy.await.unwrap().unwrap();
        // Queued after the abandoned ones: they have had their turn.
        h.hash(Password::new("pw".into())).await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn passwords_do_not_print() {
        assert_eq!(format!("{:?}", Password::new("hunter2".into())), "Password(<redacted>)");
    }
}
