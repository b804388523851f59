-- jobline's own claim and complete statements (shared/src/store/sql/
-- claim_batch.sql and complete.sql, with their `job_events` rows) on the real
-- schema, one job per transaction: what the worker's statements cost at the
-- database, without the worker. scripts/bench fills `jobs` with
-- `jobline bench enqueue` first (untimed) and runs this with -t so the clients
-- claim exactly the backlog.
WITH picked AS (
    SELECT id
    FROM jobs
    WHERE status = 'pending'
      AND run_after <= now()
      AND attempts < max_attempts
    ORDER BY priority, run_after, created_at, id
    LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE jobs j
    SET status = 'processing', attempts = j.attempts + 1,
        locked_by = 'pgbench-' || :client_id, locked_at = now(), heartbeat_at = now(),
        started_at = now(), updated_at = now()
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'claimed', 'pending', 'processing', attempts, 'pgbench-' || :client_id, now() FROM claimed
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM claimed
\gset

WITH done AS (
    UPDATE jobs
    SET status = 'completed', result = NULL, result_uri = NULL, completed_at = now(), updated_at = now(),
        locked_by = NULL, locked_at = NULL, heartbeat_at = NULL,
        failure_reason = NULL, error_code = NULL
    WHERE id = ANY (:ids::uuid[]) AND status = 'processing'
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'completed', 'processing', 'completed', attempts, 'pgbench', now() FROM done
)
SELECT count(*) FROM done;
