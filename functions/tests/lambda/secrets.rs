//! Secrets by ARN at cold start: real `GetSecretValue` calls to moto's
//! Secrets Manager (the same server as SQS, `AWS_ENDPOINT_URL_SQS`).

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use jobline::testing::test_db;
use jobline_functions::secrets::{self, SecretError, SecretRef};
use uuid::Uuid;

fn client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SQS")
        .expect("AWS_ENDPOINT_URL_SQS is not set: run the suite with scripts/test (it starts moto)");
    jobline::store::pool::install_crypto_provider();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// A new secret holding `value`: its ARN.
async fn secret(client: &Client, value: &str) -> String {
    client
        .create_secret()
        .name(format!("jobline-test/{}", Uuid::new_v4()))
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("arn")
}

fn env(pairs: Vec<(&str, String)>) -> impl Fn(&str) -> Option<String> + Clone {
    let map: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    move |name| map.get(name).cloned()
}

const ADMIN_KEY: &str = "jl_admin_from_secrets_manager_0123456789";

#[tokio::test]
async fn a_cold_start_reads_the_database_url_and_admin_key_from_their_arns() {
    let db = test_db().await;
    let sm = client();
    let url_arn = secret(&sm, &db.url).await;
    let key_arn = secret(&sm, ADMIN_KEY).await;
    let lookup = env(vec![
        ("DATABASE_URL_SECRET_ARN", url_arn),
        ("JOBLINE_ADMIN_KEY_SECRET_ARN", key_arn),
        ("JOBLINE_QUEUE", "postgres".to_owned()),
    ]);

    let config = secrets::config_from(lookup, || async { sm.clone() })
        .await
        .expect("config");

    assert_eq!(config.database_url.as_deref(), Some(db.url.as_str()));
    assert_eq!(config.admin_key.as_deref(), Some(ADMIN_KEY));
    // The URL read from the secret reaches the real database.
    let store = jobline::connect(&config).expect("connect");
    store.ping().await.expect("the database answers");
}

#[tokio::test]
async fn without_arns_no_secrets_client_is_built() {
    let config = secrets::config_from(
        env(vec![("DATABASE_URL", "postgres://u@127.0.0.1:1/db".to_owned())]),
        || async { panic!("no secret was asked for: Secrets Manager must not be called") },
    )
    .await
    .expect("config");
    assert_eq!(
        config.database_url.as_deref(),
        Some("postgres://u@127.0.0.1:1/db")
    );
}

#[tokio::test]
async fn a_missing_secret_stops_the_cold_start_naming_the_variable() {
    let sm = client();
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jobline-test/absent-AbCdEf".to_owned();
    let refs = [SecretRef {
        name: "DATABASE_URL",
        arn: arn.clone(),
    }];
    let err = secrets::fetch(&sm, &refs).await.unwrap_err();
    assert!(matches!(err, SecretError::Fetch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("DATABASE_URL_SECRET_ARN={arn}: ")),
        "{text}"
    );
    assert!(text.contains("ResourceNotFound"), "{text}");
}

#[tokio::test]
async fn an_empty_or_binary_secret_is_refused_without_its_value() {
    let sm = client();
    let empty = secret(&sm, " ").await;
    let binary = sm
        .create_secret()
        .name(format!("jobline-test/{}", Uuid::new_v4()))
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
            b"\x00\x01".to_vec(),
        ))
        .send()
        .await
        .expect("create")
        .arn
        .expect("arn");
    let one = |arn: &str| {
        [SecretRef {
            name: "JOBLINE_ADMIN_KEY",
            arn: arn.to_owned(),
        }]
    };
    let err = secrets::fetch(&sm, &one(&empty)).await.unwrap_err();
    assert!(matches!(err, SecretError::Empty { .. }), "{err}");
    let err = secrets::fetch(&sm, &one(&binary)).await.unwrap_err();
    assert!(matches!(err, SecretError::NotAString { .. }), "{err}");
}

#[test]
fn a_name_and_its_arn_together_are_refused_without_the_value() {
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jobline/database-url-AbCdEf";
    let err = secrets::wanted(&env(vec![
        ("DATABASE_URL_SECRET_ARN", arn.to_owned()),
        ("DATABASE_URL", "postgres://user:hunter2@db/x".to_owned()),
    ]))
    .unwrap_err();
    assert!(
        matches!(
            err,
            SecretError::Both {
                name: "DATABASE_URL",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn only_secrets_manager_arns_are_taken() {
    for bad in [
        "jobline/database-url",
        "arn:aws:ssm:us-east-1:123456789012:parameter/jobline/db",
        "arn:aws:secretsmanager:us-east-1:1234:secret:x",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
    ] {
        let err = secrets::wanted(&env(vec![("JOBLINE_ADMIN_KEY_SECRET_ARN", bad.to_owned())])).unwrap_err();
        assert!(matches!(err, SecretError::NotAnArn { .. }), "{bad}: {err}");
    }
    // A secret pasted in the ARN's place is not repeated in the error.
    let err = secrets::wanted(&env(vec![(
        "DATABASE_URL_SECRET_ARN",
        "postgres://jobline:hunter2@db.internal/jobs".to_owned(),
    )]))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("db.internal"),
        "{text}"
    );
    assert!(
        text.starts_with("DATABASE_URL_SECRET_ARN: not a Secrets Manager secret ARN"),
        "{text}"
    );
    let blank = secrets::wanted(&env(vec![("JOBLINE_ADMIN_KEY_SECRET_ARN", " ".to_owned())]));
    assert!(blank.expect("a blank ARN is unset").is_empty());
}
