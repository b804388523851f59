//! The health verdict of `/v1/stats`: healthy, degraded or unhealthy by
//! the thresholds of the configuration (`JOBLINE_HEALTH_*`).

use serde::Serialize;

/// When the queue counts as degraded or unhealthy (see README, "Stats").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// `JOBLINE_HEALTH_DEGRADED_PENDING_SECONDS` (60).
    pub degraded_pending_age: f64,
    /// `JOBLINE_HEALTH_UNHEALTHY_PENDING_SECONDS` (600).
    pub unhealthy_pending_age: f64,
    /// `JOBLINE_HEALTH_DEGRADED_DEAD_LETTER` (1).
    pub degraded_dead_letter: i64,
    /// `JOBLINE_HEALTH_UNHEALTHY_DEAD_LETTER` (100).
    pub unhealthy_dead_letter: i64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            degraded_pending_age: 60.0,
            unhealthy_pending_age: 600.0,
            degraded_dead_letter: 1,
            unhealthy_dead_letter: 100,
        }
    }
}

/// Ordered: `max` of two verdicts is the worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthThresholds {
    /// The verdict and the reasons for it.
    /// `oldest_pending_age` in seconds; `dead_letter` the items there.
    pub fn classify(&self, oldest_pending_age: f64, dead_letter: i64) -> (Health, Vec<String>) {
        let mut health = Health::Healthy;
        let mut reasons = Vec::new();
        let age = oldest_pending_age;
        if age >= self.unhealthy_pending_age {
            health = Health::Unhealthy;
            reasons.push(format!(
                "oldest pending job has waited {age:.0}s (unhealthy at {:.0}s)",
                self.unhealthy_pending_age
            ));
        } else if age >= self.degraded_pending_age {
            health = Health::Degraded;
            reasons.push(format!(
                "oldest pending job has waited {age:.0}s (degraded at {:.0}s)",
                self.degraded_pending_age
            ));
        }
        let dead = dead_letter;
        if dead >= self.unhealthy_dead_letter {
            health = Health::Unhealthy;
            reasons.push(format!(
                "{dead} in the dead letter (unhealthy at {})",
                self.unhealthy_dead_letter
            ));
        } else if dead >= self.degraded_dead_letter {
            if health == Health::Healthy {
                health = Health::Degraded;
            }
            reasons.push(format!(
                "{dead} in the dead letter (degraded at {})",
                self.degraded_dead_letter
            ));
        }
        (health, reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_queue_is_healthy() {
        let (h, reasons) = HealthThresholds::default().classify(5.0, 0);
        assert_eq!(h, Health::Healthy);
        assert!(reasons.is_empty());
    }

    #[test]
    fn waits_and_dead_letters_degrade_then_break_health() {
        let t = HealthThresholds::default();
        assert_eq!(t.classify(60.0, 0).0, Health::Degraded);
        assert_eq!(t.classify(0.0, 1).0, Health::Degraded);
        assert_eq!(t.classify(600.0, 0).0, Health::Unhealthy);
        assert_eq!(t.classify(0.0, 100).0, Health::Unhealthy);
        let (h, reasons) = t.classify(700.0, 3);
        assert_eq!(h, Health::Unhealthy);
        assert_eq!(reasons.len(), 2);
    }
}
