-- A tenant's running jobs (the dashboard's Running page), the oldest
-- created first, at most $3: the (tenant, 'processing') range of
-- jobs_tenant_status_recent read from its old end, so the page costs $3
-- rows however many run. (Sorting by heartbeat instead would read the
-- whole range: 125 ms over the bench's 50,000 running jobs.) A claim that
-- goes stale behind 200 older live ones is not shown; the sweeper releases
-- it within its heartbeat timeout.
-- $1 tenant · $2 now · $3 limit
SELECT id, job_type, locked_by, attempts, stage, progress,
       extract(epoch FROM $2 - coalesce(started_at, updated_at))::float8 AS running_seconds,
       extract(epoch FROM $2 - coalesce(heartbeat_at, started_at, updated_at))::float8 AS heartbeat_age_seconds
FROM jobs
WHERE tenant_id = $1 AND status = 'processing'
ORDER BY created_at, id
LIMIT $3
