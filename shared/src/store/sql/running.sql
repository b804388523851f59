-- What runs now, longest-running first (the running_jobs_monitor view, with
-- ages measured against the store's clock). $1 now
SELECT id, job_type, locked_by, attempts, stage, progress,
       extract(epoch FROM $1 - started_at)::float8   AS running_seconds,
       extract(epoch FROM $1 - heartbeat_at)::float8 AS heartbeat_age_seconds
FROM running_jobs_monitor
ORDER BY started_at
