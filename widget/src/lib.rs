//! The Latch widget: the integrations page end users see inside a host app (Leptos, client-side
//! rendered, WebAssembly, built with Trunk).
//!
//! This crate is the placeholder of issue 5; until then it only proves that `latch-shared`, the
//! wire contract it will speak, compiles into it.

pub use latch_shared::api::widget::IntegrationList;
