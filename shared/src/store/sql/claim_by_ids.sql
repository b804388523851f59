-- pending → processing for the jobs some queue messages point at (a batch a
-- consumer received together: an SQS event's records, a broker receive),
-- each only if it is due (and of one of the worker's types, when it names
-- them). A job not returned was not claimable; the caller reads those jobs
-- (jobs_by_ids.sql) to say why. An id given twice is claimed once.
-- $1 now · $2 worker id · $3 job ids · $4 job types or NULL for all
WITH claimed AS (
    UPDATE jobs
    SET status = 'processing', attempts = attempts + 1,
        locked_by = $2, locked_at = $1, heartbeat_at = $1, started_at = $1, updated_at = $1
    WHERE id = ANY ($3) AND status = 'pending' AND run_after <= $1 AND attempts < max_attempts
      AND ($4::text[] IS NULL OR job_type = ANY ($4))
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'claimed', 'pending', 'processing', attempts, $2, $1 FROM claimed
)
SELECT JOB_COLUMNS FROM claimed
