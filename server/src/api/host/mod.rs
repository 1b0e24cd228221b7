//! Handlers of the host API (`/v1/…`); every one takes a [`HostCaller`](super::extract::HostCaller).

pub mod access_token;
pub mod activity;
pub mod connections;
pub mod events;
pub mod inventory;
pub mod metrics;
pub mod providers;
pub mod webhooks;
pub mod widget_tokens;
