-- processing → completed, only through the current claim.
-- $1 now · $2 job id · $3 attempt (fencing token) · $4 result · $5 result uri · $6 worker
WITH done AS (
    UPDATE jobs
    SET status = 'completed', result = $4, result_uri = $5, completed_at = $1, updated_at = $1,
        locked_by = NULL, locked_at = NULL, heartbeat_at = NULL,
        failure_reason = NULL, error_code = NULL
    WHERE id = $2 AND status = 'processing' AND attempts = $3
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'completed', 'processing', 'completed', attempts, $6, $1 FROM done
)
SELECT JOB_COLUMNS FROM done
