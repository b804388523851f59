//! The test bed: `jobline::testing` (a database per test, cloned from a
//! migrated template, on a manual clock), plus the API over real HTTP.

use std::future::Future;
use std::time::Duration;

pub use jobline::testing::{TestDb, connect_raw, empty_database, test_db};

/// Asks `check` every 10 ms until it gives `Some`, for at most `within`
/// (`None` past it). Tests never sleep to wait for something: they poll
/// what they can observe, with a deadline.
pub async fn poll_for<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `done` comes true within `within` (asked every 10 ms, and at
/// least once).
pub async fn eventually<F, Fut>(within: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_for(within, || {
        let asked = done();
        async move { asked.await.then_some(()) }
    })
    .await
    .is_some()
}

/// A running API over a fresh database: `jobline serve`'s code on an
/// ephemeral port, with an admin key for tenant `default`.
pub struct TestApi {
    pub db: TestDb,
    pub base: String,
    pub http: reqwest::Client,
    pub state: jobline::http::AppState,
    /// The same adapter as the API's, as a worker takes it.
    pub feed: jobline::queue::Feed,
    pub config: jobline::Config,
}

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

pub async fn test_api() -> TestApi {
    test_api_with(&[]).await
}

/// With extra configuration variables (e.g. `JOBLINE_JOB_TYPES`).
pub async fn test_api_with(vars: &[(&str, &str)]) -> TestApi {
    let db = test_db().await;
    let mut all: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.push(("JOBLINE_ADMIN_KEY".into(), ADMIN_KEY.into()));
    all.push(("JOBLINE_QUEUE".into(), "postgres".into()));
    let config = jobline::Config::from_lookup(|k| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("test config");
    let feed = jobline::app::feed(&config, &db.store).await.expect("queue");
    let state = jobline::app::state_on(&config, db.store.clone(), &feed, "test-api");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let served = state.clone();
    tokio::spawn(async move {
        let _ = jobline::app::serve(listener, served, std::future::pending()).await;
    });
    TestApi {
        db,
        base,
        http: reqwest::Client::new(),
        state,
        feed,
        config,
    }
}

impl TestApi {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(ADMIN_KEY)
    }

    /// A request with `key`.
    pub fn with_key(&self, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(key)
    }

    /// `method path` with the admin key: its status and JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        send(self.admin(method, path)).await
    }

    /// `GET path` with the admin key.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path).await
    }

    /// `POST path` with `body` as JSON and the admin key.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        send(self.admin(reqwest::Method::POST, path).json(&body)).await
    }

    /// `method path` with `key`: its status and JSON body.
    pub async fn call_as(&self, key: &str, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        send(self.with_key(key, method, path)).await
    }

    pub async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.db
            .store
            .create_api_key(tenant, &scopes, None)
            .await
            .expect("key")
            .key
    }
}

/// Sends a request; its status and JSON body.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    read(request.send().await.expect("send")).await
}

/// Status and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// A test API on `adapter` (`postgres`, `sqs`, `redis` or `upstash`), each
/// on a queue of its own (a fresh SQS queue; a fresh queue name for the
/// Redis layouts), with the brokers `scripts/test` started.
pub async fn test_api_on(adapter: &str) -> TestApi {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let env = |var: &str| std::env::var(var).unwrap_or_else(|_| panic!("{var}: run scripts/test"));
    let vars: Vec<(String, String)> = match adapter {
        "postgres" => vec![],
        "sqs" => {
            let (url, _) = crate::queue_sqs::fresh_queue(&crate::queue_sqs::client(), 30, 10).await;
            vec![("SQS_QUEUE_URL".into(), url)]
        }
        "redis" => vec![
            ("REDIS_URL".into(), env("REDIS_URL")),
            ("JOBLINE_QUEUE_NAME".into(), name),
        ],
        "upstash" => vec![
            ("UPSTASH_REDIS_REST_URL".into(), env("UPSTASH_REDIS_REST_URL")),
            ("UPSTASH_REDIS_REST_TOKEN".into(), env("UPSTASH_REDIS_REST_TOKEN")),
            ("JOBLINE_QUEUE_NAME".into(), name),
        ],
        other => panic!("no adapter {other:?}"),
    };
    let mut all: Vec<(&str, &str)> = vec![("JOBLINE_QUEUE", adapter)];
    all.extend(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let api = test_api_with(&all).await;
    assert_eq!(api.state.enqueuer.publisher().queue().kind(), adapter);
    api
}

/// A LISTEN session of its own on `channel`: the channel of every
/// notification that arrives, in order.
pub async fn listen(
    url: &str,
    channel: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use futures::StreamExt as _;
    let (listener, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a LISTEN session");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = stream.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.channel().to_owned());
            }
        }
    });
    listener
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .expect("listen");
    (listener, rx)
}
