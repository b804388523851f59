//! The API's own requests: how many, by route and status code, and how long
//! they took, by route. The route is the route table's path template (the
//! matched path, `/v1/jobs/{id}`), never the raw URI, so the labels stay
//! bounded: `unmatched` for a request no route matched (404).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::MetricsError;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Request durations' buckets, in seconds: up to the default request
/// timeout (30 s).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "jobline_http_requests_total",
                    "HTTP requests answered, by route (path template) and status code.",
                ),
                &["route", "code"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "jobline_http_request_duration_seconds",
                    "Time to answer an HTTP request, by route (path template).",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["route"],
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        Ok(metrics)
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, code: axum::http::StatusCode, seconds: f64) {
        self.requests.with_label_values(&[route, code.as_str()]).inc();
        self.duration.with_label_values(&[route]).observe(seconds);
    }
}

/// The middleware: applied with `Router::layer`, it runs for each route
/// after routing (so the matched path is known) and outside the
/// concurrency and timeout guard (so its 503 and 408 answers are counted).
pub async fn track(metrics: Arc<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    metrics.observe(route, response.status(), started.elapsed().as_secs_f64());
    response
}
