//! The data's life on disk, on the real `hookd` binary: the data dir's file modes, backup and
//! restore of a running server's SQLite database, and a full disk.

mod backup;
mod common;
mod disk_full;
mod file_modes;

// The API suite's receiver and polling helper, shared rather than copied.
#[path = "../api/common/receiver.rs"]
#[allow(dead_code)]
mod receiver;
#[path = "../api/common/wait.rs"]
#[allow(dead_code)]
mod wait;
