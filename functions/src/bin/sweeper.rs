//! Lambda function `sweeper`: on a schedule, releases stale claims, relays
//! the outbox and re-wakes due jobs whose message was lost (see
//! `jobline_functions::sweep`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobline_functions::sweep::run().await
}
