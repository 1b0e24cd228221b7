//! Talking OAuth2 to providers: the token endpoint (refresh, later code exchange), revocation
//! (RFC 7009), and the refresh protocol that keeps rotating refresh tokens safe.

pub mod http;
pub mod refresh;
pub mod revoke;
pub mod token;
