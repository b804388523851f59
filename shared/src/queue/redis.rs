//! The `redis` adapter: the reliable-queue layout of `redis_layout` (shared
//! with the `upstash` adapter, so the two interoperate on one Redis) over a
//! native connection: `REDIS_URL` or `UPSTASH_REDIS_URL`, TCP, TLS for
//! `rediss://`.
//!
//! Normal commands share one multiplexed connection (a `ConnectionManager`,
//! which reconnects by itself). Blocking commands (`BLMOVE`) each borrow a
//! dedicated connection from a small pool instead: a blocking command on a
//! multiplexed connection would hold up every other command behind it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable as _};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisError, Value};

use super::QueueError;
use super::redis_layout::{self, CallError, Cmd, Layout, LayoutOptions, Reply, Transport, queue_over_layout};

/// Settings of a [`RedisQueue`]; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// How long a consumer counts as alive after its last receive, ack or
    /// nack; after that, `recover()` hands its unacked messages to others.
    /// Default 60 s.
    pub consumer_ttl: Duration,
    /// The longest delay the adapter holds back itself (in
    /// `<queue>:delayed`); longer ones stay in the outbox. Default 7 days.
    pub max_delay: Duration,
    /// The longest single `BLMOVE`; a longer receive wait loops. Default 5 s.
    pub max_block: Duration,
    /// Timeout to open a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Timeout for the answer to a (non-blocking) command. Default 5 s.
    pub response_timeout: Duration,
    /// Attempts of a command that failed on the connection (I/O error,
    /// dropped connection, timeout), with exponential backoff from 100 ms.
    /// Default 3.
    pub attempts: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            consumer_ttl: redis_layout::DEFAULT_CONSUMER_TTL,
            max_delay: redis_layout::DEFAULT_MAX_DELAY,
            max_block: redis_layout::DEFAULT_MAX_BLOCK,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            attempts: 3,
        }
    }
}

/// A queue in Redis over a native connection. See the module docs of
/// `redis_layout` for the keys.
#[derive(Debug)]
pub struct RedisQueue {
    layout: Layout<RedisTransport>,
    max_delay: Duration,
}

impl RedisQueue {
    /// The queue `queue_name` on the Redis at `url` (`redis://`,
    /// `rediss://` for TLS, `redis+unix://`). Checks the URL but does not
    /// wait for the server: the first command connects (so a process can
    /// start while Redis is down; `check()` tells whether it is up). Must
    /// run inside the Tokio runtime (the connection manager lives there).
    pub async fn connect(url: &str, queue_name: &str, options: RedisOptions) -> Result<Self, QueueError> {
        // Two rustls crypto providers are linked in: pick one before any TLS.
        crate::store::pool::install_crypto_provider();
        let client = Client::open(url)
            .map_err(|e| QueueError::Misconfigured(format!("the Redis URL is not valid: {e}")))?;
        let addr = client.get_connection_info().addr();
        let endpoint = match addr {
            ConnectionAddr::TcpTls { .. } => format!("rediss://{addr}"),
            ConnectionAddr::Unix(_) => format!("unix://{addr}"),
            _ => format!("redis://{addr}"),
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // Our own loop retries (so a down server fails fast, and the
            // outbox keeps what could not be published).
            .set_number_of_retries(0);
        let manager = client
            .get_connection_manager_lazy(manager_config)
            .map_err(|e| QueueError::Misconfigured(format!("cannot set up the Redis connection: {e}")))?;
        let transport = RedisTransport {
            endpoint,
            client_name: client_name(queue_name),
            client,
            manager,
            blocking: Arc::new(Mutex::new(Vec::new())),
            connect_timeout: options.connect_timeout,
            attempts: options.attempts.max(1),
        };
        let layout = Layout::new(
            transport,
            queue_name,
            LayoutOptions {
                consumer_ttl: options.consumer_ttl,
                max_block: options.max_block,
            },
        )?;
        Ok(Self {
            layout,
            max_delay: options.max_delay,
        })
    }
}

queue_over_layout!(RedisQueue, "redis");

/// Blocking connections kept for reuse (more are opened when needed).
const IDLE_BLOCKING: usize = 8;

/// `CLIENT SETNAME` of the blocking connections, so `CLIENT LIST` shows
/// which queue a blocked client waits on.
fn client_name(queue: &str) -> String {
    let safe: String = queue
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("jobline:{safe}")
}

#[derive(Clone)]
struct RedisTransport {
    /// The server, without credentials (for logs and `Debug`).
    endpoint: String,
    client_name: String,
    client: Client,
    manager: ConnectionManager,
    blocking: Arc<Mutex<Vec<MultiplexedConnection>>>,
    connect_timeout: Duration,
    attempts: u32,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn to_cmd(parts: &[String]) -> redis::Cmd {
    let mut c = redis::cmd(parts.first().map(String::as_str).unwrap_or("PING"));
    for a in parts.iter().skip(1) {
        c.arg(a);
    }
    c
}

fn to_reply(v: Value) -> Result<Reply, CallError> {
    Ok(match v {
        Value::Nil => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(b) => Reply::Str(String::from_utf8_lossy(&b).into_owned()),
        Value::SimpleString(s) => Reply::Str(s),
        Value::Okay => Reply::Str("OK".into()),
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(to_reply).collect::<Result<_, _>>()?)
        }
        Value::Map(pairs) => Reply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .map(to_reply)
                .collect::<Result<_, _>>()?,
        ),
        Value::Attribute { data, .. } => to_reply(*data)?,
        Value::Double(d) => Reply::Str(d.to_string()),
        Value::Boolean(b) => Reply::Int(i64::from(b)),
        Value::VerbatimString { text, .. } => Reply::Str(text),
        Value::ServerError(e) => {
            return Err(CallError::Server(match e.details() {
                Some(d) => format!("{} {d}", e.code()),
                None => e.code().to_owned(),
            }));
        }
        other => Reply::Str(format!("{other:?}")),
    })
}

/// Server errors keep their text (`NOSCRIPT ...`); the rest is classified.
fn call_error(e: &RedisError) -> CallError {
    match e.kind() {
        ErrorKind::Server(_) | ErrorKind::Extension => CallError::Server(match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            _ => e.to_string(),
        }),
        ErrorKind::AuthenticationFailed => CallError::Queue(QueueError::Misconfigured(format!(
            "Redis refused the credentials: {e}"
        ))),
        ErrorKind::InvalidClientConfig => CallError::Queue(QueueError::Misconfigured(format!(
            "Redis client configuration: {e}"
        ))),
        _ => CallError::Queue(QueueError::Unavailable(format!("Redis: {e}"))),
    }
}

/// Worth another attempt: the connection failed, not the command.
fn transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

impl RedisTransport {
    async fn with_retries<F, Fut>(&self, mut run: F) -> Result<Value, CallError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<Value, RedisError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_times(self.attempts.saturating_sub(1) as usize);
        (|| run(self.manager.clone()))
            .retry(backoff)
            .when(transient)
            .notify(|e, delay| {
                tracing::debug!(endpoint = %self.endpoint, ?delay, error = %e, "Redis command failed; retrying");
            })
            .await
            .map_err(|e| call_error(&e))
    }

    async fn blocking_connection(&self) -> Result<MultiplexedConnection, CallError> {
        let idle = self.blocking.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // The caller bounds each blocking command itself.
            .set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| call_error(&e))?;
        // Only a label for operators: a server that refuses it is fine.
        let _ = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.client_name)
            .query_async::<Value>(&mut conn)
            .await;
        Ok(conn)
    }

    fn return_blocking(&self, conn: MultiplexedConnection) {
        if let Ok(mut idle) = self.blocking.lock()
            && idle.len() < IDLE_BLOCKING
        {
            idle.push(conn);
        }
    }
}

#[async_trait]
impl Transport for RedisTransport {
    async fn command(&self, cmd: Cmd) -> Result<Reply, CallError> {
        let c = to_cmd(&cmd);
        let v = self
            .with_retries(|mut conn| {
                let c = c.clone();
                async move { c.query_async::<Value>(&mut conn).await }
            })
            .await?;
        to_reply(v)
    }

    async fn pipeline(&self, cmds: Vec<Cmd>) -> Result<Vec<Reply>, CallError> {
        let mut p = redis::pipe();
        for c in &cmds {
            p.add_command(to_cmd(c));
        }
        let v = self
            .with_retries(|mut conn| {
                let p = p.clone();
                async move { p.query_async::<Value>(&mut conn).await }
            })
            .await?;
        match to_reply(v)? {
            Reply::Array(items) => Ok(items),
            other => Ok(vec![other]),
        }
    }

    async fn blocking(&self, cmd: Cmd, block: Duration) -> Result<Reply, CallError> {
        let mut conn = self.blocking_connection().await?;
        let c = to_cmd(&cmd);
        // Redis answers by itself when `block` is over; the margin covers
        // the round trip. Past it the connection is in an unknown state and
        // is dropped.
        let limit = block + self.connect_timeout;
        match tokio::time::timeout(limit, c.query_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => {
                self.return_blocking(conn);
                to_reply(v)
            }
            Ok(Err(e)) => {
                if !transient(&e) {
                    self.return_blocking(conn);
                }
                Err(call_error(&e))
            }
            Err(_) => Err(CallError::Queue(QueueError::Unavailable(format!(
                "Redis at {} did not answer a blocking command within {limit:?}",
                self.endpoint
            )))),
        }
    }
}
