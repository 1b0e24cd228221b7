//! Handlers of the widget API (`/widget/v1/…`); every one takes a
//! [`WidgetCaller`](super::extract::WidgetCaller) and sees only that user's data.

pub mod connect;
pub mod connections;
pub mod flows;
pub mod integrations;
