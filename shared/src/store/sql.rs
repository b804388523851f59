//! The statements of `store/sql/`, each with the types of its parameters.
//!
//! Statements are prepared once per connection and cached; with
//! `JOBLINE_PREPARED_STATEMENTS=false` they run with `query_typed` instead:
//! one round trip, an unnamed statement, no prepared-statement state left on
//! the connection, so a pooler in transaction mode (PgBouncer) can hand the
//! connection to anyone after.

use std::sync::LazyLock;

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::StoreError;

/// What `JOB_COLUMNS` stands for in the files: every column of `jobs`, the
/// status enum cast to text (an enum in a result would make the driver look
/// its type up with a prepared statement, mid-query).
const JOB_COLUMNS: &str = "id, tenant_id, job_type, status::text AS status, priority, payload, attempts, \
    max_attempts, run_after, correlation_id, idempotency_key, request_hash, stage, progress, result, \
    result_uri, failure_reason, error_code, initiated_by, locked_by, heartbeat_at, created_at, \
    updated_at, started_at, completed_at";

#[derive(Debug)]
pub(crate) struct Statement {
    pub name: &'static str,
    pub text: LazyLock<String>,
    pub types: &'static [Type],
}

pub(crate) fn expand(raw: &str) -> String {
    raw.replace("JOB_COLUMNS", JOB_COLUMNS)
}

macro_rules! statements {
    ($($name:ident = $file:literal, [$($ty:ident),* $(,)?];)*) => {
        $(
            pub(crate) static $name: Statement = Statement {
                name: $file,
                text: LazyLock::new(|| expand(include_str!(concat!("sql/", $file, ".sql")))),
                types: &[$(Type::$ty),*],
            };
        )*
        /// Every statement, for the checks below (generated: a statement
        /// cannot be left out).
        #[cfg(test)]
        pub(crate) static ALL: &[&Statement] = &[$(&$name),*];
    };
}

statements! {
    CREATE_JOBS = "create_jobs", [TIMESTAMPTZ, TEXT, TEXT, TIMESTAMPTZ, TEXT, INT4, UUID_ARRAY, TEXT_ARRAY, JSONB_ARRAY, INT2_ARRAY, TIMESTAMPTZ_ARRAY, INT4_ARRAY, INT4_ARRAY, TEXT_ARRAY, TEXT_ARRAY, TEXT_ARRAY, TEXT_ARRAY];
    GET_JOB = "get_job", [UUID, TEXT];
    LIST_JOBS = "list_jobs", [TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ, UUID, INT8];
    JOB_TIMELINE = "job_timeline", [UUID, TEXT];
    CLAIM_BATCH = "claim_batch", [TIMESTAMPTZ, TEXT, INT8, TEXT_ARRAY, INT8];
    CLAIM_BY_IDS = "claim_by_ids", [TIMESTAMPTZ, TEXT, UUID_ARRAY, TEXT_ARRAY];
    JOBS_BY_IDS = "jobs_by_ids", [UUID_ARRAY];
    HEARTBEAT = "heartbeat", [TIMESTAMPTZ, UUID, INT4, TEXT, FLOAT4];
    COMPLETE_MANY = "complete_many", [TIMESTAMPTZ, UUID_ARRAY, INT4_ARRAY, JSONB_ARRAY, TEXT_ARRAY, TEXT_ARRAY];
    FAIL = "fail", [TIMESTAMPTZ, UUID, INT4, TEXT, TIMESTAMPTZ, TEXT, TEXT, TEXT];
    CANCEL = "cancel", [TIMESTAMPTZ, UUID, TEXT, TEXT];
    RETRY = "retry", [TIMESTAMPTZ, UUID, TEXT, TEXT, INT4, TEXT, TEXT, TIMESTAMPTZ];
    RELEASE_STALE = "release_stale", [TIMESTAMPTZ, FLOAT8, INT8, TEXT, TEXT];
    AUDIT = "audit", [TIMESTAMPTZ, TIMESTAMPTZ, FLOAT8, FLOAT8, INT8, INT4];
    STATS = "stats", [TEXT, TIMESTAMPTZ, TIMESTAMPTZ, TEXT_ARRAY];
    PRUNE_JOBS = "prune_jobs", [TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, INT8];
    PRUNE_REPLAYS = "prune_replays", [TIMESTAMPTZ, INT8];
    COMPACT_JOB_COUNTS = "compact_job_counts", [TIMESTAMPTZ, TIMESTAMPTZ];
    ALERT_MOVE = "alert_move", [TEXT, TEXT, TIMESTAMPTZ];
    AUDIT_RECORD = "audit_record", [TEXT, TIMESTAMPTZ];
    AUDIT_LAST = "audit_last", [];
    ALERT_WORKERS = "alert_workers", [TIMESTAMPTZ, TIMESTAMPTZ];
    FAILURE_RATE = "failure_rate", [TEXT, TIMESTAMPTZ];
    NOTIFY = "notify", [TEXT_ARRAY];
    MARK_PUBLISHED = "mark_published", [TIMESTAMPTZ, INT8_ARRAY, TEXT_ARRAY];
    MARK_PUBLISH_FAILED = "mark_publish_failed", [TIMESTAMPTZ, INT8_ARRAY, TEXT, INT4, FLOAT8, FLOAT8];
    REPLAY_DEAD_LETTER = "replay_dead_letter", [TIMESTAMPTZ, TEXT, TEXT, TEXT, UUID_ARRAY, INT4, TEXT, INT8];
    DEAD_LETTER_OUTBOX = "dead_letter_outbox", [TEXT, INT8];
    RELAY_CLAIM = "relay_claim", [TIMESTAMPTZ, INT8, FLOAT8];
    CLAIMS_OF = "claims_of", [TEXT];
    HAND_BACK = "hand_back", [TIMESTAMPTZ, UUID_ARRAY, INT4_ARRAY, TEXT, TEXT, BOOL];
    REWAKE_DUE = "rewake_due", [TIMESTAMPTZ, TIMESTAMPTZ, INT8, TEXT, TIMESTAMPTZ, TEXT_ARRAY, TIMESTAMPTZ];
    RUNNING = "running", [TIMESTAMPTZ];
    TERMINATE_LISTENERS = "terminate_listeners", [];
    WORKER_BEAT = "worker_beat", [TIMESTAMPTZ, TEXT, TEXT, TEXT, TEXT, INT4, TIMESTAMPTZ, INT4, INT8, INT8, TEXT, TEXT_ARRAY];
    WORKER_LIST = "worker_list", [TIMESTAMPTZ, TIMESTAMPTZ];
    WORKER_STEER = "worker_steer", [TEXT, TEXT];
    FORGET_WORKERS = "forget_workers", [TIMESTAMPTZ, INT8];
    API_KEY_CREATE = "api_key_create", [UUID, TEXT, TEXT, BYTEA, TEXT_ARRAY, TIMESTAMPTZ];
    API_KEY_FIND = "api_key_find", [UUID];
    API_KEY_LIST = "api_key_list", [TEXT];
    API_KEY_REVOKE = "api_key_revoke", [UUID, TIMESTAMPTZ];
    API_KEY_TOUCH = "api_key_touch", [UUID, TIMESTAMPTZ];
    JOB_COUNTS = "job_counts", [TEXT];
    OUTBOX_DUE = "outbox_due", [TIMESTAMPTZ];
    DASHBOARD_SESSION_CREATE = "dashboard_session_create", [BYTEA, TEXT, TEXT_ARRAY, UUID, BYTEA, TEXT, TIMESTAMPTZ, TIMESTAMPTZ, INT8];
    DASHBOARD_SESSION_FIND = "dashboard_session_find", [BYTEA, TIMESTAMPTZ];
    DASHBOARD_SESSION_DELETE = "dashboard_session_delete", [BYTEA];
    DASHBOARD_SESSION_PRUNE = "dashboard_session_prune", [TIMESTAMPTZ, INT8];
    DASHBOARD_SERIES = "dashboard_series", [TEXT, TIMESTAMPTZ, TEXT];
    RUNNING_FOR = "running_for", [TEXT, TIMESTAMPTZ, INT8];
    DASHBOARD_JOBS = "dashboard_jobs", [TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ, UUID, INT8, INT8];
    DEAD_LETTER_ADOPT = "dead_letter_adopt", [INT8];
    DASHBOARD_JOBS_CORRELATED = "dashboard_jobs_correlated", [TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ, UUID, INT8];
    CORRELATION_SIZE = "correlation_size", [TEXT, TEXT, INT8];
    OUTBOX_NEXT_DUE = "outbox_next_due", [];
}

/// Where a statement runs: a pooled connection or a transaction on one, and
/// how it is sent. Prepared (`JOBLINE_PREPARED_STATEMENTS`, the default):
/// named once per connection and cached, so Postgres plans it once. Unnamed
/// (`query_typed`): parsed and planned on every call, which is what a
/// transaction-mode pooler without prepared-statement support needs.
#[derive(Clone, Copy)]
pub(crate) enum On<'a> {
    Client(&'a deadpool_postgres::ClientWrapper, bool),
    Tx(&'a deadpool_postgres::Transaction<'a>, bool),
}

impl Statement {
    pub(crate) async fn query(
        &self,
        on: On<'_>,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        assert_eq!(
            params.len(),
            self.types.len(),
            "statement {} takes {} parameters",
            self.name,
            self.types.len()
        );
        let db = |e| StoreError::from_db(self.name, e);
        match on {
            On::Client(c, true) => {
                let prepared = c.prepare_typed_cached(&self.text, self.types).await.map_err(db)?;
                c.query(&prepared, params).await.map_err(db)
            }
            On::Tx(t, true) => {
                let prepared = t.prepare_typed_cached(&self.text, self.types).await.map_err(db)?;
                t.query(&prepared, params).await.map_err(db)
            }
            On::Client(c, false) => c.query_typed(&self.text, &self.typed(params)).await.map_err(db),
            On::Tx(t, false) => t.query_typed(&self.text, &self.typed(params)).await.map_err(db),
        }
    }

    fn typed<'p>(&self, params: &[&'p (dyn ToSql + Sync)]) -> Vec<(&'p (dyn ToSql + Sync), Type)> {
        params
            .iter()
            .zip(self.types)
            .map(|(value, ty)| (*value, ty.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$n` a statement uses has a declared type, and every declared
    /// type is used.
    #[test]
    fn each_statement_declares_exactly_the_parameters_it_uses() {
        for st in ALL {
            let mut highest = 0;
            let text: &str = &st.text;
            let bytes = text.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'$' {
                    let digits: String = text[i + 1..].chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(n) = digits.parse::<usize>() {
                        highest = highest.max(n);
                    }
                }
            }
            assert_eq!(highest, st.types.len(), "{} uses ${highest}", st.name);
        }
    }

    /// Every file of `store/sql/` is a declared statement, and the other way
    /// round.
    #[test]
    fn every_sql_file_is_a_declared_statement() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/sql");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("store/sql")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".sql").map(str::to_owned)
            })
            .collect();
        files.sort();
        let mut declared: Vec<String> = ALL.iter().map(|s| s.name.to_owned()).collect();
        declared.sort();
        assert_eq!(files, declared);
    }
}
