//! Password hashing with argon2id, off the async executor and bounded in concurrency.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use memory::MemoryPool;
use threads::HashThreads;

mod memory;
mod threads;

use super::CryptoError;
use crate::domain::Password;

/// Salt length: 16 bytes, the argon2 recommendation (RFC 9106 §3.1).
const SALT_LEN: usize = 16;

/// How long the hashing threads wait without a hash before the pool's working memory is
/// erased and goes back to the system (`MemoryPool::release`): RSS returns near its idle
/// value this long after a burst of sign-ins, and the first sign-in after a quiet spell
/// touches its 19 MiB afresh (page faults, a few milliseconds against a 15 ms hash; known
/// and unknown users alike, so it tells only whether anyone signed in lately).
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// argon2id cost parameters (RFC 9106 §4).
#[derive(Debug, Clone, Copy)]
pub struct PasswordParams {
    /// Memory cost in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

/// Hashes and verifies passwords. Cheap to clone (shares its semaphore and dummy hash).
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// Working memory for `max_concurrent` hashes, reused.
    memory: Arc<MemoryPool>,
    dummy_hash: Arc<PasswordHash>,
    permits: Arc<Semaphore>,
    /// One thread per permit, below the request workers' priority.
    threads: Arc<HashThreads>,
    verifications: Arc<AtomicU64>,
    /// Hashes admitted (running or waiting for a permit), and the most admitted at once.
    admitted: Arc<AtomicUsize>,
    max_admitted: usize,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.argon2.params())
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// argon2id v0x13 with `params`; at most `max_concurrent` hashes run at once and at most
    /// `4 * max_concurrent` more wait (see [`PasswordHasher::with_queue`]).
    pub fn new(params: PasswordParams, max_concurrent: usize) -> Result<Self, CryptoError> {
        Self::with_queue(params, max_concurrent, max_concurrent.saturating_mul(4))
    }

    /// argon2id v0x13 with `params`; at most `max_concurrent` hashes run at once and at most
    /// `max_queued` more wait for a permit: a further request fails at once with
    /// [`CryptoError::Busy`] instead of queueing without limit. Computes a dummy hash with
    /// the same parameters now, so unknown users cost as much as real ones.
    pub fn with_queue(
        params: PasswordParams,
        max_concurrent: usize,
        max_queued: usize,
    ) -> Result<Self, CryptoError> {
        Self::build(params, max_concurrent, max_queued, IDLE_RELEASE)
    }

    /// [`PasswordHasher::with_queue`], with the memory given back after `idle_release`.
    fn build(
        params: PasswordParams,
        max_concurrent: usize,
        max_queued: usize,
        idle_release: std::time::Duration,
    ) -> Result<Self, CryptoError> {
        if max_concurrent == 0 {
            return Err(CryptoError::PasswordHash(
                "max_concurrent must be at least 1".to_owned(),
            ));
        }
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
        let blocks = params.block_count();
        let memory = Arc::new(MemoryPool::new(max_concurrent, blocks));
        let idle_memory = Arc::clone(&memory);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        // The dummy hash is computed in a scratch buffer that is freed right away (a block
        // this large is mapped and unmapped on its own), so an idle server holds none of
        // the pool's memory: the pool's blocks are allocated by the first sign-ins.
        let scratch = MemoryPool::new(1, blocks);
        let dummy_hash = hash_blocking(&argon2, &scratch, b"latchkey dummy password")?;
        drop(scratch);
        let dummy_hash =
            PasswordHash::new(&dummy_hash).map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
        Ok(Self {
            argon2,
            memory,
            dummy_hash: Arc::new(dummy_hash),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            threads: Arc::new(HashThreads::start(
                max_concurrent,
                idle_release,
                Arc::new(move || idle_memory.release()),
            )?),
            verifications: Arc::new(AtomicU64::new(0)),
            admitted: Arc::new(AtomicUsize::new(0)),
            max_admitted: max_concurrent.saturating_add(max_queued),
        })
    }

    /// Hashes a password with a fresh random 16-byte salt; returns the PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String, CryptoError> {
        let password = zeroize::Zeroizing::new(password.expose().as_bytes().to_vec());
        let argon2 = self.argon2.clone();
        let memory = Arc::clone(&self.memory);
        let place = self.reserve()?;
        self.run_blocking(place, move || hash_blocking(&argon2, &memory, &password))
            .await?
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored hash (unknown user)
    /// or an unparseable one, the dummy hash is checked instead and the answer is `false`,
    /// so the time taken does not reveal which case it was. The parameters come from the
    /// stored string, so hashes made with older parameters still verify.
    pub async fn verify(
        &self,
        stored: Option<&str>,
        password: &Password,
    ) -> Result<bool, CryptoError> {
        let place = self.reserve()?;
        self.verify_in(place, stored, password).await
    }

    /// [`PasswordHasher::verify`] in a place taken before (`reserve`): it cannot be
    /// refused as `Busy` any more.
    pub async fn verify_in(
        &self,
        place: Place,
        stored: Option<&str>,
        password: &Password,
    ) -> Result<bool, CryptoError> {
        let password = zeroize::Zeroizing::new(password.expose().as_bytes().to_vec());
        let stored = stored.map(str::to_owned);
        let dummy = Arc::clone(&self.dummy_hash);
        let count = Arc::clone(&self.verifications);
        let memory = Arc::clone(&self.memory);
        self.run_blocking(place, move || {
            let real = stored.as_deref().and_then(|s| PasswordHash::new(s).ok());
            match real {
                Some(hash) => argon2_verify(&memory, &password, &hash, &count),
                None => {
                    // Same work as a real check; the result is ignored. An unknown user, a
                    // user without a password and a corrupt hash each cost one verification.
                    let _ = argon2_verify(&memory, &password, &dummy, &count);
                    false
                }
            }
        })
        .await
    }

    /// Whether a hash asked for now would be admitted (running or waiting for a permit)
    /// rather than refused with [`CryptoError::Busy`]. Reads, takes nothing.
    pub fn has_room(&self) -> bool {
        self.admitted.load(Ordering::Acquire) < self.max_admitted
    }

    /// How many places are taken (hashes running or queued, and places reserved).
    pub fn places_taken(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Takes a place among the hashes admitted (running or queued), or answers
    /// [`CryptoError::Busy`] at once when every place is taken. A sign-in takes its place
    /// before the throttle counts its attempt (`service::login::password`): an attempt the
    /// server is too busy to check then costs no write and is answered at once, and no
    /// more attempts wait for the throttle than can be hashed after it. The place is given
    /// back when it is dropped, used or not.
    pub fn reserve(&self) -> Result<Place, CryptoError> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_admitted).then_some(n + 1)
            })
            .map_err(|_| CryptoError::Busy)?;
        Ok(Place {
            admitted: Arc::clone(&self.admitted),
        })
    }

    /// How many argon2 verifications this hasher has run, real and dummy: lets tests see
    /// that an unknown user costs the same work as a wrong password.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// In its `place`, acquires a permit first (bounding memory: each run holds
    /// `memory_kib`), then runs `f` on a hashing thread (see `threads`) so async workers
    /// never stall on argon2.
    async fn run_blocking<T, F>(&self, place: Place, f: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        debug_assert!(
            Arc::ptr_eq(&place.admitted, &self.admitted),
            "a place of another hasher"
        );
        let _place = place;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| CryptoError::TaskJoin(e.to_string()))?;
        self.threads
            .run(move || {
                let out = f();
                drop(permit);
                out
            })
            .await
    }
}

/// A place among the hashes admitted (running or queued), from
/// [`PasswordHasher::reserve`]; given back on drop, also when the waiting request is
/// cancelled.
#[derive(Debug)]
pub struct Place {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One argon2 verification, counted (see [`PasswordHasher::verifications`]): the hash is
/// recomputed with the stored string's algorithm, version, parameters and salt into pooled
/// memory, and compared with the stored output in constant time.
fn argon2_verify(
    memory: &MemoryPool,
    password: &[u8],
    hash: &PasswordHash,
    count: &AtomicU64,
) -> bool {
    count.fetch_add(1, Ordering::Relaxed);
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    let computed = memory.with(needed, |blocks| {
        argon2.hash_password_into_with_memory(password, salt, &mut out, blocks)
    });
    computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Hashes `password` with a fresh random salt into pooled memory; returns the PHC string.
fn hash_blocking(
    argon2: &Argon2<'_>,
    memory: &MemoryPool,
    password: &[u8],
) -> Result<String, CryptoError> {
    let failed = |e: &dyn std::fmt::Display| CryptoError::PasswordHash(e.to_string());
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| CryptoError::Random)?;
    let params = argon2.params();
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut out = zeroize::Zeroizing::new(vec![0u8; len]);
    memory
        .with(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &salt, &mut out, blocks)
        })
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests;
