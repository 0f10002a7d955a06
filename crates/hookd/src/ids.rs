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
///
/// Small requests (ids: 16 bytes, three per event and delivery) are served from a per-thread
/// buffer filled 4 KiB at a time: one `getrandom` system call each showed up at ≈ 1.5% of the
/// workers' time. The bytes are the OS's either way, each handed out once.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if N > RANDOM_POOL_BYTES / 16 {
        fill_from_os(&mut bytes);
        return bytes;
    }
    RANDOM_POOL.with_borrow_mut(|(used, pool)| {
        if *used + N > RANDOM_POOL_BYTES {
            fill_from_os(pool);
            *used = 0;
        }
        bytes.copy_from_slice(&pool[*used..*used + N]);
        // `used` already keeps bytes from being handed out twice; wiping them means an id's
        // randomness does not linger in the pool after it was handed out.
        pool[*used..*used + N].fill(0);
        *used += N;
    });
    bytes
}

const RANDOM_POOL_BYTES: usize = 4096;

thread_local! {
    /// Bytes handed out so far, and the pool (starts used up, so the first call fills it).
    static RANDOM_POOL: std::cell::RefCell<(usize, [u8; RANDOM_POOL_BYTES])> =
        const { std::cell::RefCell::new((RANDOM_POOL_BYTES, [0; RANDOM_POOL_BYTES])) };
}

fn fill_from_os(bytes: &mut [u8]) {
    // The OS random source failing is not recoverable and never happens on supported platforms.
    getrandom::fill(bytes).expect("operating system random source failed");
}

/// A new prefixed, time-sortable id (`evt_01J...`, `dlv_...`, `wh_...`).
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    let random = u128::from_le_bytes(random_bytes::<16>());
    hookd_core::ids::prefixed_ulid(prefix, now_ms.max(0) as u64, random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Across several refills of the pool, every draw is fresh: no repeats, no zeroed bytes
    /// handed out, and a draw larger than the pool's share comes from the OS directly.
    #[test]
    fn random_bytes_never_repeat_across_pool_refills() {
        let draws: Vec<[u8; 16]> = (0..1_000).map(|_| random_bytes::<16>()).collect();
        let distinct: HashSet<_> = draws.iter().collect();
        assert_eq!(distinct.len(), draws.len());
        assert!(
            draws
                .iter()
                .all(|d| d.iter().filter(|b| **b == 0).count() < 8)
        );
        let odd: Vec<[u8; 24]> = (0..400).map(|_| random_bytes::<24>()).collect();
        assert_eq!(odd.iter().collect::<HashSet<_>>().len(), odd.len());
        let big = random_bytes::<1024>();
        assert!(big.iter().filter(|b| **b == 0).count() < 32);
    }
}
