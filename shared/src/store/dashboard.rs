//! The dashboard's own reads (`http::dashboard`): its lists of jobs and its
//! running jobs, each at a cost that does not follow the backlog (the
//! columns a row shows, index ranges cut at a row count) and under a
//! statement timeout of its own, because a page refreshes itself every 5 s
//! in every open tab.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::stats::RunningJob;
use super::{JobFilter, PageCursor, Store, StoreError, sql};
use crate::domain::JobStatus;

/// The most a dashboard statement may take (`SET LOCAL statement_timeout`):
/// past it the page answers 503 and tries again at its next refresh.
pub const DASHBOARD_STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Rows of each status range a type (or big correlation id) filter reads
/// per page (`dashboard_jobs.sql`).
pub const TYPE_SCAN_ROWS: i64 = 2_000;

/// A correlation id with at most this many jobs is read from its index
/// and sorted; a bigger one in slices, as a type.
pub const CORRELATION_SORT_ROWS: i64 = 5_000;

/// A job as a dashboard list shows it: never its payload or result, and its
/// failure reason cut to 500 characters.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub status: JobStatus,
    pub job_type: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i16,
    pub correlation_id: Option<String>,
    pub error_code: Option<String>,
    pub failure_reason: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A page of a dashboard list.
#[derive(Debug, Clone)]
pub struct SummaryPage {
    pub jobs: Vec<JobSummary>,
    /// Where the next page starts, if there is more to read.
    pub next_cursor: Option<PageCursor>,
    /// The page is short because the search was cut (a type filter reads
    /// at most [`TYPE_SCAN_ROWS`] of each status per page): older matches
    /// may follow at `next_cursor`.
    pub cut: bool,
}

impl JobSummary {
    fn from_row(r: &Row) -> Result<Option<Self>, tokio_postgres::Error> {
        let Some(id) = r.try_get::<_, Option<Uuid>>("id")? else {
            return Ok(None);
        };
        let status: String = r.try_get("status")?;
        Ok(Some(Self {
            id,
            created_at: r.try_get("created_at")?,
            status: status.parse().unwrap_or(JobStatus::Pending),
            job_type: r.try_get("job_type")?,
            attempts: r.try_get("attempts")?,
            max_attempts: r.try_get("max_attempts")?,
            priority: r.try_get("priority")?,
            correlation_id: r.try_get("correlation_id")?,
            error_code: r.try_get("error_code")?,
            failure_reason: r.try_get("failure_reason")?,
            completed_at: r.try_get("completed_at")?,
            updated_at: r.try_get("updated_at")?,
        }))
    }
}

impl Store {
    /// One of the dashboard's statements under
    /// [`DASHBOARD_STATEMENT_TIMEOUT`] ([`Store::read_bounded`]).
    async fn dashboard_read(
        &self,
        statement: &sql::Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.read_bounded(statement, params, DASHBOARD_STATEMENT_TIMEOUT)
            .await
    }

    /// A page of a tenant's jobs, newest first, for the dashboard's lists
    /// (`filter` as the API's; a correlation id of at most
    /// [`CORRELATION_SORT_ROWS`] jobs reads its own index, a bigger one is
    /// read in slices as a type).
    pub async fn dashboard_jobs(
        &self,
        tenant: &str,
        filter: &JobFilter,
        limit: u32,
        after: Option<PageCursor>,
    ) -> Result<SummaryPage, StoreError> {
        let limit = i64::from(limit.clamp(1, 500));
        let wanted = limit + 1;
        let tenant = tenant.to_owned();
        let status = filter.status.map(|s| s.as_str().to_owned());
        let (at, id) = (after.map(|c| c.created_at), after.map(|c| c.id));
        let small_correlation = match &filter.correlation_id {
            Some(correlation) => {
                let rows = self
                    .dashboard_read(
                        &sql::CORRELATION_SIZE,
                        &[&tenant, correlation, &(CORRELATION_SORT_ROWS + 1)],
                    )
                    .await?;
                let n: i64 = rows
                    .first()
                    .map(|r| r.try_get("n"))
                    .transpose()
                    .map_err(|e| StoreError::from_db("correlation_size", e))?
                    .unwrap_or(0);
                n <= CORRELATION_SORT_ROWS
            }
            None => false,
        };
        let rows = if small_correlation {
            self.dashboard_read(
                &sql::DASHBOARD_JOBS_CORRELATED,
                &[
                    &tenant,
                    &filter.correlation_id,
                    &status,
                    &filter.job_type,
                    &at,
                    &id,
                    &wanted,
                ],
            )
            .await?
        } else {
            let filtered = filter.job_type.is_some() || filter.correlation_id.is_some();
            let per_range = if filtered { TYPE_SCAN_ROWS } else { wanted };
            self.dashboard_read(
                &sql::DASHBOARD_JOBS,
                &[
                    &tenant,
                    &status,
                    &filter.job_type,
                    &filter.correlation_id,
                    &at,
                    &id,
                    &wanted,
                    &per_range,
                ],
            )
            .await?
        };
        let err = |e| StoreError::from_db("dashboard_jobs", e);
        let stop = match rows.first() {
            Some(r) => {
                let at: Option<DateTime<Utc>> = r.try_get("stop_at").map_err(err)?;
                let id: Option<Uuid> = r.try_get("stop_id").map_err(err)?;
                at.zip(id).map(|(created_at, id)| PageCursor { created_at, id })
            }
            None => None,
        };
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(j) = JobSummary::from_row(r).map_err(err)? {
                jobs.push(j);
            }
        }
        let full = jobs.len() as i64 > limit;
        jobs.truncate(limit as usize);
        let (next_cursor, cut) = if full {
            let last = jobs.last().map(|j| PageCursor {
                created_at: j.created_at,
                id: j.id,
            });
            (last, false)
        } else {
            let cut = stop.is_some();
            (stop, cut)
        };
        Ok(SummaryPage {
            jobs,
            next_cursor,
            cut,
        })
    }

    /// A tenant's running jobs, the oldest created first (an index range:
    /// the cost of `limit` rows however many run), at most `limit`.
    pub async fn running_for(&self, tenant: &str, limit: u32) -> Result<Vec<RunningJob>, StoreError> {
        let rows = self
            .dashboard_read(
                &sql::RUNNING_FOR,
                &[&tenant.to_owned(), &self.now(), &i64::from(limit.max(1))],
            )
            .await?;
        RunningJob::from_rows(&rows).map_err(|e| StoreError::from_db("running_for", e))
    }
}
