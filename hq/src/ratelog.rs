//! Rate limiting for logs of bad input: the first few occurrences of each kind in full, then
//! one line with the running total per period, so a misbehaving store cannot flood the log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What to log for one occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogDecision {
    /// Log this occurrence with its details.
    Detail,
    /// Log a summary: `total` so far, `suppressed` since the last line for this kind.
    Summary { total: u64, suppressed: u64 },
    /// Count it, say nothing.
    Silent,
}

#[derive(Debug, Default)]
struct PerKind {
    total: u64,
    suppressed: u64,
    last_line: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    detailed: u64,
    period: Duration,
    kinds: BTreeMap<&'static str, PerKind>,
}

impl RateLimitedLog {
    pub fn new(detailed: u64, period: Duration) -> Self {
        RateLimitedLog {
            detailed,
            period,
            kinds: BTreeMap::new(),
        }
    }

    /// Records one occurrence of `kind` at `now` and says how to log it.
    pub fn note(&mut self, kind: &'static str, now: Instant) -> LogDecision {
        let k = self.kinds.entry(kind).or_default();
        k.total += 1;
        if k.total <= self.detailed {
            k.last_line = Some(now);
            return LogDecision::Detail;
        }
        k.suppressed += 1;
        let due = k
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= self.period);
        if due {
            let decision = LogDecision::Summary {
                total: k.total,
                suppressed: k.suppressed,
            };
            k.suppressed = 0;
            k.last_line = Some(now);
            decision
        } else {
            LogDecision::Silent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrences_are_detailed_then_one_summary_per_period() {
        let mut log = RateLimitedLog::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(log.note("malformed", t0), LogDecision::Detail);
        assert_eq!(log.note("malformed", t0), LogDecision::Detail);
        assert_eq!(log.note("malformed", t0), LogDecision::Silent);
        assert_eq!(
            log.note("topic", t0),
            LogDecision::Detail,
            "kinds are separate"
        );
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            log.note("malformed", later),
            LogDecision::Summary {
                total: 4,
                suppressed: 2
            }
        );
        assert_eq!(log.note("malformed", later), LogDecision::Silent);
    }
}
