//! The retry policy: a pure function of the attempt, the error and a jitter
//! draw, with the clock passed in. Code decides the next state here; one SQL
//! statement applies it (`store/sql/fail.sql`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a handler's error says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Worth another attempt (timeouts, rate limits, 5xx, a panic).
    Retryable,
    /// Will fail the same way again (bad input, 4xx): straight to `failed`.
    Permanent,
}

/// The decision for a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Back to `pending`, due at `run_after`.
    Retry {
        run_after: DateTime<Utc>,
        delay: Duration,
    },
    /// To `failed`, the dead letter.
    Fail,
}

/// Exponential backoff with jitter and a cap: attempt n waits between half
/// and all of `min(cap, base * 2^(n-1))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(Duration::from_secs(2), Duration::from_secs(600))
    }
}

impl RetryPolicy {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The ceiling of the wait after `attempt` (1-based) failed.
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exp = attempt.clamp(1, 63) as u32 - 1;
        let factor = 2u64.checked_pow(exp).unwrap_or(u64::MAX);
        let base_ms = self.base.as_millis().min(u64::MAX as u128) as u64;
        let ms = base_ms.saturating_mul(factor);
        Duration::from_millis(ms).min(self.cap)
    }

    /// The wait after `attempt` failed, for a jitter draw `unit` in [0, 1).
    pub fn backoff(&self, attempt: i32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// What happens after attempt `attempt` of `max_attempts` failed with `kind`.
    pub fn decide(
        &self,
        now: DateTime<Utc>,
        attempt: i32,
        max_attempts: i32,
        kind: FailureKind,
        unit: f64,
    ) -> NextStep {
        if kind == FailureKind::Permanent || attempt >= max_attempts {
            return NextStep::Fail;
        }
        let delay = self.backoff(attempt, unit);
        let run_after = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        NextStep::Retry { run_after, delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(Duration::from_secs(2), Duration::from_secs(60))
    }

    #[test]
    fn the_ceiling_doubles_each_attempt_until_the_cap() {
        let p = policy();
        let secs: Vec<u64> = (1..=7).map(|n| p.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_ceiling() {
        let p = policy();
        assert_eq!(p.backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.backoff(3, 0.5), Duration::from_secs(6));
        assert_eq!(p.backoff(3, 0.999_999).as_secs(), 7);
        assert_eq!(
            p.backoff(3, 7.0),
            Duration::from_secs(8),
            "a wild draw is clamped"
        );
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = policy();
        assert_eq!(p.ceiling(10_000), Duration::from_secs(60));
        assert_eq!(p.ceiling(0), Duration::from_secs(2));
    }

    #[test]
    fn a_retryable_failure_with_attempts_left_is_scheduled_from_the_given_clock() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("valid")
            .to_utc();
        let step = policy().decide(now, 2, 5, FailureKind::Retryable, 0.0);
        assert_eq!(
            step,
            NextStep::Retry {
                run_after: now + chrono::Duration::seconds(2),
                delay: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn permanent_failures_and_spent_attempts_go_to_the_dead_letter() {
        let now = Utc::now();
        assert_eq!(
            policy().decide(now, 1, 5, FailureKind::Permanent, 0.3),
            NextStep::Fail
        );
        assert_eq!(
            policy().decide(now, 5, 5, FailureKind::Retryable, 0.3),
            NextStep::Fail
        );
    }
}
