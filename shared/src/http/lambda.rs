//! Serving a router as an AWS Lambda function (lambda_http: API Gateway
//! REST v1 and HTTP API v2, ALB and Function URL events).

use axum::Router;
use lambda_http::RequestExt as _;
use tower::ServiceExt as _;

/// lambda_http puts a named stage in front of the path (`/prod/v1/jobs`);
/// routes are matched on the path the client called (`/v1/jobs`).
pub fn without_stage(request: lambda_http::Request) -> lambda_http::Request {
    let raw = request.raw_http_path().to_owned();
    if raw.is_empty() || raw == request.uri().path() {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{raw}?{q}"),
        None => raw,
    };
    let mut uri = parts.uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        uri.path_and_query = Some(pq);
        if let Ok(fixed) = http::Uri::from_parts(uri) {
            parts.uri = fixed;
        }
    }
    lambda_http::Request::from_parts(parts, body)
}

/// The router as a Lambda service.
pub fn service(
    router: Router,
) -> impl tower::Service<
    lambda_http::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    router
        // What the invocation queued for Sentry goes before the answer does:
        // after it, the environment may freeze.
        .layer(axum::middleware::map_response(
            |response: axum::response::Response| async move {
                crate::telemetry::flush(crate::telemetry::LAMBDA_FLUSH);
                response
            },
        ))
        .map_request(|request: lambda_http::Request| {
            let request = without_stage(request);
            let (parts, body) = request.into_parts();
            http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()))
        })
}

/// Runs the Lambda runtime loop with `router` until the sandbox ends.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(service(router)).await
}
