-- The dashboard's Jobs page filtered by a correlation id: a range of
-- jobs_tenant_correlation (the jobs of one correlation id are few), newest
-- first, the columns a row shows. The same columns as dashboard_jobs.sql
-- (stop_at and stop_id always NULL: nothing is cut).
-- $1 tenant · $2 correlation id · $3 status or NULL · $4 type or NULL
-- $5, $6 cursor · $7 rows wanted (page size + 1)
SELECT NULL::timestamptz AS stop_at, NULL::uuid AS stop_id,
       j.id, j.created_at, j.status::text AS status, j.job_type, j.attempts, j.max_attempts,
       j.priority, j.correlation_id, j.error_code, left(j.failure_reason, 500) AS failure_reason,
       j.completed_at, j.updated_at
FROM jobs j
WHERE j.tenant_id = $1 AND j.correlation_id = $2
  AND ($3::text IS NULL OR j.status = $3::text::job_status)
  AND ($4::text IS NULL OR j.job_type = $4)
  AND ($5::timestamptz IS NULL OR (j.created_at, j.id) < ($5, $6::uuid))
ORDER BY j.created_at DESC, j.id DESC
LIMIT $7
