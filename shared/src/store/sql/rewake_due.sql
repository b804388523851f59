-- The sweeper's re-wake: pending jobs due since before $2 (now minus the
-- stale-pending age) whose message may have been lost get a fresh outbox row,
-- due now, for the relay to publish. A job qualifies when nothing touched it
-- since $2 (`updated_at`) and it has no outbox row still to publish
-- (pending, failed: the relay's) nor one created or published since $2.
-- Setting `updated_at` records the wake-up and makes the statement safe to
-- run in parallel with itself: SKIP LOCKED passes over rows another sweeper
-- holds, and a row another sweeper already woke fails the re-check of
-- `updated_at <= $2` on its new version when it is locked.
-- $1 now · $2 threshold (now - stale pending age) · $3 limit · $4 queue
WITH due AS (
    SELECT j.id
    FROM jobs j
    WHERE j.status = 'pending' AND j.run_after <= $2 AND j.updated_at <= $2
      AND j.attempts < j.max_attempts
      AND NOT EXISTS (
          SELECT 1
          FROM outbox o
          WHERE o.job_id = j.id
            AND (o.status IN ('pending', 'failed') OR o.created_at > $2 OR o.updated_at > $2)
      )
    ORDER BY j.priority, j.run_after, j.created_at, j.id
    LIMIT $3
    FOR UPDATE OF j SKIP LOCKED
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
