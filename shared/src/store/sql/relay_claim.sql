-- The relay's share of due outbox rows: locked with SKIP LOCKED and leased
-- (next_attempt_at pushed past the lease) in one statement, so relays
-- running at once never take the same row in one pass.
-- $1 now · $2 limit · $3 lease seconds
WITH due AS (
    SELECT id
    FROM outbox
    WHERE status IN ('pending', 'failed') AND next_attempt_at <= $1
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o
SET next_attempt_at = $1 + make_interval(secs => $3), updated_at = $1
FROM due, jobs j
WHERE o.id = due.id AND j.id = o.job_id
RETURNING o.id, o.job_id, j.run_after
