//! The wire contract of Latch: every body, error code and status that the server, the widget and
//! host apps exchange is defined here once, so the three can never drift apart.
//!
//! This crate depends only on `serde` and `time` and compiles for native targets and `wasm32`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod activity;
pub mod api;
pub mod endpoint;
pub mod error;
pub mod grant;
pub mod status;
pub mod text;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use grant::{AccountRef, Installation, Resource, TokenKind, UserTokenInfo};
pub use status::{ConnectionStatus, CredentialSource, Revocation, ScopeAccess, ScopeDetail};
