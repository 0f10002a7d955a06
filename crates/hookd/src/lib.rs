//! hookd: a webhook delivery server. One binary: API, store and CLI (see ARCHITECTURE.md).

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod data_dir;
pub mod ids;
pub mod listener;
pub mod master_key;
pub mod ops;
pub mod retention;
pub mod runtime;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod worker;
