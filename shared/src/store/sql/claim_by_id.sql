-- pending → processing for the one job a queue message points at, only if it
-- is due (and of one of the worker's types, when it names them). Zero rows:
-- not claimable; the caller reads the job to say why.
-- $1 now · $2 worker id · $3 job id · $4 job types or NULL for all
WITH claimed AS (
    UPDATE jobs
    SET status = 'processing', attempts = attempts + 1,
        locked_by = $2, locked_at = $1, heartbeat_at = $1, started_at = $1, updated_at = $1
    WHERE id = $3 AND status = 'pending' AND run_after <= $1 AND attempts < max_attempts
      AND ($4::text[] IS NULL OR job_type = ANY ($4))
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'claimed', 'pending', 'processing', attempts, $2, $1 FROM claimed
)
SELECT JOB_COLUMNS FROM claimed
