//! Waiting for something to happen: poll a condition until it holds or a deadline passes, rather
//! than sleeping a fixed time and hoping. A test that waits this way is as fast as the code under
//! test allows, and fails with a message saying what never happened.
//!
//! [`until`] is the one polling loop of the test binaries (`tests/cli.rs` includes this file too).
//! The waits that several API tests need are built on it in the harness (`TestApp::eventually`,
//! `wait_for_deliveries`, `wait_for_delivery_state`); a receiver waits for requests with
//! `Receiver::wait_for`, which is woken by each arrival instead.

use std::time::Duration;

/// How long a wait lasts by default before the test fails: long enough for a slow, shared CI
/// machine, short enough that a hung test says so.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(20);

/// How often [`until`] checks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Runs `check` every [`POLL_INTERVAL`] until it returns `Ok`, and returns that value. Panics with
/// the last `Err` (a description of what was seen) once `limit` has passed.
pub async fn until<T>(limit: Duration, check: impl AsyncFnMut() -> Result<T, String>) -> T {
    until_every(limit, POLL_INTERVAL, check).await
}

/// [`until`], checking every `interval` (for tests that want to see each intermediate state).
pub async fn until_every<T>(
    limit: Duration,
    interval: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "still waiting after {limit:?}: {seen}"
        );
        tokio::time::sleep(interval).await;
    }
}
