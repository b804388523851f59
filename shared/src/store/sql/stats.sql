-- Queue health in one row: counts by status, the wait of the oldest due
-- pending job, the dead letter, and p50/p95 run time of jobs completed in the
-- last 24 hours, and the types of due pending jobs no consumer serves (as
-- rewake_due.sql decides it). $1 tenant or NULL for all · $2 now · $3 live
-- workers' cutoff · $4 consumer types or NULL
SELECT
    (SELECT coalesce(jsonb_agg(t ORDER BY t), '[]'::jsonb)
     FROM (SELECT DISTINCT j.job_type AS t
           FROM jobs j
           WHERE j.status = 'pending' AND j.run_after <= $2
             AND ($1::text IS NULL OR j.tenant_id = $1)
             AND NOT (
                 j.job_type = ANY(coalesce($4::text[], '{}'))
                 OR EXISTS (SELECT 1 FROM workers w
                            WHERE w.last_seen_at >= $3 AND w.state <> 'stopped'
                              AND (w.job_types IS NULL OR j.job_type = ANY(w.job_types)))
                 OR ($4::text[] IS NULL
                     AND NOT EXISTS (SELECT 1 FROM workers w
                                     WHERE w.last_seen_at >= $3 AND w.state <> 'stopped'))
             )) AS u) AS unserved_types,
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
