//! Alerts to the operators: with `JOBLINE_ALERT_WEBHOOK_URL` set (a
//! Slack-compatible incoming webhook, `{"text": ...}`), each sweep posts once
//! when
//!
//! - the health verdict of `/v1/stats` changes (healthy → degraded →
//!   unhealthy, and back), with its reasons;
//! - registered workers go silent (not seen for
//!   [`crate::store::WORKER_GONE_AFTER`], not stopped);
//! - the sweep's audit finds broken promises (and when they are gone);
//! - the failure rate of the last 15 minutes passes
//!   `JOBLINE_ALERT_FAILURE_RATE` (default 0.05; at least
//!   [`MIN_FINISHED_FOR_RATE`] jobs finished), and when it is back under.
//!
//! What was last told is kept in Postgres (`alert_state`) and moved in the
//! transaction that posts, so overlapping sweepers post once and a post that
//! fails is tried again by the next sweep. The first verdict a deployment
//! sees is posted only when it is not the good one. Posts carry counts and
//! worker ids, never payloads; the webhook URL (a secret) is never logged.

use std::time::Duration;

use serde::Serialize;

use crate::domain::health::{Health, HealthThresholds};
use crate::store::{AuditReport, Store, StoreError, WORKER_GONE_AFTER};

/// The failure rate looks back this far.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Fewer finished jobs than this in the window say nothing about a rate.
pub const MIN_FINISHED_FOR_RATE: i64 = 10;

/// How long a post may take before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and when to alert. Its `Debug` shows the webhook's host only: the
/// URL is a secret.
#[derive(Clone)]
pub struct AlertConfig {
    /// `JOBLINE_ALERT_WEBHOOK_URL`.
    pub webhook_url: reqwest::Url,
    /// `JOBLINE_ALERT_FAILURE_RATE` (0.05).
    pub failure_rate: f64,
    /// `JOBLINE_HEALTH_*`, as `/v1/stats` judges.
    pub health: HealthThresholds,
}

impl std::fmt::Debug for AlertConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertConfig")
            .field("webhook_host", &self.webhook_url.host_str())
            .field("failure_rate", &self.failure_rate)
            .field("health", &self.health)
            .finish()
    }
}

/// Posts alerts; built once per process (one HTTP client).
#[derive(Debug, Clone)]
pub struct Alerter {
    config: AlertConfig,
    http: reqwest::Client,
}

/// What one pass told.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertReport {
    /// The health verdict, when it changed and was posted.
    pub health: Option<Health>,
    /// `high` or `normal`, when it changed and was posted.
    pub failure_rate: Option<&'static str>,
    /// `ok` or `violations`, when the audit's verdict changed and was posted.
    pub audit: Option<&'static str>,
    /// Workers reported silent.
    pub silent_workers: Vec<String>,
    /// Posts that failed (tried again next sweep).
    pub failed_posts: usize,
}

impl Alerter {
    pub fn new(config: AlertConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { config, http })
    }

    /// From the process configuration; `None` when no webhook is set.
    pub fn from_config(config: &crate::Config) -> Result<Option<Self>, reqwest::Error> {
        config
            .alert_webhook_url
            .clone()
            .map(|webhook_url| {
                Self::new(AlertConfig {
                    webhook_url,
                    failure_rate: config.alert_failure_rate,
                    health: config.health,
                })
            })
            .transpose()
    }

    /// One pass: health, failure rate, the sweep's `audit` (when it ran),
    /// silent workers. A failed post leaves its state unmoved (the next pass
    /// tries again); a store error stops the pass.
    pub async fn run_once(
        &self,
        store: &Store,
        audit: Option<&AuditReport>,
    ) -> Result<AlertReport, StoreError> {
        let mut report = AlertReport::default();

        let stats = store.stats(None).await?;
        let (health, reasons) = self
            .config
            .health
            .classify(stats.oldest_pending_age_seconds, stats.dead_letter);
        let verdict = health_name(health);
        let told = store
            .move_alert("health", verdict, async |previous| {
                let text = match previous.as_deref() {
                    None if health == Health::Healthy => return true,
                    None => format!("jobline: the queue is {verdict}"),
                    Some(was) => format!("jobline: the queue went from {was} to {verdict}"),
                };
                let text = if reasons.is_empty() {
                    text
                } else {
                    format!("{text}: {}", reasons.join("; "))
                };
                self.post_counted(&text, &mut report.failed_posts).await
            })
            .await?;
        if told {
            report.health = Some(health);
        }

        let since = store.now() - chrono::Duration::from_std(FAILURE_WINDOW).unwrap_or_default();
        let finished = store.finished_since(None, since).await?;
        let rate = finished.failure_rate().unwrap_or(0.0);
        let high =
            finished.completed + finished.failed >= MIN_FINISHED_FOR_RATE && rate > self.config.failure_rate;
        let state = if high { "high" } else { "normal" };
        let limit = self.config.failure_rate;
        let told = store
            .move_alert("failure_rate", state, async |previous| {
                if previous.is_none() && !high {
                    return true;
                }
                let text = format!(
                    "jobline: {:.1}% of the jobs that finished in the last 15 minutes failed ({} of {}; alert above {:.1}%){}",
                    rate * 100.0,
                    finished.failed,
                    finished.completed + finished.failed,
                    limit * 100.0,
                    if high { "" } else { ": back under the limit" },
                );
                self.post_counted(&text, &mut report.failed_posts).await
            })
            .await?;
        if told {
            report.failure_rate = Some(state);
        }

        if let Some(audit) = audit {
            let state = if audit.ok { "ok" } else { "violations" };
            let told = store
                .move_alert("audit", state, async |previous| {
                    let text = match (previous.as_deref(), audit.ok) {
                        (None, true) => return true,
                        (_, true) => "jobline: the audit finds every promise kept again".to_owned(),
                        (_, false) => format!(
                            "jobline: the audit of the jobs since {} found broken promises: {} (GET /v1/audit for examples)",
                            audit.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            audit.broken().join(", ")
                        ),
                    };
                    self.post_counted(&text, &mut report.failed_posts).await
                })
                .await?;
            if told {
                report.audit = Some(state);
            }
        }

        report.silent_workers = store
            .mark_silent_workers(WORKER_GONE_AFTER, async |silent| {
                let shown: Vec<&str> = silent.iter().take(10).map(String::as_str).collect();
                let more = silent.len().saturating_sub(shown.len());
                let text = format!(
                    "jobline: {} worker(s) went silent (not seen for {} s): {}{}",
                    silent.len(),
                    WORKER_GONE_AFTER.as_secs(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                );
                self.post_counted(&text, &mut report.failed_posts).await
            })
            .await?;
        Ok(report)
    }

    async fn post_counted(&self, text: &str, failed: &mut usize) -> bool {
        let ok = self.post(text).await;
        if !ok {
            *failed += 1;
        }
        ok
    }

    /// Posts `{"text": text}`; `true` on a 2xx answer.
    async fn post(&self, text: &str) -> bool {
        let answer = self
            .http
            .post(self.config.webhook_url.clone())
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await;
        let host = self.config.webhook_url.host_str().unwrap_or("?");
        match answer {
            Ok(r) if r.status().is_success() => {
                tracing::info!(host, "alert posted");
                true
            }
            Ok(r) => {
                tracing::warn!(
                    host,
                    status = r.status().as_u16(),
                    "the alert webhook refused the post"
                );
                false
            }
            Err(e) => {
                // Without the URL: reqwest's message names it, and it is a secret.
                let e = e.without_url();
                tracing::warn!(host, error = %crate::telemetry::error_chain(&e), "could not post the alert");
                false
            }
        }
    }
}

fn health_name(h: Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Unhealthy => "unhealthy",
    }
}
