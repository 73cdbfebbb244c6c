//! PASSWORD authentication against a bcrypt file (`file.password-file`, as `htpasswd -B` writes
//! it). Production builds only: the simulation has no clients with passwords.
//!
//! A bcrypt check at cost 10 is ~50 ms of CPU. It runs on tokio's blocking pool (never on the
//! threads that serve requests), at most [`VERIFICATIONS_CONCURRENT_MAX`] at once (so a flood of
//! wrong passwords costs a bounded share of the CPU), and a successful check is remembered for
//! [`VERIFIED_TTL_MS`] in a bounded cache keyed by a SHA-256 of user and password (never the
//! password itself): a query's many polls then cost one check, not one each.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::client_security::PasswordFile;
use crate::runtime::Clock;

/// How long a successful check is reused.
pub const VERIFIED_TTL_MS: u64 = 60_000;
/// Entries the cache holds at most (each is 40 bytes).
pub const VERIFIED_CACHE_ENTRIES_MAX: usize = 4_096;
/// bcrypt checks running at once.
pub const VERIFICATIONS_CONCURRENT_MAX: usize = 2;
/// Checked in place of an unknown user's hash, so that an unknown user takes as long to refuse
/// as a wrong password (no user enumeration by timing). Cost 10 like htpasswd's; the password
/// it hashes was random and thrown away.
const UNKNOWN_USER_HASH: &str = "$2y$10$axR82cXOb185k4HuS4mcBuX7uP3MhG8YmANjR.EsCigccqACFeU0u";

/// The outcome of one check. Unknown user and wrong password are told apart for the metrics
/// only: the client gets the same answer for both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// `from_cache`: a check of the same user and password succeeded less than
    /// [`VERIFIED_TTL_MS`] ago (no bcrypt run).
    Valid { from_cache: bool },
    UnknownUser,
    WrongPassword,
    /// The check itself failed (a damaged hash, the blocking pool gone).
    Failed(String),
}

/// Successful checks, by key, with the node-monotonic ms at which each stops counting.
#[derive(Default)]
struct VerifiedCache {
    expires_at_ms: BTreeMap<[u8; 32], u64>,
}

impl VerifiedCache {
    fn is_fresh(&self, key: &[u8; 32], now_ms: u64) -> bool {
        self.expires_at_ms.get(key).is_some_and(|&expires_at_ms| now_ms < expires_at_ms)
    }

    /// Remembers `key` until `now_ms + VERIFIED_TTL_MS`. When full, expired entries go first,
    /// then the one closest to expiring: the cache never grows past its bound.
    fn insert(&mut self, key: [u8; 32], now_ms: u64) {
        if self.expires_at_ms.len() >= VERIFIED_CACHE_ENTRIES_MAX && !self.expires_at_ms.contains_key(&key) {
            self.expires_at_ms.retain(|_, expires_at_ms| now_ms < *expires_at_ms);
            if self.expires_at_ms.len() >= VERIFIED_CACHE_ENTRIES_MAX {
                let oldest = self.expires_at_ms.iter().min_by_key(|(_, expires_at_ms)| **expires_at_ms).map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    self.expires_at_ms.remove(&oldest);
                }
            }
        }
        self.expires_at_ms.insert(key, now_ms.saturating_add(VERIFIED_TTL_MS));
    }

    fn len(&self) -> usize {
        self.expires_at_ms.len()
    }
}

/// The cache key of a user and password: length-prefixed so that `("ab", "c")` and `("a", "bc")`
/// differ.
fn cache_key(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((user.len() as u64).to_be_bytes());
    hasher.update(user.as_bytes());
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

pub struct PasswordAuthenticator {
    file: PasswordFile,
    clock: Clock,
    verified: Mutex<VerifiedCache>,
    verifications: Semaphore,
}

impl PasswordAuthenticator {
    pub fn new(file: PasswordFile, clock: Clock) -> PasswordAuthenticator {
        PasswordAuthenticator {
            file,
            clock,
            verified: Mutex::new(VerifiedCache::default()),
            verifications: Semaphore::new(VERIFICATIONS_CONCURRENT_MAX),
        }
    }

    /// Checks `user`'s `password` (see the module docs for where the work runs).
    pub async fn check(&self, user: &str, password: &str) -> PasswordCheck {
        let key = cache_key(user, password);
        if crate::runtime::lock(&self.verified).is_fresh(&key, self.clock.now_ms()) {
            return PasswordCheck::Valid { from_cache: true };
        }
        let (hash, known) = match self.file.hash_of(user) {
            Some(hash) => (hash.to_string(), true),
            None => (UNKNOWN_USER_HASH.to_string(), false),
        };
        let Ok(_permit) = self.verifications.acquire().await else {
            return PasswordCheck::Failed("the verification semaphore is closed".into());
        };
        let password = password.to_string();
        let verified = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash)).await;
        match verified {
            Ok(Ok(true)) if known => {
                crate::runtime::lock(&self.verified).insert(key, self.clock.now_ms());
                PasswordCheck::Valid { from_cache: false }
            }
            Ok(Ok(_)) if !known => PasswordCheck::UnknownUser,
            Ok(Ok(_)) => PasswordCheck::WrongPassword,
            Ok(Err(error)) => PasswordCheck::Failed(format!("bcrypt: {error}")),
            Err(error) => PasswordCheck::Failed(format!("the bcrypt check did not run: {error}")),
        }
    }

    /// Successful checks remembered now (for tests and diagnostics).
    pub fn cached_entries(&self) -> usize {
        crate::runtime::lock(&self.verified).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `htpasswd -nbB -C 10 alice secret`, and a cost-4 hash of "pw" (fast) for bob.
    const FILE: &str = "alice:$2y$10$A3CbcWVMbIBz0Y21PeNJNugvnP9e5Ci2yHSOcI9C9yjKMgBcM9Eju\n";

    fn authenticator() -> PasswordAuthenticator {
        let bob = bcrypt::hash_with_result("pw", 4).expect("hash").format_for_version(bcrypt::Version::TwoY);
        let file = PasswordFile::parse(&format!("{FILE}bob:{bob}\n"), "pw.db").expect("valid file");
        PasswordAuthenticator::new(file, Clock::new())
    }

    #[tokio::test]
    async fn checks_htpasswd_hashes_and_caches_only_successes() {
        let auth = authenticator();
        assert_eq!(auth.check("alice", "secret").await, PasswordCheck::Valid { from_cache: false });
        assert_eq!(auth.check("alice", "Secret").await, PasswordCheck::WrongPassword);
        assert_eq!(auth.check("bob", "pw").await, PasswordCheck::Valid { from_cache: false });
        assert_eq!(auth.check("carol", "secret").await, PasswordCheck::UnknownUser);
        assert_eq!(auth.cached_entries(), 2, "only the two successes are remembered");
        assert_eq!(auth.check("alice", "secret").await, PasswordCheck::Valid { from_cache: true });
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let mut cache = VerifiedCache::default();
        for index in 0..(VERIFIED_CACHE_ENTRIES_MAX as u64 + 10) {
            cache.insert(cache_key("user", &index.to_string()), index);
        }
        assert_eq!(cache.len(), VERIFIED_CACHE_ENTRIES_MAX);
        assert!(!cache.is_fresh(&cache_key("user", "0"), 20), "the oldest went first");
        let newest = cache_key("user", &(VERIFIED_CACHE_ENTRIES_MAX as u64 + 9).to_string());
        assert!(cache.is_fresh(&newest, 5_000));
        assert!(!cache.is_fresh(&newest, VERIFIED_CACHE_ENTRIES_MAX as u64 + 9 + VERIFIED_TTL_MS), "expired");
        assert_ne!(cache_key("ab", "c"), cache_key("a", "bc"));
    }
}
