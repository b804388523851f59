//! Not a deployed function: a Lambda that panics on every event whose body
//! says so, built with the same release profile as the real functions, so
//! `scripts/build-lambdas` can show a panic is reported to the runtime as an
//! error for that one event and the sandbox keeps serving (no
//! `panic = "abort"`).

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        if event.payload["panic"] == json!(true) {
            panic!("panic-probe was asked to panic");
        }
        Ok::<Value, lambda_runtime::Error>(json!({ "ok": true }))
    }))
    .await
}
