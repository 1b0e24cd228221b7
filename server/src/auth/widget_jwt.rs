//! Short-lived widget tokens: EdDSA (Ed25519) JWTs with `typ` `latch-widget+jwt`.
//!
//! Signing keys live in the database, the private half sealed by the vault, so every replica
//! signs with the same key and accepts the others' tokens. The verifier pins the algorithm, looks
//! `kid` up only among stored keys (never trusting key material from the header), checks `typ`
//! itself (jsonwebtoken does not) and validates time claims against the injected clock with 5 s
//! of leeway (jsonwebtoken's default is 60 s and it skips `nbf`).

use super::AuthError;
use crate::clock::Clock;
use crate::store::{Store, StoreError, keys::SigningKeyRow, new_id};
use crate::vault::{Sealed, Vault};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The `typ` header of widget tokens; any other value is refused.
pub const TYP: &str = "latch-widget+jwt";
/// The audience of widget tokens: only the widget API accepts them.
pub const AUDIENCE: &str = "latch-widget";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: i64 = 5;
/// The longest lifetime a widget token may have.
pub const MAX_TTL_SECONDS: i64 = 3600;
/// The shortest lifetime a widget token may have.
pub const MIN_TTL_SECONDS: i64 = 30;
/// Lifetime when the host does not ask for one.
pub const DEFAULT_TTL_SECONDS: i64 = 600;

/// The claims of a widget token. Every field is required when verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetClaims {
    pub iss: String,
    pub aud: String,
    /// The host app's user id.
    pub sub: String,
    /// The user's organization; `null` when the host has none (but never absent).
    #[serde(deserialize_with = "present")]
    pub org: Option<String>,
    /// Provider keys the widget may use.
    pub providers: Vec<String>,
    /// The exact origin of the embedding page; `null` when not bound to one (but never absent).
    #[serde(deserialize_with = "present")]
    pub origin: Option<String>,
    /// How the host names the user (shown on the consent result page); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What a connection made with this token is for; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Whom a widget token is for and what it allows.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub organization_id: Option<&'a str>,
    pub providers: Vec<String>,
    pub origin: Option<String>,
    pub label: Option<String>,
    pub purpose: Option<String>,
}

/// A nullable claim that must still be present: with `deserialize_with`, serde no longer treats
/// a missing `Option` field as `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

struct KeySet {
    active_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, (DecodingKey, Vec<u8>)>,
    loaded_at: Instant,
}

/// Mints and verifies widget tokens.
pub struct WidgetSigner {
    store: Store,
    vault: Vault,
    clock: Clock,
    issuer: String,
    keys: RwLock<KeySet>,
}

impl std::fmt::Debug for WidgetSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WidgetSigner").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// Why signing keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid}: {message}")]
    Key { kid: String, message: String },
}

impl WidgetSigner {
    /// Loads the signing keys, creating the first one if the database has none.
    pub async fn load(store: Store, vault: Vault, issuer: String, clock: &Clock) -> Result<Self, SignerError> {
        let mut rows = store.signing_keys(clock.unix()).await?;
        if rows.is_empty() {
            // Replicas starting together on an empty database all get here: the first key has
            // a fixed id, so exactly one insert wins and every replica signs with that key.
            match insert_new_key(&store, &vault, clock.unix(), FIRST_KID).await {
                Ok(()) | Err(SignerError::Store(StoreError::Conflict { .. })) => {}
                Err(e) => return Err(e),
            }
            rows = store.signing_keys(clock.unix()).await?;
        }
        let keys = build_keyset(&vault, &rows)?;
        Ok(Self { store, vault, clock: clock.clone(), issuer, keys: RwLock::new(keys) })
    }

    /// The `iss` of tokens minted here.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &WidgetClaims) -> Result<String, AuthError> {
        let keys = self.keys.read().map_err(|_| AuthError::InvalidWidgetToken("key set unavailable"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TYP.to_owned());
        header.kid = Some(keys.active_kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.encoding)
            .map_err(|_| AuthError::InvalidWidgetToken("signing failed"))
    }

    /// Builds and signs a token for a user.
    pub fn mint(&self, now: i64, ttl_seconds: i64, subject: Subject) -> Result<(String, WidgetClaims), AuthError> {
        let claims = WidgetClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: subject.user_id.to_owned(),
            org: subject.organization_id.map(str::to_owned),
            providers: subject.providers,
            origin: subject.origin,
            label: subject.label,
            purpose: subject.purpose,
            jti: new_id("wt"),
            iat: now,
            nbf: now,
            exp: now + ttl_seconds,
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// Verifies a presented token at time `now`.
    pub async fn verify(&self, token: &str, now: i64) -> Result<WidgetClaims, AuthError> {
        if token.len() > 8192 {
            return Err(AuthError::InvalidWidgetToken("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidWidgetToken("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidWidgetToken("algorithm"));
        }
        if header.typ.as_deref() != Some(TYP) {
            return Err(AuthError::InvalidWidgetToken("typ"));
        }
        let kid = header.kid.ok_or(AuthError::InvalidWidgetToken("kid missing"))?;
        let key = match self.decoding_key(&kid) {
            Some(key) => key,
            None => {
                // Another replica may have created a key since we loaded ours.
                self.reload_if_stale().await;
                self.decoding_key(&kid).ok_or(AuthError::InvalidWidgetToken("unknown kid"))?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time claims are checked below against the injected clock with our own leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[&self.issuer]);
        let data = jsonwebtoken::decode::<WidgetClaims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            AuthError::InvalidWidgetToken(match e.kind() {
                ErrorKind::InvalidSignature => "signature",
                ErrorKind::InvalidAudience => "audience",
                ErrorKind::InvalidIssuer => "issuer",
                ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => "claims",
                _ => "malformed",
            })
        })?;
        let c = data.claims;
        if c.exp - c.iat > MAX_TTL_SECONDS || c.nbf > c.exp {
            return Err(AuthError::InvalidWidgetToken("lifetime"));
        }
        if c.iat > now + LEEWAY_SECONDS || c.nbf > now + LEEWAY_SECONDS {
            return Err(AuthError::InvalidWidgetToken("not yet valid"));
        }
        if now >= c.exp + LEEWAY_SECONDS {
            return Err(AuthError::WidgetTokenExpired);
        }
        Ok(c)
    }

    /// The public keys as a JWK Set (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        let keys = match self.keys.read() {
            Ok(keys) => keys
                .decoding
                .iter()
                .map(|(kid, (_, public))| {
                    serde_json::json!({
                        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                        "kid": kid, "x": URL_SAFE_NO_PAD.encode(public),
                    })
                })
                .collect(),
            Err(_) => vec![],
        };
        serde_json::json!({ "keys": keys })
    }

    fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok()?.decoding.get(kid).map(|(k, _)| k.clone())
    }

    async fn reload_if_stale(&self) {
        let stale = self.keys.read().map(|k| k.loaded_at.elapsed() > Duration::from_secs(1)).unwrap_or(false);
        if stale {
            self.reload().await;
        }
    }

    /// Reads the keys again: picks up a rotation (the new key signs from now on) and drops keys
    /// whose overlap ended. Serving processes do it every [`RELOAD_EVERY`]; on failure the
    /// loaded keys stay.
    pub async fn reload(&self) {
        let Ok(rows) = self.store.signing_keys(self.clock.unix()).await else {
            return;
        };
        if let Ok(fresh) = build_keyset(&self.vault, &rows)
            && let Ok(mut keys) = self.keys.write()
        {
            *keys = fresh;
        }
    }

    /// The id of the key that signs now.
    pub fn signing_kid(&self) -> Option<String> {
        self.keys.read().ok().map(|k| k.active_kid.clone())
    }
}

/// How often a serving process reloads the signing keys.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How long a rotated-out key keeps verifying: a replica may sign with it until its next reload,
/// and a token it signed lives at most [`MAX_TTL_SECONDS`], so no live widget token breaks.
pub const ROTATION_OVERLAP_SECONDS: i64 = MAX_TTL_SECONDS + RELOAD_EVERY.as_secs() as i64 + 2 * LEEWAY_SECONDS;

/// `latch keys rotate-signing`: a new key signs from the next reload on; the old ones verify
/// for [`ROTATION_OVERLAP_SECONDS`] more. Returns the new key's id and when the old ones retire.
pub async fn rotate(store: &Store, vault: &Vault, clock: &Clock) -> Result<(String, i64), SignerError> {
    let now = clock.unix();
    let kid = new_id("sk");
    let row = new_key(vault, now, &kid)?;
    let retire_at = now + ROTATION_OVERLAP_SECONDS;
    store.rotate_signing_key(&row, retire_at, now).await?;
    Ok((kid, retire_at))
}

/// The id of a deployment's first signing key (later keys get fresh ids).
const FIRST_KID: &str = "sk_first";

async fn insert_new_key(store: &Store, vault: &Vault, now: i64, kid: &str) -> Result<(), SignerError> {
    store.insert_signing_key(&new_key(vault, now, kid)?).await?;
    Ok(())
}

/// A fresh Ed25519 key, its private half sealed to its row.
fn new_key(vault: &Vault, now: i64, kid: &str) -> Result<SigningKeyRow, SignerError> {
    let kid = kid.to_owned();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| SignerError::Key { kid: kid.clone(), message: "key generation failed".into() })?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| SignerError::Key { kid: kid.clone(), message: "generated key does not parse".into() })?;
    Ok(SigningKeyRow {
        private_key: vault.seal(Sealed::SigningKey.slot(&kid), pkcs8.as_ref()),
        public_key: pair.public_key().as_ref().to_vec(),
        id: kid,
        created_at: now,
        retired_at: None,
    })
}

fn build_keyset(vault: &Vault, rows: &[SigningKeyRow]) -> Result<KeySet, SignerError> {
    // Rows come current first, newest first: that key signs, all verify.
    let newest = rows.first().ok_or_else(|| SignerError::Key { kid: "-".into(), message: "no signing key".into() })?;
    let pkcs8 = vault
        .open(Sealed::SigningKey.slot(&newest.id), &newest.private_key)
        .map_err(|e| SignerError::Key { kid: newest.id.clone(), message: e.to_string() })?;
    let encoding = EncodingKey::from_ed_der(&pkcs8);
    let decoding = rows
        .iter()
        .map(|r| {
            let key = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(&r.public_key))
                .map_err(|_| SignerError::Key { kid: r.id.clone(), message: "bad public key".into() })?;
            Ok((r.id.clone(), (key, r.public_key.clone())))
        })
        .collect::<Result<HashMap<_, _>, SignerError>>()?;
    Ok(KeySet { active_kid: newest.id.clone(), encoding, decoding, loaded_at: Instant::now() })
}
