//! What can go wrong in the store, split by what the caller should do.

use thiserror::Error;
use uuid::Uuid;

use crate::domain::JobStatus;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Postgres could not be reached or the pool is exhausted: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// No such job (or it belongs to another tenant).
    #[error("job {0} not found")]
    NotFound(Uuid),
    /// The job is not in a state this operation applies to.
    #[error("job {id} is {status}: cannot {action}")]
    InvalidTransition {
        id: Uuid,
        status: JobStatus,
        action: &'static str,
    },
    /// The idempotency key was used before with a different request.
    #[error("idempotency key {key:?} was already used with a different request (job {existing})")]
    IdempotencyConflict { key: String, existing: Uuid },
    /// The input broke a rule the schema enforces (a CHECK constraint).
    #[error("rejected by the store: {0}")]
    Rejected(String),
    /// Any other database error: a bug or an operational problem (500).
    #[error("{statement}: {}", describe(source))]
    Database {
        statement: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("migration {version} ({name}): {reason}")]
    Migration {
        version: i32,
        name: &'static str,
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn from_db(statement: &'static str, source: tokio_postgres::Error) -> Self {
        if source.is_closed() {
            return StoreError::Unavailable(format!("{statement}: connection closed"));
        }
        match source.as_db_error() {
            None => StoreError::Unavailable(format!("{statement}: {source}")),
            Some(db) => {
                let code = db.code().code();
                if matches!(code, "23514" | "22001" | "22P02" | "22021" | "22P05") {
                    // check_violation, string too long, invalid text
                    // representation, a NUL byte in text, \u0000 in jsonb
                    StoreError::Rejected(db.message().to_owned())
                } else if code.starts_with("08") || code == "57P01" || code == "57P03" {
                    // connection exceptions, admin shutdown, cannot connect now
                    StoreError::Unavailable(format!("{statement}: {}", db.message()))
                } else {
                    StoreError::Database { statement, source }
                }
            }
        }
    }

    /// The whole cause chain ("... TLS handshake: invalid peer certificate:
    /// UnknownIssuer"), so logs say why the pool could not connect.
    pub(crate) fn from_pool(err: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(crate::telemetry::error_chain(&err))
    }
}

/// A database error with what Postgres said (tokio-postgres' own text is
/// only "db error").
fn describe(source: &tokio_postgres::Error) -> String {
    match source.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => source.to_string(),
    }
}
