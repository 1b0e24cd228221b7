//! Latch's integration tests: one binary, the real server in-process (or as a child process) on
//! loopback, a real SQLite file and a real PostgreSQL database per test, fake providers as small
//! axum apps. Every storage-touching test runs on both backends (see `harness::both!`).

// Test code fails loudly on purpose, and its bounded waits sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, clippy::print_stderr)]

mod harness;

mod access_token;
mod auth;
mod canaries;
mod cli;
mod connect_flow;
mod connections;
mod crash;
mod crash_points;
mod delivery_faults;
mod deploy;
mod developer_connections;
mod errors;
mod first_day;
mod governance;
mod hostile_input;
mod key_rotation;
mod listener_limits;
mod logs;
mod metrics;
mod oidc_flow;
mod openapi;
mod rate_limits;
mod refresh_faults;
mod refresher;
mod replicas;
mod sandbox;
mod schemathesis;
mod secrets_at_rest;
mod shutdown;
mod slack_events;
mod slack_installs;
mod tidy;
mod tombstones;
mod webhooks;
mod widget_browser;
mod widget_tokens;
