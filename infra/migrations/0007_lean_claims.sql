-- 0007: a job's claim and completion touch as little as they can.
--
-- 1. No index on processing jobs. `jobs_processing_heartbeat` (0001) got an
--    entry at every claim and kept a dead one after every completion, and
--    the planner walked it (the whole of it, per input row) to complete a
--    batch by id: a drain of 20,000 jobs claimed and completed 200 at a time
--    ran at 16,000 jobs/s with it and 21,500 without (pgbench, 4 clients,
--    fsync on; an index on (locked_by) or (id) of processing jobs cost the
--    same). What needs the processing jobs (stale release, a worker's
--    claims, the running view, re-wake) reads them through
--    `processing_jobs`: per tenant, the (tenant, status) range of
--    `jobs_tenant_status_recent`, which every transition writes anyway.
-- 2. `job_events` has no foreign key to `jobs`: the key's check ran a query
--    and took a row lock on the job for every event written (2 per attempt),
--    7% of a drain. Events are written only by the statements that change
--    their job, in the same statement; nothing deletes jobs, and retention
--    will delete a job's events with it.
-- 3. `handed_back`: a claim a worker took into its local queue and never
--    started goes back to pending without spending the attempt.

DROP INDEX jobs_processing_heartbeat;
ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;

ALTER TABLE job_events DROP CONSTRAINT job_events_event_check;
-- NOT VALID: the rows there passed the narrower check; validating them
-- would read the whole (largest) table under this migration's lock.
ALTER TABLE job_events ADD CONSTRAINT job_events_event_check CHECK (event IN (
    'created', 'published', 'claimed', 'heartbeat_released', 'retry_scheduled',
    'completed', 'failed', 'cancelled', 'retried', 'replayed', 'handed_back')) NOT VALID;

-- The processing jobs, without an index of their own: the tenants one index
-- step each (a loose scan of jobs_tenant_recent), then each tenant's
-- processing range of jobs_tenant_status_recent. Cost: one step per tenant
-- plus the jobs processing now (and the index entries of jobs that stopped
-- processing since the last vacuum).
CREATE VIEW processing_jobs AS
WITH RECURSIVE tenants (tenant_id) AS (
    (SELECT tenant_id FROM jobs ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant_id FROM jobs j WHERE j.tenant_id > t.tenant_id ORDER BY j.tenant_id LIMIT 1)
    FROM tenants t
    WHERE t.tenant_id IS NOT NULL
)
SELECT p.*
FROM tenants t
CROSS JOIN LATERAL (
    -- OFFSET 0 keeps this a per-tenant index scan: flattened, the planner
    -- joins the tenants to a scan of the whole table.
    SELECT j.* FROM jobs j WHERE j.tenant_id = t.tenant_id AND j.status = 'processing' OFFSET 0
) p
WHERE t.tenant_id IS NOT NULL;

CREATE OR REPLACE VIEW running_jobs_monitor AS
SELECT
    id,
    tenant_id,
    job_type,
    correlation_id,
    locked_by,
    attempts,
    max_attempts,
    stage,
    progress,
    started_at,
    heartbeat_at,
    extract(epoch FROM now() - started_at)::float8   AS running_seconds,
    extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age_seconds
FROM processing_jobs;
