-- processing without a heartbeat since $2 → pending (attempts left) or failed
-- (spent), error code HEARTBEAT_TIMEOUT, up to $3 jobs per call. SKIP LOCKED
-- and the status re-check make parallel sweepers harmless. The candidates
-- come from `processing_jobs` (migration 0007: no index of processing jobs).
-- $1 now · $2 cutoff (now - timeout) · $3 limit · $4 queue · $5 actor
WITH stale AS (
    SELECT j.id, j.locked_by AS stale_worker, j.heartbeat_at AS last_heartbeat
    FROM jobs j
    WHERE j.id IN (SELECT id FROM processing_jobs WHERE heartbeat_at < $2)
      AND j.status = 'processing' AND j.heartbeat_at < $2
    ORDER BY j.heartbeat_at
    LIMIT $3
    FOR NO KEY UPDATE OF j SKIP LOCKED -- not skipped for an outbox row being written (see claim_batch.sql)
),
released AS (
    UPDATE jobs j
    SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed'::job_status
                      ELSE 'pending'::job_status END,
        completed_at = CASE WHEN j.attempts >= j.max_attempts THEN $1 END,
        run_after = $1,
        error_code = 'HEARTBEAT_TIMEOUT',
        -- No worker name here: tenants read this text (the worker is in the
        -- event's detail, shown to operators).
        failure_reason = 'no heartbeat since ' || stale.last_heartbeat,
        locked_by = NULL, locked_at = NULL, heartbeat_at = NULL, updated_at = $1
    FROM stale
    WHERE j.id = stale.id AND j.status = 'processing'
    RETURNING j.id, j.status, j.attempts, stale.stale_worker
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, detail, at)
    SELECT id, 'heartbeat_released', 'processing', status, attempts, $5,
           jsonb_build_object('error_code', 'HEARTBEAT_TIMEOUT', 'worker', stale_worker), $1
    FROM released
),
outbox_rows AS (
    INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
    SELECT id, $4,
           jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM $1) * 1000)::bigint),
           $1, $1, $1
    FROM released
    WHERE status = 'pending'
)
SELECT id, status::text AS status, stale_worker FROM released
