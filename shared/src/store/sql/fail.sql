-- processing → pending (retry after backoff) or failed (the dead letter), only
-- through the current claim (its attempt and its holder). The retry policy (domain/retry.rs) chose $4.
-- The consumer gives its message back to the broker with the backoff as the
-- delay (and the sweeper re-wakes due jobs whose message was lost).
-- $1 now · $2 job id · $3 attempt · $4 'pending' | 'failed' · $5 run_after
-- $6 error code · $7 failure reason · $8 worker
WITH failed AS (
    UPDATE jobs
    SET status = $4::text::job_status,
        run_after = coalesce($5, run_after),
        error_code = $6, failure_reason = $7,
        completed_at = CASE WHEN $4 = 'failed' THEN $1 END,
        updated_at = $1, locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
    WHERE id = $2 AND status = 'processing' AND attempts = $3 AND locked_by = $8
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, detail, at)
    SELECT id, CASE WHEN status = 'failed' THEN 'failed' ELSE 'retry_scheduled' END,
           'processing', status, attempts, $8,
           jsonb_build_object('error_code', error_code, 'message', failure_reason, 'run_after', run_after),
           $1
    FROM failed
)
SELECT JOB_COLUMNS FROM failed
