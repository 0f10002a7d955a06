//! API integration tests: real HTTP on port 0 against a fresh store per test: a SQLite file, or a
//! PostgreSQL database with `HOOKD_TEST_BACKEND=postgres` (see `common`). One suite, both backends.

mod common;

mod api_keys;
mod auth;
mod chaos_receiver;
mod claim;
mod cli_client;
mod cluster;
mod content_filters;
mod delivery;
mod delivery_ops;
mod errors;
mod event_schemas;
mod event_types;
mod events;
mod hardening;
mod inbound;
mod master_key;
mod nodes;
mod openapi;
mod owners;
mod persistence;
mod retention;
mod signatures;
mod signing_keys;
mod ssrf;
mod store_contract;
mod ui;
mod ui_screens;
mod webhooks;
