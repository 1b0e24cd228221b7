//! Encryption at rest: every token, client secret, PKCE verifier and signing key passes through
//! here on its way to and from the store, which only ever sees ciphertext.
//!
//! Envelope: `0x01 | key_id_len | key_id | nonce(24) | ciphertext‖tag`, XChaCha20-Poly1305.
//! The associated data is `(table, row id, column, key id)`, so a ciphertext copied into another
//! row or column fails to open instead of handing one user's token to another. The key id inside
//! the envelope lets a master key be rotated: old envelopes name the key that opens them.
//! XChaCha's 192-bit random nonces need no counter, so replicas can seal concurrently.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

mod rotate;
mod secret;
pub use rotate::{RotateError, Rotation, rotate};
pub use secret::Secret;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Where a ciphertext lives; bound into it as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// Table name.
    pub table: &'a str,
    /// Primary key of the row.
    pub row: &'a str,
    /// Column name.
    pub column: &'a str,
}

impl<'a> Slot<'a> {
    /// A slot in `table`, row `row`, column `column` (tests; code names a [`Sealed`] column).
    #[cfg(test)]
    pub(crate) fn new(table: &'a str, row: &'a str, column: &'a str) -> Self {
        Self { table, row, column }
    }
}

/// Every sealed column, once: where its ciphertexts live (bound into each as associated data)
/// and which of them `latch keys rotate` re-seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// `connections.access_token`.
    AccessToken,
    /// `connections.refresh_token`.
    RefreshToken,
    /// `connections.user_access_token`: the installing user's token besides the bot's (Slack).
    UserAccessToken,
    /// `connections.user_refresh_token`.
    UserRefreshToken,
    /// `connections.incoming_webhook_url`: Slack's webhook URL, a credential.
    IncomingWebhookUrl,
    /// `provider_secrets.client_secret` (keyed by provider).
    ClientSecret,
    /// `provider_signing_secrets.signing_secret` (keyed by provider): verifies pushed events.
    SigningSecret,
    /// `signing_keys.private_key`.
    SigningKey,
    /// `flows.pkce_verifier`.
    PkceVerifier,
    /// `webhook_endpoints.secret`.
    WebhookSecret,
    /// `webhook_endpoints.previous_secret` (during a rotation's overlap).
    PreviousWebhookSecret,
    /// `vault_keys.check_value`: sealed under its own key, so never re-sealed.
    KeyCheck,
}

impl Sealed {
    /// The columns re-sealed under the active key by a rotation.
    pub const ROTATED: &'static [Sealed] = &[
        Sealed::AccessToken,
        Sealed::RefreshToken,
        Sealed::UserAccessToken,
        Sealed::UserRefreshToken,
        Sealed::IncomingWebhookUrl,
        Sealed::ClientSecret,
        Sealed::SigningSecret,
        Sealed::SigningKey,
        Sealed::PkceVerifier,
        Sealed::WebhookSecret,
        Sealed::PreviousWebhookSecret,
    ];

    /// `(table, id column, column)`.
    pub const fn location(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Sealed::AccessToken => ("connections", "id", "access_token"),
            Sealed::RefreshToken => ("connections", "id", "refresh_token"),
            Sealed::UserAccessToken => ("connections", "id", "user_access_token"),
            Sealed::UserRefreshToken => ("connections", "id", "user_refresh_token"),
            Sealed::IncomingWebhookUrl => ("connections", "id", "incoming_webhook_url"),
            Sealed::ClientSecret => ("provider_secrets", "provider", "client_secret"),
            Sealed::SigningSecret => ("provider_signing_secrets", "provider", "signing_secret"),
            Sealed::SigningKey => ("signing_keys", "id", "private_key"),
            Sealed::PkceVerifier => ("flows", "id", "pkce_verifier"),
            Sealed::WebhookSecret => ("webhook_endpoints", "id", "secret"),
            Sealed::PreviousWebhookSecret => ("webhook_endpoints", "id", "previous_secret"),
            Sealed::KeyCheck => ("vault_keys", "key_id", "check_value"),
        }
    }

    /// The slot of this column in row `row`.
    pub fn slot(self, row: &str) -> Slot<'_> {
        let (table, _, column) = self.location();
        Slot { table, row, column }
    }
}

/// Why a ciphertext could not be opened or a key not loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    /// The envelope is truncated or has an unknown version.
    #[error("malformed ciphertext envelope")]
    Malformed,
    /// The envelope was sealed under a master key that is not configured.
    #[error("ciphertext sealed under master key id {0}, which is not configured")]
    UnknownKey(String),
    /// Authentication failed: wrong key, tampered bytes, or moved to another row/column.
    #[error("ciphertext failed authentication (tampered, moved to another row, or wrong key)")]
    Integrity,
    /// A master key could not be parsed.
    #[error("master key must be 32 bytes, base64-encoded: {0}")]
    BadKey(String),
}

/// A 256-bit master key.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Parses a base64 (standard or URL-safe) encoding of 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, VaultError> {
        let trimmed = encoded.trim();
        let bytes = STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
            .map_err(|_| VaultError::BadKey("not valid base64".into()))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| VaultError::BadKey(format!("decoded to {} bytes", b.len())))?;
        Ok(Self::from_bytes(&key))
    }

    /// A key from raw bytes. The id is derived from the key, so the same key always has the same
    /// id and a wrong key is recognised before anything is decrypted.
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let digest = Sha256::new_with_prefix(b"latch master key id\0").chain_update(key).finalize();
        let id = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Self { id, cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// A fresh random key, base64-encoded (for `latch demo` and `latch keys generate`).
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// The key id stored in every envelope it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The key ring: one active key that seals, any number of older keys that still open.
#[derive(Debug, Clone)]
pub struct Vault {
    active: MasterKey,
    keys: HashMap<String, MasterKey>,
}

impl Vault {
    /// A vault sealing with `active` and opening with it or any of `previous`.
    pub fn new(active: MasterKey, previous: impl IntoIterator<Item = MasterKey>) -> Self {
        let mut keys: HashMap<String, MasterKey> = previous.into_iter().map(|k| (k.id.clone(), k)).collect();
        keys.insert(active.id.clone(), active.clone());
        Self { active, keys }
    }

    /// The id of the key that seals.
    pub fn active_key_id(&self) -> &str {
        self.active.id()
    }

    /// Whether a key with this id is loaded.
    pub fn has_key(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// Encrypts `plaintext` for `slot` under the active key.
    pub fn seal(&self, slot: Slot<'_>, plaintext: &[u8]) -> Vec<u8> {
        let key = &self.active;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(slot, &key.id);
        // Encryption with a valid key and nonce size cannot fail; an empty vec would fail to open.
        let ciphertext =
            key.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad }).unwrap_or_default();
        let mut out = Vec::with_capacity(2 + key.id.len() + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Encrypts a string secret.
    pub fn seal_str(&self, slot: Slot<'_>, plaintext: &str) -> Vec<u8> {
        self.seal(slot, plaintext.as_bytes())
    }

    /// Decrypts an envelope sealed for exactly this `slot`.
    pub fn open(&self, slot: Slot<'_>, envelope: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (&version, rest) = envelope.split_first().ok_or(VaultError::Malformed)?;
        if version != VERSION {
            return Err(VaultError::Malformed);
        }
        let (&id_len, rest) = rest.split_first().ok_or(VaultError::Malformed)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN {
            return Err(VaultError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let id = std::str::from_utf8(id).map_err(|_| VaultError::Malformed)?;
        let key = self.keys.get(id).ok_or_else(|| VaultError::UnknownKey(id.to_owned()))?;
        let aad = associated_data(slot, id);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| VaultError::Integrity)
    }

    /// Decrypts a string secret.
    pub fn open_secret(&self, slot: Slot<'_>, envelope: &[u8]) -> Result<Secret, VaultError> {
        let bytes = self.open(slot, envelope)?;
        String::from_utf8(bytes).map(Secret::new).map_err(|_| VaultError::Integrity)
    }

    /// The key id inside an envelope, without decrypting it.
    pub fn key_id_of(envelope: &[u8]) -> Option<&str> {
        let len = usize::from(*envelope.get(1)?);
        std::str::from_utf8(envelope.get(2..2 + len)?).ok()
    }
}

/// Length-prefixed fields, so `("a", "bc")` and `("ab", "c")` never collide.
fn associated_data(slot: Slot<'_>, key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(b"latch/v1");
    for part in [slot.table, slot.row, slot.column, key_id] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests;
