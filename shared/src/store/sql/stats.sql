-- Queue health in one row: counts by status, the wait of the oldest due
-- pending job, the dead letter, and p50/p95 run time of jobs completed in the
-- last 24 hours, and the types of due pending jobs no consumer serves
-- (jobline_served_types, migration 0006, as the re-wake decides it).
-- $1 tenant or NULL for all · $2 now · $3 live workers' cutoff · $4 consumer
-- types or NULL
SELECT
    (SELECT coalesce(jsonb_agg(t ORDER BY t), '[]'::jsonb)
     FROM (SELECT DISTINCT j.job_type AS t
           FROM jobs j, (SELECT jobline_served_types($3, $4::text[]) AS types) AS served
           WHERE j.status = 'pending' AND j.run_after <= $2
             AND ($1::text IS NULL OR j.tenant_id = $1)
             AND served.types IS NOT NULL AND NOT j.job_type = ANY(served.types)
           ) AS u) AS unserved_types,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
     FROM (SELECT status::text AS status, count(*) AS n
           FROM jobs WHERE $1::text IS NULL OR tenant_id = $1
           GROUP BY status) AS s) AS by_status,
    (SELECT extract(epoch FROM $2 - min(run_after))::float8
     FROM jobs
     WHERE status = 'pending' AND run_after <= $2 AND ($1::text IS NULL OR tenant_id = $1))
        AS oldest_pending_age_seconds,
    (SELECT count(*) FROM jobs WHERE status = 'failed' AND ($1::text IS NULL OR tenant_id = $1))
        AS dead_letter_jobs,
    (SELECT count(*) FROM outbox o JOIN jobs j ON j.id = o.job_id
     WHERE o.status = 'dead_letter' AND ($1::text IS NULL OR j.tenant_id = $1))
        AS dead_letter_outbox,
    (SELECT percentile_cont(ARRAY[0.5, 0.95]::float8[])
                WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at)::float8)
     FROM jobs
     WHERE status = 'completed' AND completed_at > $2 - interval '24 hours'
       AND ($1::text IS NULL OR tenant_id = $1)) AS durations
