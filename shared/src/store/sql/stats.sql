-- Queue health in one row, at a cost that follows the backlog, not the
-- history: counts by status and the dead letter from `job_counts` (migration
-- 0009: exact, a few rows per tenant, type and hour); the wait of the oldest
-- due pending job from the claim index (one probe per priority); p50/p95 run
-- time of the last 1,000 jobs completed among those created in the last 24
-- hours (one index range per tenant); the dead-lettered outbox rows from
-- their partial index by tenant (migration 0011); and the types with
-- pending jobs (due or not) that no live consumer serves
-- (jobline_served_types, migration 0006), from `job_counts` too: nothing
-- here reads the backlog row by row.
-- $1 tenant or NULL for all · $2 now · $3 live workers' cutoff · $4 consumer
-- types or NULL
WITH tenants AS (
    -- job_tenants (0009): one index probe per tenant, only when asked for all.
    SELECT tenant_id FROM job_tenants WHERE $1::text IS NULL
    UNION ALL
    SELECT $1::text WHERE $1::text IS NOT NULL
),
counts AS (
    SELECT status::text AS status, sum(entered - exited)::bigint AS n
    FROM job_counts
    WHERE $1::text IS NULL OR tenant_id = $1
    GROUP BY status
),
recent AS (
    SELECT r.run
    FROM tenants t
    CROSS JOIN LATERAL (
        SELECT j.created_at, extract(epoch FROM j.completed_at - j.started_at)::float8 AS run
        FROM jobs j
        WHERE j.tenant_id = t.tenant_id AND j.status = 'completed'
          AND j.created_at > $2 - interval '24 hours'
        ORDER BY j.created_at DESC
        LIMIT 1000
    ) AS r
    ORDER BY r.created_at DESC
    LIMIT 1000
)
SELECT
    (SELECT coalesce(jsonb_agg(t ORDER BY t), '[]'::jsonb)
     FROM (SELECT c.job_type AS t
           FROM job_counts c, (SELECT jobline_served_types($3, $4::text[]) AS types) AS served
           WHERE c.status = 'pending'
             AND ($1::text IS NULL OR c.tenant_id = $1)
             AND served.types IS NOT NULL AND NOT c.job_type = ANY(served.types)
           GROUP BY c.job_type
           HAVING sum(c.entered - c.exited) > 0
           ) AS u) AS unserved_types,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb) FROM counts) AS by_status,
    (SELECT extract(epoch FROM $2 - min(first.run_after))::float8
     FROM (VALUES (0), (1), (2), (3)) AS p (priority)
     CROSS JOIN LATERAL (
         SELECT j.run_after FROM jobs j
         WHERE j.status = 'pending' AND j.priority = p.priority
           AND ($1::text IS NULL OR j.tenant_id = $1)
         ORDER BY j.run_after
         LIMIT 1
     ) AS first
     WHERE first.run_after <= $2) AS oldest_pending_age_seconds,
    (SELECT coalesce((SELECT n FROM counts WHERE status = 'failed'), 0)) AS dead_letter_jobs,
    (SELECT count(*) FROM outbox o
     WHERE o.status = 'dead_letter' AND ($1::text IS NULL OR o.tenant_id = $1))
        AS dead_letter_outbox,
    (SELECT percentile_cont(ARRAY[0.5, 0.95]::float8[]) WITHIN GROUP (ORDER BY run) FROM recent)
        AS durations
