-- pending | processing → cancelled. A worker holding the claim learns it at
-- its next heartbeat; its late complete or fail changes nothing.
-- $1 now · $2 job id · $3 tenant or NULL · $4 actor
WITH target AS (
    SELECT id, status AS from_status
    FROM jobs
    WHERE id = $2 AND ($3::text IS NULL OR tenant_id = $3)
    FOR UPDATE
),
cancelled AS (
    UPDATE jobs j
    SET status = 'cancelled', completed_at = $1, updated_at = $1,
        locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
    FROM target
    WHERE j.id = target.id AND target.from_status IN ('pending', 'processing')
    RETURNING j.*, target.from_status
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'cancelled', from_status, 'cancelled', attempts, $4, $1 FROM cancelled
)
SELECT JOB_COLUMNS FROM cancelled
