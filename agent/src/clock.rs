//! The clock live inputs are stamped with and the core's timeouts run on in live mode.
//!
//! Production uses [`SystemClock`], the gateway's wall clock. A test (or a time-lapse replay
//! through the live inputs) passes a clock of its own, so a simulated day can go through the
//! real MQTT and HTTP paths in minutes with every message stamped with its simulated time.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use storefront_protocol::Timestamp;

/// 2020-01-01: before this the clock has not been set.
const SANE_CLOCK_MS: i64 = 1_577_836_800_000;

pub trait Clock: Send + Sync {
    /// Now, epoch milliseconds.
    fn now_ms(&self) -> i64;

    /// Now, once the clock has been set (a gateway without an RTC boots in 1970 until NTP
    /// answers).
    fn sane_now(&self) -> Option<Timestamp> {
        let ms = self.now_ms();
        (ms >= SANE_CLOCK_MS).then_some(Timestamp(ms))
    }
}

/// A clock shared by the live sources and the core.
pub type SharedClock = Arc<dyn Clock>;

/// The gateway's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The wall clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
