//! The `upstash` adapter: the reliable-queue layout of `redis_layout`
//! (shared with the `redis` adapter, so the two interoperate on one Redis)
//! over the Upstash Redis REST API, as Upstash documents it and its official
//! client speaks it:
//!
//! - every request is a `POST` with `Authorization: Bearer <token>`;
//! - one command is a JSON array (`["LPUSH", "generation_jobs", "..."]`)
//!   posted to the base URL, answered `{"result": ...}` or `{"error": "..."}`;
//! - a batch is a JSON array of those posted to `<base>/pipeline`, answered
//!   with an array of `{"result"}` / `{"error"}` entries.
//!
//! Replies are asked for as plain JSON (no `Upstash-Encoding: base64`).
//! Transient failures (network errors, timeouts, 408, 429, 5xx) are retried
//! with exponential backoff and jitter; a refused token (401) or a wrong
//! URL (404) fails at once with [`QueueError::Misconfigured`]. Blocking
//! commands are capped well under the HTTP timeout; a longer receive wait
//! loops.
//!
//! Environment (read by the configuration, not here):
//! `UPSTASH_REDIS_REST_URL` + `UPSTASH_REDIS_REST_TOKEN`, or
//! `UPSTASH_REST_URL` + `UPSTASH_REST_TOKEN`.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable as _};
use serde_json::Value;

use super::QueueError;
use super::redis_layout::{self, CallError, Cmd, Layout, LayoutOptions, Reply, Transport, queue_over_layout};

/// Settings of an [`UpstashQueue`]; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct UpstashOptions {
    /// As [`RedisOptions::consumer_ttl`](super::redis::RedisOptions::consumer_ttl)
    /// (the two adapters share the layout). Default 60 s.
    pub consumer_ttl: Duration,
    /// As [`RedisOptions::max_delay`](super::redis::RedisOptions::max_delay).
    /// Default 7 days.
    pub max_delay: Duration,
    /// Timeout of one HTTP request, connecting included. Default 10 s.
    pub http_timeout: Duration,
    /// The longest single blocking command (`BLMOVE`); a longer receive
    /// wait loops. Never more than half of `http_timeout`. Default 5 s.
    pub max_block: Duration,
    /// Attempts of a request that failed transiently. Default 4.
    pub attempts: u32,
    /// Backoff before the first retry, doubled for each further one (capped
    /// at 5 s, with jitter). Default 100 ms.
    pub backoff: Duration,
}

impl Default for UpstashOptions {
    fn default() -> Self {
        Self {
            consumer_ttl: redis_layout::DEFAULT_CONSUMER_TTL,
            max_delay: redis_layout::DEFAULT_MAX_DELAY,
            http_timeout: Duration::from_secs(10),
            max_block: redis_layout::DEFAULT_MAX_BLOCK,
            attempts: 4,
            backoff: Duration::from_millis(100),
        }
    }
}

/// A queue in an Upstash Redis database (or any server speaking its REST
/// protocol), over HTTPS. See the module docs of `redis_layout` for the keys.
#[derive(Debug)]
pub struct UpstashQueue {
    layout: Layout<RestTransport>,
    max_delay: Duration,
}

impl UpstashQueue {
    /// The queue `queue_name` in the database at `url` (the REST URL, e.g.
    /// `https://eu1-xxx.upstash.io`) with the REST `token`. Checks the
    /// values but sends nothing: `check()` tells whether the server is up
    /// and takes the token.
    pub fn new(
        url: &str,
        token: &str,
        queue_name: &str,
        options: UpstashOptions,
    ) -> Result<Self, QueueError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
            QueueError::Misconfigured(format!("the Upstash REST URL is not a valid URL ({e})"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(QueueError::Misconfigured(
                "the Upstash REST URL must be an http(s) URL with a host, e.g. https://xxx.upstash.io".into(),
            ));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(QueueError::Misconfigured(
                "the Upstash REST token is empty".into(),
            ));
        }
        crate::store::pool::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .connect_timeout(options.http_timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| QueueError::Misconfigured(format!("cannot build the HTTP client: {e}")))?;
        let transport = RestTransport {
            http,
            base: url.trim().trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            attempts: options.attempts.max(1),
            backoff: options.backoff,
        };
        let layout = Layout::new(
            transport,
            queue_name,
            LayoutOptions {
                consumer_ttl: options.consumer_ttl,
                max_block: options.max_block.min(options.http_timeout / 2),
            },
        )?;
        Ok(Self {
            layout,
            max_delay: options.max_delay,
        })
    }
}

queue_over_layout!(UpstashQueue, "upstash");

struct RestTransport {
    http: reqwest::Client,
    base: String,
    token: String,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for RestTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestTransport")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The `error` of a reply body, or the start of the body.
fn error_text(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(o)) => match o.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => body.chars().take(200).collect(),
        },
        _ => body.chars().take(200).collect(),
    }
}

fn reply_from_json(v: Value) -> Reply {
    match v {
        Value::Null => Reply::Nil,
        Value::Bool(b) => Reply::Int(i64::from(b)),
        Value::Number(n) => n.as_i64().map_or_else(|| Reply::Str(n.to_string()), Reply::Int),
        Value::String(s) => Reply::Str(s),
        Value::Array(items) => Reply::Array(items.into_iter().map(reply_from_json).collect()),
        Value::Object(o) => Reply::Str(Value::Object(o).to_string()),
    }
}

/// One `{"result": ...}` / `{"error": "..."}` entry.
fn entry(v: Value) -> Result<Reply, CallError> {
    match v {
        Value::Object(mut o) => {
            if let Some(e) = o.remove("error") {
                return Err(CallError::Server(match e {
                    Value::String(s) => s,
                    other => other.to_string(),
                }));
            }
            match o.remove("result") {
                Some(r) => Ok(reply_from_json(r)),
                None => Err(CallError::Queue(QueueError::Unavailable(format!(
                    "Upstash answered an entry without result or error: {}",
                    Value::Object(o)
                )))),
            }
        }
        other => Err(CallError::Queue(QueueError::Unavailable(format!(
            "Upstash answered {other} where {{\"result\": ...}} was expected"
        )))),
    }
}

impl RestTransport {
    /// Posts `body` to the base URL + `path` and returns the reply's JSON,
    /// retrying transient failures (network errors, 408, 429, 5xx) with
    /// jittered exponential backoff, capped at 5 s.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.backoff)
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize);
        let tries = std::sync::atomic::AtomicU32::new(0);
        let outcome = (|| {
            tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.post_once(&url, body)
        })
        .retry(backoff)
        .when(|e| matches!(e, Attempt::Transient(_)))
        .notify(|e, delay| {
            tracing::debug!(url, ?delay, failure = %e, "Upstash request failed; retrying");
        })
        .await;
        match outcome {
            Ok(value) => Ok(value),
            Err(Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Transient(failure)) => {
                let n = tries.load(std::sync::atomic::Ordering::Relaxed);
                let tries = if n == 1 {
                    "1 attempt".to_owned()
                } else {
                    format!("{n} attempts")
                };
                Err(CallError::Queue(QueueError::Unavailable(format!(
                    "{failure} (gave up after {tries})"
                ))))
            }
        }
    }

    /// One request: the reply's JSON, a failure worth another attempt, or
    /// one that is not.
    async fn post_once(&self, url: &str, body: &Value) -> Result<Value, Attempt> {
        let failure = match self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
        {
            Err(e) => format!("request to {url} failed: {}", crate::telemetry::error_chain(&e)),
            Ok(resp) => {
                let status = resp.status();
                match resp.text().await {
                    Err(e) => format!(
                        "reading the reply from {url} failed: {}",
                        crate::telemetry::error_chain(&e)
                    ),
                    Ok(text) if status.is_success() => {
                        return serde_json::from_str(&text).map_err(|e| {
                            Attempt::Fatal(CallError::Queue(QueueError::Unavailable(format!(
                                "Upstash answered {status} with a body that is not JSON ({e}): {}",
                                text.chars().take(200).collect::<String>()
                            ))))
                        });
                    }
                    Ok(text) => {
                        let msg = error_text(&text);
                        match status.as_u16() {
                            401 => {
                                return Err(Attempt::Fatal(CallError::Queue(QueueError::Misconfigured(
                                    format!(
                                        "Upstash refused the token (401 Unauthorized: {msg}); \
                                     check UPSTASH_REDIS_REST_TOKEN"
                                    ),
                                ))));
                            }
                            403 => {
                                return Err(Attempt::Fatal(CallError::Queue(QueueError::Misconfigured(
                                    format!(
                                        "Upstash refused the command for this token (403 Forbidden: {msg}); \
                                     a read-only token cannot run a queue"
                                    ),
                                ))));
                            }
                            404 => {
                                return Err(Attempt::Fatal(CallError::Queue(QueueError::Misconfigured(
                                    format!(
                                        "Upstash answered 404 Not Found for {url} ({msg}); \
                                     check UPSTASH_REDIS_REST_URL"
                                    ),
                                ))));
                            }
                            408 | 429 | 500..=599 => format!("Upstash answered {status}: {msg}"),
                            // 400: a Redis error (or a request it could not read).
                            _ => return Err(Attempt::Fatal(CallError::Server(msg))),
                        }
                    }
                }
            }
        };
        Err(Attempt::Transient(failure))
    }
}

/// How one request to Upstash failed.
#[derive(Debug)]
enum Attempt {
    /// Worth another attempt (network, 408, 429, 5xx).
    Transient(String),
    Fatal(CallError),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Transient(failure) => f.write_str(failure),
            Attempt::Fatal(e) => write!(f, "{e:?}"),
        }
    }
}

#[async_trait]
impl Transport for RestTransport {
    async fn command(&self, cmd: Cmd) -> Result<Reply, CallError> {
        let reply = self.post("", &Value::from(cmd)).await?;
        entry(reply)
    }

    async fn pipeline(&self, cmds: Vec<Cmd>) -> Result<Vec<Reply>, CallError> {
        let count = cmds.len();
        let body = Value::Array(cmds.into_iter().map(Value::from).collect());
        match self.post("/pipeline", &body).await? {
            Value::Array(entries) if entries.len() == count => entries.into_iter().map(entry).collect(),
            other => Err(CallError::Queue(QueueError::Unavailable(format!(
                "Upstash answered a pipeline of {count} with {}",
                other.to_string().chars().take(200).collect::<String>()
            )))),
        }
    }

    /// Blocking commands are plain requests: the layout keeps their block
    /// time at most half the HTTP timeout.
    async fn blocking(&self, cmd: Cmd, _block: Duration) -> Result<Reply, CallError> {
        self.command(cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_from_json() {
        let v: Value = serde_json::from_str(r#"["a", 3, null, ["b"]]"#).expect("json");
        assert_eq!(
            reply_from_json(v),
            Reply::Array(vec![
                Reply::Str("a".into()),
                Reply::Int(3),
                Reply::Nil,
                Reply::Array(vec![Reply::Str("b".into())]),
            ])
        );
    }

    #[test]
    fn entries_carry_results_or_errors() {
        assert_eq!(
            entry(serde_json::json!({"result": "OK"})).ok(),
            Some(Reply::Str("OK".into()))
        );
        assert!(matches!(
            entry(serde_json::json!({"error": "NOSCRIPT No matching script"})),
            Err(CallError::Server(m)) if m.starts_with("NOSCRIPT")
        ));
    }

    #[test]
    fn bad_values_are_refused_up_front() {
        let bad_url = UpstashQueue::new("not a url", "t", "q", UpstashOptions::default());
        assert!(matches!(bad_url, Err(QueueError::Misconfigured(_))));
        let ftp = UpstashQueue::new("ftp://x.upstash.io", "t", "q", UpstashOptions::default());
        assert!(matches!(ftp, Err(QueueError::Misconfigured(_))));
        let no_token = UpstashQueue::new("https://x.upstash.io", " ", "q", UpstashOptions::default());
        assert!(matches!(no_token, Err(QueueError::Misconfigured(_))));
        let no_name = UpstashQueue::new("https://x.upstash.io", "t", "", UpstashOptions::default());
        assert!(matches!(no_name, Err(QueueError::Misconfigured(_))));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let q = UpstashQueue::new(
            "https://x.upstash.io",
            "s3cret-token",
            "q",
            UpstashOptions::default(),
        )
        .expect("queue");
        let shown = format!("{q:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert!(shown.contains("x.upstash.io"), "{shown}");
    }
}
