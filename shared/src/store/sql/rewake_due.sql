-- The sweeper's re-wake: pending jobs due since before $2 (now minus the
-- stale-pending age) whose message is plausibly lost get a fresh outbox row,
-- due now, for the relay to publish. A job qualifies when nothing touched it
-- since $2 (`updated_at`), it has no outbox row still to publish (pending,
-- failed: the relay's) nor one created or published since $2, and:
--   - a consumer could take it: a worker seen since $5 serves its type
--     (`job_types` NULL: every type), or the configured consumer types $6
--     (the SQS Lambda's) include it, or nothing is known (no live worker, $6
--     NULL); a job of a type nobody serves is left alone (stats report it);
--   - its message is plausibly lost: no job of its type is processing (the
--     consumers of that type are idle while it waits), or it has waited since
--     before $7 (a long horizon) with no outbox row since $7. A backlog
--     behind busy consumers is not republished every sweep: its messages are
--     in the queue.
-- Setting `updated_at` records the wake-up and makes the statement safe to
-- run in parallel with itself: SKIP LOCKED passes over rows another sweeper
-- holds, and a row another sweeper already woke fails the re-check of
-- `updated_at <= $2` on its new version when it is locked.
-- $1 now · $2 threshold (now - stale pending age) · $3 limit · $4 queue
-- $5 live workers' cutoff · $6 consumer types or NULL · $7 long horizon
-- The served types (jobline_served_types, migration 0006), NULL meaning
-- every type; computed once.
WITH served AS MATERIALIZED (
    SELECT jobline_served_types($5, $6::text[]) AS types
),
-- Types with a job processing now (a few rows: `processing_jobs`).
busy AS (
    SELECT coalesce(array_agg(DISTINCT job_type), '{}') AS types
    FROM processing_jobs
),
due AS (
    SELECT j.id
    FROM jobs j, served, busy
    WHERE j.status = 'pending' AND j.run_after <= $2 AND j.updated_at <= $2
      AND j.attempts < j.max_attempts
      AND (served.types IS NULL OR j.job_type = ANY(served.types))
      AND (NOT j.job_type = ANY(busy.types)
           OR (j.run_after <= $7
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id AND o.created_at > $7)))
      AND NOT EXISTS (
          SELECT 1
          FROM outbox o
          WHERE o.job_id = j.id
            AND (o.status IN ('pending', 'failed') OR o.created_at > $2 OR o.updated_at > $2)
      )
    ORDER BY j.priority, j.run_after, j.created_at, j.id
    LIMIT $3
    FOR NO KEY UPDATE OF j SKIP LOCKED
),
woken AS (
    UPDATE jobs j
    SET updated_at = $1
    FROM due
    WHERE j.id = due.id AND j.status = 'pending'
    RETURNING j.id
)
INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
SELECT id, $4,
       jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM $1) * 1000)::bigint),
       $1, $1, $1
FROM woken
RETURNING id, job_id
