//! Lambda wiring: each binary in `src/bin/` is one function that serves one
//! route of the API (`jobline::http::ROUTES`) with the same handlers as
//! `jobline serve`. Config (its secrets read from Secrets Manager by ARN,
//! [`secrets`]), the pool and the queue are built once per cold start;
//! lambda_http accepts API Gateway REST (v1), HTTP API (v2), ALB and
//! Function URL events.

pub mod consumer;
pub mod secrets;
pub mod sweep;

use jobline::http::RouteId;

/// What is left of an invocation (`Lambda-Runtime-Deadline-Ms`); `None`
/// when its deadline has already passed (Lambda never sends one; the
/// cargo-lambda emulator sends a fixed one in 1970).
pub fn time_left(context: &lambda_runtime::Context) -> Option<std::time::Duration> {
    context
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .ok()
}

/// Runs the Lambda runtime loop for one route.
pub async fn serve_route(route: RouteId) -> Result<(), lambda_http::Error> {
    let config = crate::secrets::config_from_env().await?;
    let _telemetry = jobline::telemetry::init(&config);
    let state = jobline::app::state(&config, route.def().function).await?;
    let app = jobline::http::routes(state, [route]);
    jobline::http::lambda::run(app).await
}
