//! The SQS consumer and the sweeper Lambdas, in process, against a real
//! Postgres (a template-cloned database per test, `JOBLINE_TEST_DATABASE_URL`)
//! and moto's SQS server (`AWS_ENDPOINT_URL_SQS`), as `scripts/test` starts
//! them. Events are built from JSON shaped like the ones Lambda sends.

mod consumer;
mod deadline;
mod secrets;
mod support;
mod sweeper;
