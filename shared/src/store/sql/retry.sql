-- failed | cancelled → pending (an operator's retry or a dead-letter replay),
-- with $5 fresh attempts on top of those spent (attempts never goes back: it
-- is the fencing token; only a claim handed back unstarted, hand_back.sql,
-- takes back the attempt it never made), and a new message to publish.
-- $1 now · $2 job id · $3 tenant or NULL · $4 actor · $5 extra attempts
-- $6 event ('retried' | 'replayed') · $7 queue · $8 earliest relay time
WITH target AS (
    SELECT id, status AS from_status
    FROM jobs
    WHERE id = $2 AND ($3::text IS NULL OR tenant_id = $3)
    FOR UPDATE
),
retried AS (
    UPDATE jobs j
    SET status = 'pending', run_after = $1, completed_at = NULL, updated_at = $1,
        max_attempts = j.attempts + $5
    FROM target
    WHERE j.id = target.id AND target.from_status IN ('failed', 'cancelled')
    RETURNING j.*, target.from_status
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, $6, from_status, 'pending', attempts, $4, $1 FROM retried
),
outbox_rows AS (
    INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
    SELECT id, $7,
           jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM $1) * 1000)::bigint),
           $8, $1, $1
    FROM retried
    RETURNING id AS outbox_id, job_id AS outbox_job_id
)
SELECT JOB_COLUMNS, outbox_id FROM retried JOIN outbox_rows ON outbox_job_id = id
