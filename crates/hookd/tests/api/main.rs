//! API integration tests: real HTTP on port 0 against a fresh SQLite file per test.

mod common;

mod auth;
mod cli_client;
mod delivery;
mod delivery_ops;
mod errors;
mod event_types;
mod events;
mod inbound;
mod openapi;
mod persistence;
mod webhooks;
