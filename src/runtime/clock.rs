//! Time as the rest of fireball sees it: plain milliseconds.
//!
//! Decision structs take `now_ms: u64` (monotonic, since the node's clock was created) so they can be
//! tested without a runtime. Wall-clock time is only used for names a person reads (query ids,
//! timestamps in JSON), never for ordering or timeouts.
//!
//! Under madsim `std::time::Instant` and `SystemTime` are virtual (madsim overrides the libc clock
//! calls), so the very same code reads simulated time there.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
#[allow(clippy::disallowed_types, reason = "the seam: the one wall clock, read only by Clock::wall_ms")]
use std::time::SystemTime;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A node's clock: monotonic milliseconds plus a wall clock, both shifted by an offset that
/// simulation sets to model clock skew. In production the offset stays 0.
#[derive(Clone, Debug)]
pub struct Clock {
    origin: Instant,
    offset_ms: Arc<AtomicI64>,
    /// Drift in parts per million: the node's clock runs this much fast (positive) or slow.
    drift_ppm: Arc<AtomicI64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        #[allow(clippy::disallowed_methods, reason = "the seam: every node's monotonic clock starts here")]
        let origin = Instant::now();
        Clock {
            origin,
            offset_ms: Arc::new(AtomicI64::new(0)),
            drift_ppm: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Monotonic milliseconds since this clock was created, as this node perceives them.
    ///
    /// Never goes backwards while offset and drift are unchanged; simulation only changes them to
    /// model skew, which real hosts exhibit too.
    pub fn now_ms(&self) -> u64 {
        let elapsed_ms = self.origin.elapsed().as_millis() as i64;
        let drift_ms = elapsed_ms.saturating_mul(self.drift_ppm.load(Ordering::Relaxed)) / 1_000_000;
        let shifted = elapsed_ms + drift_ms + self.offset_ms.load(Ordering::Relaxed);
        shifted.max(0) as u64
    }

    /// Milliseconds since the Unix epoch, as this node perceives them.
    pub fn wall_ms(&self) -> u64 {
        #[allow(
            clippy::disallowed_methods,
            clippy::disallowed_types,
            reason = "the seam: the only wall-clock read (virtual under madsim)"
        )]
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let shifted = real.as_millis() as i64 + self.offset_ms.load(Ordering::Relaxed);
        shifted.max(0) as u64
    }

    /// Simulation only (and tests): shift this node's clock.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// Simulation only (and tests): make this node's clock run fast or slow.
    pub fn set_drift_ppm(&self, drift_ppm: i64) {
        self.drift_ppm.store(drift_ppm, Ordering::Relaxed);
    }
}

/// Formats epoch milliseconds as ISO-8601 UTC (`2026-11-21T10:15:30.123Z`), without a date crate.
pub fn format_iso8601(epoch_ms: u64) -> String {
    let (year, month, day, hour, minute, second) = civil_from_epoch_secs(epoch_ms / 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z", epoch_ms % 1000)
}

/// `YYYYMMdd_HHmmss`, the prefix of Presto query ids.
pub fn format_query_id_prefix(epoch_ms: u64) -> String {
    let (year, month, day, hour, minute, second) = civil_from_epoch_secs(epoch_ms / 1000);
    format!("{year:04}{month:02}{day:02}_{hour:02}{minute:02}{second:02}")
}

/// Days-to-civil conversion (Howard Hinnant's algorithm), for UTC timestamps.
fn civil_from_epoch_secs(epoch_secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (epoch_secs / 86_400) as i64;
    let secs_of_day = epoch_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let hour = (secs_of_day / 3600) as u32;
    let minute = ((secs_of_day % 3600) / 60) as u32;
    let second = (secs_of_day % 60) as u32;
    (year, month, day, hour, minute, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-21T01:02:03.456Z
        assert_eq!(format_iso8601(1_795_222_923_456), "2026-11-21T01:02:03.456Z");
        assert_eq!(format_query_id_prefix(1_795_222_923_456), "20261121_010203");
        // A leap day.
        assert_eq!(format_iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn offset_shifts_both_clocks() {
        let clock = Clock::new();
        let before = clock.now_ms();
        clock.set_offset_ms(5_000);
        assert!(clock.now_ms() >= before + 5_000);
        clock.set_offset_ms(-1_000_000_000);
        assert_eq!(clock.now_ms(), 0, "monotonic clock saturates at zero, never wraps");
    }
}
