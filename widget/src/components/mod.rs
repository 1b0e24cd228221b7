//! The widget's components, one per file.

pub mod integration_row;
