-- pending → processing for up to $3 due jobs, in claim order: priority (0
-- first), then run_after, then creation. SKIP LOCKED lets any number of
-- claimers run at once without waiting on each other or taking a job twice.
-- NO KEY UPDATE, not UPDATE: the claim changes no key, and a FOR UPDATE
-- lock conflicts with the KEY SHARE lock any insert of a job_events row for
-- the job holds (its foreign key), so SKIP LOCKED passed over a job whose
-- `published` event was being written right after its NOTIFY: a missed
-- wake-up, the job left for the next one. NO KEY UPDATE still excludes
-- other claimers.
-- The claim's fencing token is the new `attempts`.
-- $1 now · $2 worker id · $3 limit · $4 job types or NULL for all
WITH picked AS (
    SELECT id
    FROM jobs
    WHERE status = 'pending'
      AND run_after <= $1
      AND attempts < max_attempts
      AND ($4::text[] IS NULL OR job_type = ANY ($4))
    ORDER BY priority, run_after, created_at, id
    LIMIT $3
    FOR NO KEY UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE jobs j
    SET status = 'processing', attempts = j.attempts + 1,
        locked_by = $2, locked_at = $1, heartbeat_at = $1, started_at = $1, updated_at = $1
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'claimed', 'pending', 'processing', attempts, $2, $1 FROM claimed
)
SELECT JOB_COLUMNS FROM claimed ORDER BY priority, run_after, created_at, id
