//! Secret API keys for host apps.
//!
//! A key is `latch_sk_` followed by 43 base64url characters (256 random bits); the prefix lets
//! secret scanners find leaked keys. Only its SHA-256 is stored: for random keys a fast hash is
//! as strong as a slow one, and the check sits on the hot path. Verification compares hashes in
//! constant time, and successful checks are cached for a few seconds so the hot path does not
//! touch the database; revocation reaches other replicas within that window.

use super::AuthError;
use crate::store::Store;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

/// The prefix every key starts with.
pub const PREFIX: &str = "latch_sk_";
const BODY_LEN: usize = 43;

/// How long a verified key is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// A freshly generated key: the plaintext (shown once) and what is stored.
pub struct NewApiKey {
    /// The key to hand to the operator, once.
    pub plaintext: String,
    /// SHA-256 of the plaintext.
    pub hash: [u8; 32],
}

/// Generates a key.
pub fn generate() -> NewApiKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let plaintext = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&plaintext);
    NewApiKey { plaintext, hash }
}

/// SHA-256 of a presented key.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `key` has the shape of a Latch key (cheap check before hashing).
pub fn well_formed(key: &str) -> bool {
    key.strip_prefix(PREFIX).is_some_and(|body| {
        body.len() == BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// An authenticated host app.
#[derive(Debug, Clone)]
pub struct HostIdentity {
    /// `key_…`.
    pub key_id: Arc<str>,
    /// The key's name, used as the actor in the activity trail.
    pub key_name: Arc<str>,
}

/// Verifies API keys, with a short-lived cache of positive answers.
#[derive(Debug, Default)]
pub struct ApiKeyVerifier {
    cache: RwLock<HashMap<[u8; 32], (HostIdentity, Instant)>>,
    /// Bumped by [`ApiKeyVerifier::forget_all`]: a check that began before it caches nothing.
    forgotten: std::sync::atomic::AtomicU64,
}

impl ApiKeyVerifier {
    /// Checks a presented key.
    pub async fn verify(&self, store: &Store, presented: &str) -> Result<HostIdentity, AuthError> {
        if !well_formed(presented) {
            return Err(AuthError::InvalidApiKey);
        }
        let digest = hash(presented);
        if let Ok(cache) = self.cache.read()
            && let Some((identity, checked)) = cache.get(&digest)
            && checked.elapsed() < CACHE_TTL
        {
            return Ok(identity.clone());
        }
        let epoch = self.forgotten.load(std::sync::atomic::Ordering::Acquire);
        let row = store.find_api_key_by_hash(&digest).await?.ok_or(AuthError::InvalidApiKey)?;
        // The lookup matched on the hash already; the constant-time comparison keeps the check
        // free of timing differences should the lookup ever become a prefix or range scan.
        if !bool::from(row.key_hash.as_slice().ct_eq(&digest)) {
            return Err(AuthError::InvalidApiKey);
        }
        let identity = HostIdentity { key_id: row.id.into(), key_name: row.name.into() };
        if let Ok(mut cache) = self.cache.write()
            && self.forgotten.load(std::sync::atomic::Ordering::Acquire) == epoch
        {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(digest, (identity.clone(), Instant::now()));
        }
        Ok(identity)
    }

    /// Forgets cached keys (after a revocation here or, told by `NOTIFY`, on another replica).
    pub fn forget_all(&self) {
        self.forgotten.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(well_formed(&a.plaintext));
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, hash(&a.plaintext));
    }

    #[test]
    fn malformed_keys_are_refused_early() {
        for bad in [
            "",
            "latch_sk_",
            "sk_live_abc",
            &format!("latch_sk_{}", "a".repeat(44)),
            &format!("latch_sk_{}é", "a".repeat(42)),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
