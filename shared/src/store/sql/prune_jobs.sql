-- Retention: deletes up to $5 terminal jobs finished before their status's
-- cutoff, with their events and outbox rows, in one statement (one small
-- transaction). A NULL cutoff keeps that status forever.
--
-- The candidates come from `jobs_tenant_status_recent`, oldest first, one
-- index range per tenant (`job_tenants`, migration 0009) and status, bounded by
-- `created_at < cutoff` (a job is created before it finishes). They are
-- locked `SKIP LOCKED` and re-checked, so a retry or replay holding one is
-- skipped, never waited for, and a claim (pending rows) is never touched.
-- Deleting a job frees its idempotency key: the idempotency window is the
-- job's retention.
-- $1 now · $2 completed cutoff · $3 cancelled cutoff · $4 failed cutoff · $5 limit
WITH cutoffs (status, cutoff) AS (
    SELECT s.status, s.cutoff
    FROM (VALUES ('completed'::job_status, $2::timestamptz),
                 ('cancelled'::job_status, $3::timestamptz),
                 ('failed'::job_status, $4::timestamptz)) AS s (status, cutoff)
    WHERE s.cutoff IS NOT NULL
),
candidates AS (
    SELECT c.id
    FROM job_tenants t
    CROSS JOIN cutoffs
    CROSS JOIN LATERAL (
        -- The oldest 4 x $5 created before the cutoff, at most: a job
        -- created long ago that finished lately (a far run_after, a late
        -- retry) is read but not taken, so the work per statement stays
        -- bounded however many of those there are; the ones behind them
        -- wait until they expire too.
        SELECT j.id, j.completed_at FROM jobs j
        WHERE j.tenant_id = t.tenant_id AND j.status = cutoffs.status
          AND j.created_at < cutoffs.cutoff
        ORDER BY j.created_at
        LIMIT 4 * $5
    ) AS c
    WHERE c.completed_at < cutoffs.cutoff
    LIMIT $5
),
doomed AS (
    SELECT j.id
    FROM jobs j
    WHERE j.id IN (SELECT id FROM candidates)
      AND ((j.status = 'completed' AND j.completed_at < $2)
        OR (j.status = 'cancelled' AND j.completed_at < $3)
        OR (j.status = 'failed' AND j.completed_at < $4))
    FOR UPDATE OF j SKIP LOCKED
),
events AS (
    DELETE FROM job_events e WHERE e.job_id IN (SELECT id FROM doomed)
),
outbox_rows AS (
    DELETE FROM outbox o WHERE o.job_id IN (SELECT id FROM doomed)
)
DELETE FROM jobs j
WHERE j.id IN (SELECT id FROM doomed)
RETURNING j.id, j.status::text AS status
