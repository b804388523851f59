//! One typed configuration, read from the environment once at start.
//!
//! Every variable has a documented default (see README.md, "Configuration");
//! an invalid value stops the process with an error that names the variable.
//! The handlers' and the SQS consumer's sections are read here too, so a
//! process reads its environment exactly once, at start.

use std::time::Duration;

use thiserror::Error;

use crate::domain::health::HealthThresholds;
use crate::domain::retry::RetryPolicy;
use crate::handlers::story::StoryConfig;
use crate::handlers::webhook::WebhookConfig;

/// A bad configuration value: which variable, what it held, what was wrong.
#[derive(Debug, Error)]
#[error("invalid {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            var,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Which broker wakes the workers, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueChoice {
    /// No broker: workers claim from `jobs`, woken by LISTEN/NOTIFY.
    Postgres,
    Sqs {
        queue_url: String,
    },
    Upstash {
        url: String,
        token: String,
    },
    Redis {
        url: String,
    },
}

impl QueueChoice {
    pub fn kind(&self) -> &'static str {
        match self {
            QueueChoice::Postgres => "postgres",
            QueueChoice::Sqs { .. } => "sqs",
            QueueChoice::Upstash { .. } => "upstash",
            QueueChoice::Redis { .. } => "redis",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`. `None` only for commands that start their own Postgres.
    pub database_url: Option<String>,
    /// `JOBLINE_POOL_SIZE` (default 10): connections per process.
    pub pool_size: usize,
    /// `JOBLINE_QUEUE_NAME` (default `generation_jobs`).
    pub queue_name: String,
    /// `JOBLINE_QUEUE` (`sqs`, `upstash`, `redis`, `postgres`), or chosen
    /// from what is configured when unset.
    pub queue: QueueChoice,
    /// Why `queue` was chosen (logged at start).
    pub queue_reason: String,
    /// `JOBLINE_HEARTBEAT_INTERVAL_SECONDS` (default 10).
    pub heartbeat_interval: Duration,
    /// `JOBLINE_HEARTBEAT_TIMEOUT_SECONDS` (default 60): a claim without a
    /// heartbeat for this long is released.
    pub heartbeat_timeout: Duration,
    /// `JOBLINE_STALE_PENDING_SECONDS` (default 300): the sweeper publishes
    /// a due `pending` job again when nothing was published for it this
    /// long (its message may have been lost with the broker's state).
    pub stale_pending_after: Duration,
    /// `JOBLINE_OUTBOX_GRACE_SECONDS` (default 30): how long the relay
    /// leaves a fresh outbox row to the process that created it (which
    /// publishes right after its commit) before publishing it itself.
    pub outbox_grace: Duration,
    /// How long finished jobs are kept, with their events and outbox rows
    /// (the idempotency window is the same): `JOBLINE_RETENTION_COMPLETED_SECONDS`
    /// and `JOBLINE_RETENTION_CANCELLED_SECONDS` (default 7 days),
    /// `JOBLINE_RETENTION_FAILED_SECONDS` (30 days: the dead letter); `0`
    /// keeps forever, at most ten years otherwise.
    pub retention: crate::store::Retention,
    /// `JOBLINE_ALERT_WEBHOOK_URL`: a Slack-compatible incoming webhook the
    /// sweeper posts alerts to (`None`: no alerts). A secret: never logged.
    pub alert_webhook_url: Option<reqwest::Url>,
    /// `JOBLINE_ALERT_FAILURE_RATE` (default 0.05): alert when more of the
    /// jobs finished in the last 15 minutes failed.
    pub alert_failure_rate: f64,
    /// `SENTRY_DSN`: report errors, panics and failed attempts to Sentry
    /// (`None`: no reporting). Checked at start; never logged.
    pub sentry_dsn: Option<String>,
    /// `SENTRY_ENVIRONMENT`: the environment the reports name.
    pub sentry_environment: Option<String>,
    /// `JOBLINE_PREPARED_STATEMENTS` (default true): prepare each statement
    /// once per connection; `false` sends them unnamed (planned on every
    /// call), for a transaction-mode pooler without prepared statements.
    pub prepared_statements: bool,
    /// `JOBLINE_BACKOFF_BASE_SECONDS` (2), `JOBLINE_BACKOFF_MAX_SECONDS` (600).
    pub retry: RetryPolicy,
    /// `JOBLINE_MAX_ATTEMPTS` (default 5): per-job default.
    pub max_attempts: i32,
    /// `JOBLINE_MAX_BODY_BYTES` (default 256 KiB).
    pub max_body_bytes: usize,
    /// `JOBLINE_HTTP_REQUEST_TIMEOUT_SECONDS` (default 30): `jobline serve`
    /// answers a request whose headers and body have not arrived, or whose
    /// answer is not ready, by then with 408 and closes the connection.
    pub http_request_timeout: Duration,
    /// `JOBLINE_HTTP_MAX_CONCURRENCY` (default 512): requests `jobline
    /// serve` handles at once; beyond it 503 with `Retry-After`.
    pub http_max_concurrency: usize,
    /// `JOBLINE_ADMIN_KEY`: bootstrap key for tenant `default`, all scopes.
    pub admin_key: Option<String>,
    /// `JOBLINE_LOG` or `RUST_LOG` (default `info`).
    pub log_filter: String,
    /// `JOBLINE_LOG_FORMAT`: `json` or `pretty` (default `json`).
    pub log_format: LogFormat,
    /// `JOBLINE_JOB_TYPES`: comma-separated; when set, only these types may
    /// be created (others: 422 `unknown_job_type`).
    pub job_types: Option<Vec<String>>,
    /// `JOBLINE_CONSUMER_JOB_TYPES`: the types served by consumers that do
    /// not register as workers (the SQS Lambda; the template sets it to
    /// `ConsumerJobTypes`). Registered workers report their own. Unset, with
    /// no live worker either: every type counts as served.
    pub consumer_job_types: Option<Vec<String>>,
    /// `JOBLINE_HEALTH_*`: when `/v1/stats` says degraded or unhealthy.
    pub health: HealthThresholds,
    /// `JOBLINE_WEBHOOK_*`: the `webhook` handler.
    pub webhook: WebhookConfig,
    /// `OPENAI_*`, `JOBLINE_STORY_*`: the `story_script` handler.
    pub story: StoryConfig,
    /// `JOBLINE_CONSUMER_CONCURRENCY`, `SQS_QUEUE_URL`,
    /// `AWS_ENDPOINT_URL_SQS`: the SQS consumer Lambda.
    pub consumer: ConsumerConfig,
    /// `JOBLINE_WORKER_METRICS_LISTEN` (`host:port`; unset: none): where
    /// `jobline worker` serves its own `GET /metrics` when no
    /// `--metrics-listen` is given. No key: a loopback or private address.
    pub worker_metrics_listen: Option<std::net::SocketAddr>,
}

/// Records processed at once by the SQS consumer Lambda when
/// `JOBLINE_CONSUMER_CONCURRENCY` is unset.
pub const DEFAULT_CONSUMER_CONCURRENCY: usize = 10;

/// The SQS consumer Lambda's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `JOBLINE_CONSUMER_CONCURRENCY` (default 10, a whole batch at the
    /// default batch size): records in flight at most.
    pub concurrency: usize,
    /// `SQS_QUEUE_URL`: the queue's URL, used when a record's
    /// `eventSourceARN` names this queue or cannot be mapped.
    pub queue_url: Option<String>,
    /// `AWS_ENDPOINT_URL_SQS` (or `AWS_ENDPOINT_URL`): the SQS endpoint a
    /// queue URL mapped from an ARN points at (a compatible server); unset:
    /// `https://sqs.<region>.amazonaws.com`.
    pub endpoint_url: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME` and `AWS_LAMBDA_LOG_STREAM_NAME` (set by
    /// the Lambda runtime): the consumer's worker id,
    /// `lambda:<function>:<log stream>`, one per sandbox.
    pub function_name: Option<String>,
    pub log_stream: Option<String>,
    /// `JOBLINE_CONSUMER_TIMEOUT_SECONDS` (the function's timeout, which the
    /// template passes): at cold start every type the consumer serves must
    /// have a handler timeout that fits in it, else the function does not
    /// start. Unset: not checked (each invocation's deadline still is).
    pub timeout: Option<std::time::Duration>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONSUMER_CONCURRENCY,
            queue_url: None,
            endpoint_url: None,
            function_name: None,
            log_stream: None,
            timeout: None,
        }
    }
}

impl ConsumerConfig {
    /// Reads the consumer's variables; an invalid value is an error naming it.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            concurrency: env.number(
                "JOBLINE_CONSUMER_CONCURRENCY",
                DEFAULT_CONSUMER_CONCURRENCY,
                1,
                1000,
            )?,
            queue_url: env.get("SQS_QUEUE_URL"),
            endpoint_url: env
                .get("AWS_ENDPOINT_URL_SQS")
                .or_else(|| env.get("AWS_ENDPOINT_URL")),
            function_name: env.get("AWS_LAMBDA_FUNCTION_NAME"),
            log_stream: env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
            timeout: match env.get("JOBLINE_CONSUMER_TIMEOUT_SECONDS") {
                None => None,
                Some(_) => Some(env.seconds_up_to("JOBLINE_CONSUMER_TIMEOUT_SECONDS", 60, 900)?),
            },
        })
    }

    /// This sandbox's name in claims and timelines: its log stream is unique
    /// to it; without one (tests, local runs) a unique process id.
    pub fn worker_id(&self) -> String {
        let function = self.function_name.as_deref().unwrap_or("sqs-consumer");
        match &self.log_stream {
            Some(stream) => format!("lambda:{function}:{stream}"),
            None => crate::worker::runner::unique_worker_id(&format!("lambda:{function}")),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let heartbeat_interval = env.seconds("JOBLINE_HEARTBEAT_INTERVAL_SECONDS", 10)?;
        let heartbeat_timeout = env.seconds("JOBLINE_HEARTBEAT_TIMEOUT_SECONDS", 60)?;
        if heartbeat_timeout <= heartbeat_interval {
            return Err(ConfigError::new(
                "JOBLINE_HEARTBEAT_TIMEOUT_SECONDS",
                &heartbeat_timeout.as_secs().to_string(),
                "must be longer than JOBLINE_HEARTBEAT_INTERVAL_SECONDS",
            ));
        }
        let stale_pending_after = env.seconds("JOBLINE_STALE_PENDING_SECONDS", 300)?;
        let outbox_grace = env.seconds("JOBLINE_OUTBOX_GRACE_SECONDS", 30)?;
        let retention = {
            let default = crate::store::Retention::default();
            let keep = |name: &'static str, default: Option<Duration>| {
                let seconds = default.map_or(0, |d| d.as_secs());
                env.number(name, seconds, 0, 10 * 365 * 24 * 3600)
                    .map(|s| (s > 0).then(|| Duration::from_secs(s)))
            };
            crate::store::Retention {
                completed: keep("JOBLINE_RETENTION_COMPLETED_SECONDS", default.completed)?,
                cancelled: keep("JOBLINE_RETENTION_CANCELLED_SECONDS", default.cancelled)?,
                failed: keep("JOBLINE_RETENTION_FAILED_SECONDS", default.failed)?,
            }
        };
        let base = env.seconds("JOBLINE_BACKOFF_BASE_SECONDS", 2)?;
        let cap = env.seconds("JOBLINE_BACKOFF_MAX_SECONDS", 600)?;
        if cap < base {
            return Err(ConfigError::new(
                "JOBLINE_BACKOFF_MAX_SECONDS",
                &cap.as_secs().to_string(),
                "must be at least JOBLINE_BACKOFF_BASE_SECONDS",
            ));
        }
        let log_format = match env.get("JOBLINE_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::new(
                    "JOBLINE_LOG_FORMAT",
                    other,
                    "expected `json` or `pretty`",
                ));
            }
        };
        let queue_name = env
            .get("JOBLINE_QUEUE_NAME")
            .unwrap_or_else(|| "generation_jobs".into());
        if queue_name.is_empty()
            || queue_name.len() > 80
            || !queue_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::new(
                "JOBLINE_QUEUE_NAME",
                &queue_name,
                "1-80 characters of A-Z, a-z, 0-9, '_' or '-'",
            ));
        }
        let (queue, queue_reason) = choose_queue(&env)?;
        let admin_key = env.get("JOBLINE_ADMIN_KEY").filter(|k| !k.is_empty());
        if let Some(key) = &admin_key
            && key.len() < 16
        {
            return Err(ConfigError::new(
                "JOBLINE_ADMIN_KEY",
                "(hidden)",
                "must be at least 16 characters",
            ));
        }
        let alert_webhook_url = match env.get("JOBLINE_ALERT_WEBHOOK_URL").filter(|u| !u.is_empty()) {
            None => None,
            Some(raw) => match reqwest::Url::parse(&raw) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Some(url),
                _ => {
                    return Err(ConfigError::new(
                        "JOBLINE_ALERT_WEBHOOK_URL",
                        "(hidden)",
                        "must be an http:// or https:// URL",
                    ));
                }
            },
        };
        let sentry_dsn = env.get("SENTRY_DSN").filter(|d| !d.is_empty());
        if let Some(dsn) = &sentry_dsn
            && dsn.parse::<sentry::types::Dsn>().is_err()
        {
            return Err(ConfigError::new(
                "SENTRY_DSN",
                "(hidden)",
                "not a Sentry DSN (https://<key>@<host>/<project>)",
            ));
        }
        Ok(Self {
            sentry_dsn,
            sentry_environment: env.get("SENTRY_ENVIRONMENT").filter(|e| !e.is_empty()),
            alert_webhook_url,
            alert_failure_rate: {
                let rate: f64 = env.number("JOBLINE_ALERT_FAILURE_RATE", 0.05, 0.0, 1.0)?;
                if !rate.is_finite() {
                    return Err(ConfigError::new(
                        "JOBLINE_ALERT_FAILURE_RATE",
                        &rate.to_string(),
                        "must be a fraction between 0 and 1",
                    ));
                }
                rate
            },
            database_url: env.get("DATABASE_URL").filter(|u| !u.is_empty()),
            pool_size: env.number("JOBLINE_POOL_SIZE", 10, 1, 1000)?,
            queue_name,
            queue,
            queue_reason,
            heartbeat_interval,
            heartbeat_timeout,
            stale_pending_after,
            outbox_grace,
            retention,
            prepared_statements: env.flag("JOBLINE_PREPARED_STATEMENTS", true)?,
            retry: RetryPolicy::new(base, cap),
            max_attempts: env.number("JOBLINE_MAX_ATTEMPTS", 5, 1, 100)?,
            max_body_bytes: env.number("JOBLINE_MAX_BODY_BYTES", 256 * 1024, 1024, 64 * 1024 * 1024)?,
            http_request_timeout: env.seconds_up_to("JOBLINE_HTTP_REQUEST_TIMEOUT_SECONDS", 30, 3600)?,
            http_max_concurrency: env.number("JOBLINE_HTTP_MAX_CONCURRENCY", 512, 1, 100_000)?,
            admin_key,
            log_filter: env
                .get("JOBLINE_LOG")
                .or_else(|| env.get("RUST_LOG"))
                .unwrap_or_else(|| "info".into()),
            log_format,
            job_types: job_types(&env, "JOBLINE_JOB_TYPES")?,
            consumer_job_types: job_types(&env, "JOBLINE_CONSUMER_JOB_TYPES")?,
            health: HealthThresholds {
                degraded_pending_age: env.number(
                    "JOBLINE_HEALTH_DEGRADED_PENDING_SECONDS",
                    60u32,
                    1,
                    86_400,
                )? as f64,
                unhealthy_pending_age: env.number(
                    "JOBLINE_HEALTH_UNHEALTHY_PENDING_SECONDS",
                    600u32,
                    1,
                    86_400,
                )? as f64,
                degraded_dead_letter: env.number(
                    "JOBLINE_HEALTH_DEGRADED_DEAD_LETTER",
                    1i64,
                    1,
                    1_000_000_000,
                )?,
                unhealthy_dead_letter: env.number(
                    "JOBLINE_HEALTH_UNHEALTHY_DEAD_LETTER",
                    100i64,
                    1,
                    1_000_000_000,
                )?,
            },
            webhook: WebhookConfig::read(&env)?,
            story: StoryConfig::read(&env)?,
            consumer: ConsumerConfig::read(&env)?,
            worker_metrics_listen: env.socket_addr("JOBLINE_WORKER_METRICS_LISTEN")?,
        })
    }

    /// `DATABASE_URL`, or an error naming it.
    pub fn require_database_url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_deref()
            .ok_or_else(|| ConfigError::new("DATABASE_URL", "", "is required (a postgres:// URL)"))
    }
}

/// `JOBLINE_QUEUE` when set (each adapter's own variables then required);
/// otherwise the native Redis connection first, REST second, then SQS, then
/// Postgres.
fn choose_queue(env: &Env<'_>) -> Result<(QueueChoice, String), ConfigError> {
    let redis = || {
        env.get("UPSTASH_REDIS_URL")
            .or_else(|| env.get("REDIS_URL"))
            .filter(|s| !s.is_empty())
    };
    let upstash = || {
        let url = env
            .get("UPSTASH_REDIS_REST_URL")
            .or_else(|| env.get("UPSTASH_REST_URL"))
            .filter(|s| !s.is_empty())?;
        let token = env
            .get("UPSTASH_REDIS_REST_TOKEN")
            .or_else(|| env.get("UPSTASH_REST_TOKEN"))
            .unwrap_or_default();
        Some((url, token))
    };
    let sqs = || env.get("SQS_QUEUE_URL").filter(|s| !s.is_empty());
    let explicit = env.get("JOBLINE_QUEUE").filter(|s| !s.is_empty());
    let choice = match explicit.as_deref() {
        Some("postgres") => QueueChoice::Postgres,
        Some("sqs") => QueueChoice::Sqs {
            queue_url: sqs()
                .ok_or_else(|| ConfigError::new("SQS_QUEUE_URL", "", "is required when JOBLINE_QUEUE=sqs"))?,
        },
        Some("redis") => QueueChoice::Redis {
            url: redis().ok_or_else(|| {
                ConfigError::new(
                    "REDIS_URL",
                    "",
                    "(or UPSTASH_REDIS_URL) is required when JOBLINE_QUEUE=redis",
                )
            })?,
        },
        Some("upstash") => {
            let (url, token) = upstash().ok_or_else(|| {
                ConfigError::new(
                    "UPSTASH_REDIS_REST_URL",
                    "",
                    "is required when JOBLINE_QUEUE=upstash",
                )
            })?;
            QueueChoice::Upstash { url, token }
        }
        Some(other) => {
            return Err(ConfigError::new(
                "JOBLINE_QUEUE",
                other,
                "expected sqs, upstash, redis or postgres",
            ));
        }
        None => {
            if let Some(url) = redis() {
                return Ok((
                    QueueChoice::Redis { url },
                    "auto: REDIS_URL/UPSTASH_REDIS_URL is set".into(),
                ));
            }
            if let Some((url, token)) = upstash() {
                check_token(&token)?;
                return Ok((
                    QueueChoice::Upstash { url, token },
                    "auto: UPSTASH_REDIS_REST_URL is set".into(),
                ));
            }
            if let Some(queue_url) = sqs() {
                return Ok((
                    QueueChoice::Sqs { queue_url },
                    "auto: SQS_QUEUE_URL is set".into(),
                ));
            }
            return Ok((QueueChoice::Postgres, "default: no broker configured".into()));
        }
    };
    if let QueueChoice::Upstash { token, .. } = &choice {
        check_token(token)?;
    }
    let reason = format!("JOBLINE_QUEUE={}", choice.kind());
    Ok((choice, reason))
}

/// A list of job types (`JOBLINE_JOB_TYPES`, `JOBLINE_CONSUMER_JOB_TYPES`):
/// each entry a valid job type name; no entries at all (unset, empty, only
/// commas) is `None`.
fn job_types(env: &Env<'_>, var: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(raw) = env.get(var) else {
        return Ok(None);
    };
    let mut types = Vec::new();
    for t in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        crate::domain::JobType::parse(t).map_err(|e| ConfigError::new(var, &raw, format!("{t:?}: {e}")))?;
        types.push(t.to_owned());
    }
    Ok((!types.is_empty()).then_some(types))
}

fn check_token(token: &str) -> Result<(), ConfigError> {
    if token.is_empty() {
        return Err(ConfigError::new(
            "UPSTASH_REDIS_REST_TOKEN",
            "",
            "is required with UPSTASH_REDIS_REST_URL",
        ));
    }
    Ok(())
}

/// Reads configuration variables with the same rules everywhere (the
/// shared config, the handlers', the consumer's): values are trimmed, an
/// empty value counts as unset, and a bad value is a [`ConfigError`] naming
/// its variable.
#[derive(Clone, Copy)]
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// The trimmed value; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A whole number within `min..=max`, or `default` when unset.
    pub fn number<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let value: T = raw
            .parse()
            .map_err(|_| ConfigError::new(name, &raw, "not a whole number"))?;
        if value < min || value > max {
            return Err(ConfigError::new(
                name,
                &raw,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(value)
    }

    /// Seconds within `1..=max`, or `default` when unset.
    pub fn seconds_up_to(&self, name: &'static str, default: u64, max: u64) -> Result<Duration, ConfigError> {
        self.number(name, default, 1, max).map(Duration::from_secs)
    }

    /// Seconds within a week, or `default` when unset.
    pub fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.seconds_up_to(name, default, 7 * 24 * 3600)
    }

    /// An `ip:port` address, or `None` when unset.
    pub fn socket_addr(&self, name: &'static str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        self.get(name)
            .map(|raw| {
                raw.parse().map_err(|_| {
                    ConfigError::new(name, &raw, "must be an ip:port address, e.g. 127.0.0.1:9464")
                })
            })
            .transpose()
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), or `default`.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(name, &raw, "must be true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.pool_size, 10);
        assert_eq!(c.queue_name, "generation_jobs");
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(60));
        assert_eq!(c.stale_pending_after, Duration::from_secs(300));
        assert_eq!(c.outbox_grace, Duration::from_secs(30));
        assert_eq!(c.retention, crate::store::Retention::default());
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.max_body_bytes, 262_144);
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.database_url.is_none());
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = config(&[("JOBLINE_POOL_SIZE", "many")]).unwrap_err();
        assert_eq!(err.var, "JOBLINE_POOL_SIZE");
        assert!(err.to_string().contains("JOBLINE_POOL_SIZE"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert_eq!(
            config(&[("JOBLINE_POOL_SIZE", "0")]).unwrap_err().var,
            "JOBLINE_POOL_SIZE"
        );
        assert_eq!(
            config(&[("JOBLINE_MAX_ATTEMPTS", "1000")]).unwrap_err().var,
            "JOBLINE_MAX_ATTEMPTS"
        );
    }

    #[test]
    fn the_sweeper_and_relay_timings_are_read() {
        let c = config(&[
            ("JOBLINE_STALE_PENDING_SECONDS", "3"),
            ("JOBLINE_OUTBOX_GRACE_SECONDS", "2"),
        ])
        .expect("valid");
        assert_eq!(c.stale_pending_after, Duration::from_secs(3));
        assert_eq!(c.outbox_grace, Duration::from_secs(2));
        assert_eq!(
            crate::sweeper::SweepConfig::from_config(&c)
                .expect("sweep config")
                .stale_pending_after,
            Duration::from_secs(3)
        );
        assert_eq!(
            crate::StoreSettings::from_config(&c).outbox_grace,
            Duration::from_secs(2)
        );
        assert_eq!(
            config(&[("JOBLINE_OUTBOX_GRACE_SECONDS", "0")]).unwrap_err().var,
            "JOBLINE_OUTBOX_GRACE_SECONDS"
        );
    }

    #[test]
    fn retention_is_read_per_status_and_zero_keeps_forever() {
        let c = config(&[
            ("JOBLINE_RETENTION_COMPLETED_SECONDS", "3600"),
            ("JOBLINE_RETENTION_CANCELLED_SECONDS", "0"),
        ])
        .expect("valid");
        assert_eq!(c.retention.completed, Some(Duration::from_secs(3600)));
        assert_eq!(c.retention.cancelled, None);
        assert_eq!(c.retention.failed, Some(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(
            config(&[("JOBLINE_RETENTION_FAILED_SECONDS", "-1")])
                .unwrap_err()
                .var,
            "JOBLINE_RETENTION_FAILED_SECONDS"
        );
        assert_eq!(
            config(&[("JOBLINE_RETENTION_FAILED_SECONDS", "999999999999")])
                .unwrap_err()
                .var,
            "JOBLINE_RETENTION_FAILED_SECONDS"
        );
    }

    #[test]
    fn the_alert_webhook_must_be_a_web_url_and_the_rate_a_fraction() {
        let c = config(&[
            (
                "JOBLINE_ALERT_WEBHOOK_URL",
                "https://hooks.example.com/services/T/B/x",
            ),
            ("JOBLINE_ALERT_FAILURE_RATE", "0.1"),
        ])
        .expect("valid");
        assert_eq!(
            c.alert_webhook_url.expect("set").host_str(),
            Some("hooks.example.com")
        );
        assert_eq!(c.alert_failure_rate, 0.1);
        let bad = config(&[("JOBLINE_ALERT_WEBHOOK_URL", "file:///etc/passwd")]).unwrap_err();
        assert_eq!(bad.var, "JOBLINE_ALERT_WEBHOOK_URL");
        assert!(
            !bad.to_string().contains("passwd"),
            "the value is a secret: {bad}"
        );
        for bad in ["2", "NaN", "-0.1", "lots"] {
            assert_eq!(
                config(&[("JOBLINE_ALERT_FAILURE_RATE", bad)]).unwrap_err().var,
                "JOBLINE_ALERT_FAILURE_RATE",
                "{bad}"
            );
        }
        let default = config(&[]).expect("valid");
        assert!(default.alert_webhook_url.is_none());
        assert_eq!(default.alert_failure_rate, 0.05);
    }

    #[test]
    fn a_sentry_dsn_is_checked_and_never_echoed() {
        let c = config(&[("SENTRY_DSN", "https://public@sentry.example.com/42")]).expect("valid");
        assert!(c.sentry_dsn.is_some());
        let bad = config(&[("SENTRY_DSN", "not a dsn with secret-stuff")]).unwrap_err();
        assert_eq!(bad.var, "SENTRY_DSN");
        assert!(!bad.to_string().contains("secret-stuff"), "{bad}");
    }

    #[test]
    fn heartbeat_timeout_must_exceed_interval() {
        let err = config(&[
            ("JOBLINE_HEARTBEAT_INTERVAL_SECONDS", "30"),
            ("JOBLINE_HEARTBEAT_TIMEOUT_SECONDS", "30"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "JOBLINE_HEARTBEAT_TIMEOUT_SECONDS");
    }

    #[test]
    fn log_format_and_queue_name_are_checked() {
        assert_eq!(
            config(&[("JOBLINE_LOG_FORMAT", "xml")]).unwrap_err().var,
            "JOBLINE_LOG_FORMAT"
        );
        assert_eq!(
            config(&[("JOBLINE_QUEUE_NAME", "a b")]).unwrap_err().var,
            "JOBLINE_QUEUE_NAME"
        );
        let c = config(&[("JOBLINE_LOG_FORMAT", "pretty"), ("RUST_LOG", "debug")]).expect("valid");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.log_filter, "debug");
    }

    #[test]
    fn the_queue_follows_jobline_queue_or_what_is_configured() {
        assert_eq!(config(&[]).expect("valid").queue, QueueChoice::Postgres);
        let redis =
            config(&[("REDIS_URL", "redis://h:6379"), ("SQS_QUEUE_URL", "https://q")]).expect("valid");
        assert_eq!(
            redis.queue,
            QueueChoice::Redis {
                url: "redis://h:6379".into()
            },
            "native Redis first"
        );
        let rest = config(&[("UPSTASH_REST_URL", "https://u"), ("UPSTASH_REST_TOKEN", "t")]).expect("valid");
        assert_eq!(
            rest.queue,
            QueueChoice::Upstash {
                url: "https://u".into(),
                token: "t".into()
            }
        );
        let sqs = config(&[("SQS_QUEUE_URL", "https://q")]).expect("valid");
        assert_eq!(
            sqs.queue,
            QueueChoice::Sqs {
                queue_url: "https://q".into()
            }
        );
        let forced = config(&[("JOBLINE_QUEUE", "postgres"), ("REDIS_URL", "redis://h")]).expect("valid");
        assert_eq!(forced.queue, QueueChoice::Postgres);
        assert_eq!(forced.queue_reason, "JOBLINE_QUEUE=postgres");
    }

    #[test]
    fn an_adapter_without_its_variables_is_refused_by_name() {
        assert_eq!(
            config(&[("JOBLINE_QUEUE", "sqs")]).unwrap_err().var,
            "SQS_QUEUE_URL"
        );
        assert_eq!(
            config(&[("JOBLINE_QUEUE", "redis")]).unwrap_err().var,
            "REDIS_URL"
        );
        assert_eq!(
            config(&[("JOBLINE_QUEUE", "upstash")]).unwrap_err().var,
            "UPSTASH_REDIS_REST_URL"
        );
        assert_eq!(
            config(&[("UPSTASH_REDIS_REST_URL", "https://u")])
                .unwrap_err()
                .var,
            "UPSTASH_REDIS_REST_TOKEN"
        );
        assert_eq!(
            config(&[("JOBLINE_QUEUE", "kafka")]).unwrap_err().var,
            "JOBLINE_QUEUE"
        );
    }

    #[test]
    fn handler_and_consumer_sections_are_read_with_the_rest() {
        let c = config(&[
            ("JOBLINE_WEBHOOK_TIMEOUT_SECONDS", "3"),
            ("JOBLINE_STORY_MODEL", "m"),
            ("JOBLINE_CONSUMER_CONCURRENCY", "2"),
        ])
        .expect("valid");
        assert_eq!(c.webhook.timeout, Duration::from_secs(3));
        assert_eq!(c.story.model, "m");
        assert_eq!(c.consumer.concurrency, 2);
        for (var, bad) in [
            ("JOBLINE_WEBHOOK_ALLOW_PRIVATE", "maybe"),
            ("JOBLINE_STORY_MAX_TOKENS", "0"),
            ("JOBLINE_CONSUMER_CONCURRENCY", "0"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn job_types_are_checked_and_an_empty_list_means_every_type() {
        assert_eq!(
            config(&[("JOBLINE_JOB_TYPES", " , ")]).expect("valid").job_types,
            None
        );
        assert_eq!(
            config(&[("JOBLINE_JOB_TYPES", "noop, story_script")])
                .expect("valid")
                .job_types,
            Some(vec!["noop".to_owned(), "story_script".to_owned()])
        );
        assert_eq!(
            config(&[("JOBLINE_JOB_TYPES", "noop,bad type")]).unwrap_err().var,
            "JOBLINE_JOB_TYPES"
        );
    }

    #[test]
    fn a_short_admin_key_is_refused_without_echoing_it() {
        let err = config(&[("JOBLINE_ADMIN_KEY", "short")]).unwrap_err();
        assert_eq!(err.var, "JOBLINE_ADMIN_KEY");
        assert!(!err.to_string().contains("short"));
    }

    #[test]
    fn the_worker_metrics_address_is_read_and_checked() {
        assert_eq!(config(&[]).expect("valid").worker_metrics_listen, None);
        let c = config(&[("JOBLINE_WORKER_METRICS_LISTEN", "127.0.0.1:9464")]).expect("valid");
        assert_eq!(c.worker_metrics_listen, Some(([127, 0, 0, 1], 9464).into()));
        let err = config(&[("JOBLINE_WORKER_METRICS_LISTEN", "localhost")]).unwrap_err();
        assert_eq!(err.var, "JOBLINE_WORKER_METRICS_LISTEN");
    }
}
