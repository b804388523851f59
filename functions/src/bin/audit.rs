//! Lambda function `audit`: one route of the jobline API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    jobline_functions::serve_route(jobline::http::RouteId::Audit).await
}
