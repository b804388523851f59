//! Lambda function `dashboard`: the web dashboard (`/dashboard` and every
//! page under it), one route of the jobline route table.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    jobline_functions::serve_route(jobline::http::RouteId::Dashboard).await
}
