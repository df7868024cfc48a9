//! A TSO-like clock: `physical milliseconds << 18 | logical`, strictly increasing.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of the logical part of a TSO.
pub const LOGICAL_BITS: u32 = 18;

/// Hands out strictly increasing timestamps.
#[derive(Debug, Default)]
pub struct Tso {
    last: AtomicU64,
}

impl Tso {
    /// The next timestamp: the current physical time, or one more than the last one handed out.
    pub fn next(&self) -> u64 {
        let physical =
            u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0) << LOGICAL_BITS;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = physical.max(prev + 1);
            match self.last.compare_exchange_weak(
                prev,
                candidate,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return candidate,
                Err(actual) => prev = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_strictly_increasing_and_carry_the_wall_clock() {
        let tso = Tso::default();
        let a = tso.next();
        let b = tso.next();
        assert!(b > a);
        let ms = i64::try_from(a >> LOGICAL_BITS).unwrap();
        assert!((chrono::Utc::now().timestamp_millis() - ms).abs() < 5_000);
    }
}
