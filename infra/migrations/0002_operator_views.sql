-- 0002: operator views. Read-only windows on the store for dashboards and
-- runbooks (docs/architecture.md lists the monitoring queries that use them).

-- Counts per job type and status, with the age of the oldest job in each cell.
CREATE VIEW job_queue_stats AS
SELECT
    job_type,
    status,
    count(*)                                              AS jobs,
    min(created_at)                                       AS oldest_created_at,
    extract(epoch FROM now() - min(created_at))::float8   AS oldest_age_seconds,
    count(*) FILTER (WHERE status = 'pending' AND run_after > now()) AS delayed
FROM jobs
GROUP BY job_type, status;

-- What is running right now, and how fresh each claim is.
CREATE VIEW running_jobs_monitor AS
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
FROM jobs
WHERE status = 'processing';

-- Duration of the last attempt (started_at → completed_at) for finished
-- jobs, and time so far for running ones, by status and type.
CREATE VIEW job_timing_stats AS
SELECT
    status,
    job_type,
    count(*)                                                          AS jobs,
    avg(d)                                                            AS avg_seconds,
    percentile_cont(0.5)  WITHIN GROUP (ORDER BY d)                   AS p50_seconds,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY d)                   AS p95_seconds
FROM (
    SELECT
        status,
        job_type,
        extract(epoch FROM coalesce(completed_at, now()) - started_at)::float8 AS d
    FROM jobs
    WHERE started_at IS NOT NULL
) AS timed
GROUP BY status, job_type;

-- Where jobs are in their handler's own pipeline (the stage it reports).
CREATE VIEW stage_distribution AS
SELECT
    job_type,
    status,
    coalesce(stage, '(none)') AS stage,
    count(*)                  AS jobs,
    avg(progress)::float8     AS avg_progress
FROM jobs
GROUP BY job_type, status, coalesce(stage, '(none)');

-- The dead letter: jobs that failed for good, newest first.
CREATE VIEW dead_letter_jobs AS
SELECT
    id,
    tenant_id,
    job_type,
    correlation_id,
    attempts,
    max_attempts,
    error_code,
    failure_reason,
    payload,
    created_at,
    completed_at AS failed_at
FROM jobs
WHERE status = 'failed'
ORDER BY completed_at DESC;
