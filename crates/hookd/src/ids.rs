//! Side-effecting helpers around the core's pure ids: the clock and the random source.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where "now" comes from. Production uses the system clock; tests can hold time still or move it.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to. Cloning shares the same reading.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn advance_ms(&self, by: i64) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub type DynClock = Arc<dyn Clock>;

/// Fills an array with bytes from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is not recoverable and never happens on supported platforms.
    getrandom::fill(&mut bytes).expect("operating system random source failed");
    bytes
}

/// A new prefixed, time-sortable id (`evt_01J...`, `dlv_...`, `wh_...`).
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    let random = u128::from_le_bytes(random_bytes::<16>());
    hookd_core::ids::prefixed_ulid(prefix, now_ms.max(0) as u64, random)
}
