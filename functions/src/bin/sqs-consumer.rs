//! Lambda function `sqs-consumer`: runs the jobs its SQS event names and
//! answers with partial batch failures (see `jobline_functions::consumer`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobline_functions::consumer::run().await
}
