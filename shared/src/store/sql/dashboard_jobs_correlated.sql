-- The dashboard's Jobs page filtered by a correlation id that names at most
-- a few thousand jobs (correlation_size.sql decides): the range of
-- jobs_tenant_correlation, sorted, newest first, the columns a row shows.
-- The same columns as dashboard_jobs.sql (stop_at and stop_id always
-- NULL: nothing is cut).
-- $1 tenant · $2 correlation id · $3 status or NULL · $4 type or NULL
-- $5, $6 cursor or NULL · $7 rows wanted (page size + 1)
SELECT NULL::timestamptz AS stop_at, NULL::uuid AS stop_id,
       j.id, j.created_at, j.status::text AS status, j.job_type, j.attempts, j.max_attempts,
       j.priority, j.correlation_id, j.error_code, left(j.failure_reason, 500) AS failure_reason,
       j.completed_at, j.updated_at
FROM jobs j
WHERE j.tenant_id = $1 AND j.correlation_id = $2
  AND ($3::text IS NULL OR j.status = $3::text::job_status)
  AND ($4::text IS NULL OR j.job_type = $4)
  AND (j.created_at, j.id) < (coalesce($5::timestamptz, 'infinity'),
                              coalesce($6::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
ORDER BY j.created_at DESC, j.id DESC
LIMIT $7
