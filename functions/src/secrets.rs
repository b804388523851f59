//! Secrets by ARN, read once per cold start.
//!
//! A Lambda function's environment is readable by anyone allowed
//! `lambda:GetFunctionConfiguration`, so the deployed stack does not put
//! secrets there. It sets `<NAME>_SECRET_ARN` instead, the ARN of a Secrets
//! Manager secret whose `SecretString` is the value, for each name in
//! [`SECRET_VARS`]. [`config_from_env`] fetches them all at cold start (one
//! `GetSecretValue` each, concurrently), then builds the [`jobline::Config`]
//! from the environment with the fetched values in place; the functions keep
//! that configuration for the sandbox's life, so no request pays for it.
//!
//! Plain variables (`DATABASE_URL=...`) keep working, for local use and the
//! emulator; setting both a name and its `_SECRET_ARN` is refused, so there
//! is never a question of which one applies. Errors name the variable and the
//! ARN, never a secret's value.

use std::collections::HashMap;
use std::time::Duration;

/// The variables that may come from Secrets Manager.
pub const SECRET_VARS: &[&str] = &[
    "DATABASE_URL",
    "JOBLINE_ADMIN_KEY",
    "UPSTASH_REDIS_REST_TOKEN",
    "JOBLINE_WEBHOOK_SECRET",
    "OPENAI_API_KEY",
    "JOBLINE_ALERT_WEBHOOK_URL",
    "SENTRY_DSN",
];

/// The suffix of the variable that names a secret's ARN.
pub const ARN_SUFFIX: &str = "_SECRET_ARN";

/// How long the whole cold-start fetch may take (Lambda gives a function's
/// init 10 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(8);

/// Why the secrets could not be read. The function does not start: Lambda
/// reports the init error and retries the cold start.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{var}: set {name} or {var}, not both")]
    Both { name: &'static str, var: String },
    /// `shown` is the value's start up to its first `:` and its length,
    /// never the value: a secret pasted in the ARN's place must not reach
    /// the logs.
    #[error(
        "{var}: not a Secrets Manager secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>); got {shown}"
    )]
    NotAnArn { var: String, shown: String },
    #[error("{var}={arn}: {reason}")]
    Fetch {
        var: String,
        arn: String,
        reason: String,
    },
    #[error("{var}={arn}: the secret has no SecretString (binary secrets are not read)")]
    NotAString { var: String, arn: String },
    #[error("{var}={arn}: the secret's SecretString is empty")]
    Empty { var: String, arn: String },
    #[error("reading the secrets took longer than {0:?}")]
    Timeout(Duration),
}

/// One secret to read: the variable it fills and the ARN it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: &'static str,
    pub arn: String,
}

impl SecretRef {
    fn var(&self) -> String {
        format!("{}{ARN_SUFFIX}", self.name)
    }
}

/// The secrets the environment asks for, checked: each `<NAME>_SECRET_ARN`
/// that is set and not empty, for a name that is not also set itself.
pub fn wanted(lookup: &impl Fn(&str) -> Option<String>) -> Result<Vec<SecretRef>, SecretError> {
    let mut refs = Vec::new();
    for &name in SECRET_VARS {
        let var = format!("{name}{ARN_SUFFIX}");
        let Some(arn) = lookup(&var)
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
        else {
            continue;
        };
        if lookup(name).is_some_and(|v| !v.is_empty()) {
            return Err(SecretError::Both { name, var });
        }
        if !is_secret_arn(&arn) {
            let head: String = arn
                .split(':')
                .next()
                .unwrap_or_default()
                .chars()
                .take(12)
                .collect();
            let shown = format!("{head:?}... ({} characters)", arn.chars().count());
            return Err(SecretError::NotAnArn { var, shown });
        }
        refs.push(SecretRef { name, arn });
    }
    Ok(refs)
}

/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`.
fn is_secret_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "secretsmanager", region, account, "secret", name]
            if !partition.is_empty() && !region.is_empty() && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
    )
}

/// Reads every wanted secret with `client`, concurrently, within
/// [`FETCH_TIMEOUT`]: the values by variable name.
pub async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    refs: &[SecretRef],
) -> Result<HashMap<&'static str, String>, SecretError> {
    let reads = refs.iter().map(|r| async move {
        let out = client
            .get_secret_value()
            .secret_id(&r.arn)
            .send()
            .await
            .map_err(|e| SecretError::Fetch {
                var: r.var(),
                arn: r.arn.clone(),
                // The service's error code and message (AccessDenied,
                // ResourceNotFoundException, ...): never a value.
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
        let value = out.secret_string.ok_or_else(|| SecretError::NotAString {
            var: r.var(),
            arn: r.arn.clone(),
        })?;
        if value.trim().is_empty() {
            return Err(SecretError::Empty {
                var: r.var(),
                arn: r.arn.clone(),
            });
        }
        Ok((r.name, value))
    });
    let values = tokio::time::timeout(FETCH_TIMEOUT, futures::future::try_join_all(reads))
        .await
        .map_err(|_| SecretError::Timeout(FETCH_TIMEOUT))??;
    Ok(values.into_iter().collect())
}

/// `lookup` with the fetched values in place of their names.
pub fn overlay(
    lookup: impl Fn(&str) -> Option<String>,
    values: HashMap<&'static str, String>,
) -> impl Fn(&str) -> Option<String> {
    move |name| values.get(name).cloned().or_else(|| lookup(name))
}

/// The configuration from `lookup`, with its secrets read through `client`
/// (built only when a secret is wanted).
pub async fn config_from<F, C>(
    lookup: impl Fn(&str) -> Option<String>,
    client: F,
) -> Result<jobline::Config, lambda_runtime::Error>
where
    F: FnOnce() -> C,
    C: std::future::Future<Output = aws_sdk_secretsmanager::Client>,
{
    let refs = wanted(&lookup)?;
    let values = if refs.is_empty() {
        HashMap::new()
    } else {
        fetch(&client().await, &refs).await?
    };
    Ok(jobline::Config::from_lookup(overlay(lookup, values))?)
}

/// The process's configuration, its secrets read from Secrets Manager (the
/// client from the standard AWS chain: region, credentials and
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` from the environment). Called once
/// per cold start.
pub async fn config_from_env() -> Result<jobline::Config, lambda_runtime::Error> {
    config_from(
        |name| std::env::var(name).ok(),
        || async {
            jobline::store::pool::install_crypto_provider();
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            aws_sdk_secretsmanager::Client::new(&shared)
        },
    )
    .await
}
