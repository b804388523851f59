-- Draining a queued backlog, 1 job(s) per transaction, two transactions
-- (autocommit): claim due pending jobs in claim order with FOR UPDATE SKIP
-- LOCKED (the ids come back in :ids), then complete them. scripts/bench fills
-- limit_bench.jobs with the backlog first (untimed) and runs this with -t so
-- the clients claim exactly the backlog; jobs/s counts completed rows.
WITH picked AS (
    SELECT id FROM limit_bench.jobs
    WHERE status = 'pending' AND run_after <= now() AND attempts < max_attempts
    ORDER BY priority, run_after, created_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE limit_bench.jobs j
    SET status = 'processing', attempts = j.attempts + 1, locked_by = 'pgbench-' || :client_id,
        locked_at = now(), heartbeat_at = now(), started_at = now(), updated_at = now()
    FROM picked WHERE j.id = picked.id
    RETURNING j.id
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM claimed
\gset

UPDATE limit_bench.jobs
SET status = 'completed', result = '{}'::jsonb, completed_at = now(), updated_at = now(),
    locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
WHERE id = ANY (:ids::uuid[]) AND status = 'processing';
