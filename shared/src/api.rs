//! Request and response bodies, one module per audience.

pub mod host;
pub mod widget;
