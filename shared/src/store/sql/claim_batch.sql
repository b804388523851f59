-- pending → processing for up to $3 due jobs, in claim order: priority (0
-- first), then run_after, then creation. SKIP LOCKED lets any number of
-- claimers run at once without waiting on each other or taking a job twice.
-- NO KEY UPDATE, not UPDATE: the claim changes no key, and a FOR UPDATE
-- lock conflicts with the KEY SHARE lock an insert referencing the job holds
-- (an outbox row's foreign key; job_events had one until migration 0007), so
-- SKIP LOCKED passed over a job whose row was being referenced right after
-- its NOTIFY: a missed wake-up, the job left for the next one. NO KEY UPDATE
-- still excludes other claimers.
-- The claim's fencing token is the new `attempts`.
-- The first $5 (the claimer's free slots) may be any due job; the rest (its
-- local queue, claimed ahead) only jobs that will have an attempt left after
-- this one: a claim held ahead and lost with its worker (kill -9) is
-- released as a spent attempt, and must not be a job's last, which never ran.
-- $1 now · $2 worker id · $3 limit · $4 job types or NULL for all · $5 free slots
WITH free AS (
    SELECT id
    FROM jobs
    WHERE status = 'pending'
      AND run_after <= $1
      AND attempts < max_attempts
      AND ($4::text[] IS NULL OR job_type = ANY ($4))
    ORDER BY priority, run_after, created_at, id
    LIMIT least($3, $5)
    FOR NO KEY UPDATE SKIP LOCKED
),
ahead AS (
    SELECT id
    FROM jobs
    WHERE status = 'pending'
      AND run_after <= $1
      AND attempts + 1 < max_attempts
      AND ($4::text[] IS NULL OR job_type = ANY ($4))
      AND id NOT IN (SELECT id FROM free)
    ORDER BY priority, run_after, created_at, id
    LIMIT greatest($3 - $5, 0)
    FOR NO KEY UPDATE SKIP LOCKED
),
picked AS (
    SELECT id FROM free UNION ALL SELECT id FROM ahead
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
