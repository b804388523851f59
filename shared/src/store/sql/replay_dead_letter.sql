-- Replays a tenant's dead letter under a replay token, once: the token is
-- recorded first (ON CONFLICT DO NOTHING), and nothing else happens when it
-- was already used. Failed jobs go back to pending with fresh attempts and a
-- new outbox row; dead-lettered outbox rows go back to pending.
-- $1 now · $2 tenant · $3 token · $4 actor · $5 job ids or NULL for all
-- $6 extra attempts · $7 queue · $8 limit
WITH token AS (
    INSERT INTO dead_letter_replays (tenant_id, token, actor, created_at)
    VALUES ($2, $3, $4, $1)
    ON CONFLICT DO NOTHING
    RETURNING token
),
target AS (
    SELECT id
    FROM jobs
    WHERE tenant_id = $2 AND status = 'failed'
      AND ($5::uuid[] IS NULL OR id = ANY ($5))
      AND EXISTS (SELECT 1 FROM token)
    ORDER BY completed_at
    LIMIT $8
    FOR UPDATE
),
replayed AS (
    UPDATE jobs j
    SET status = 'pending', run_after = $1, completed_at = NULL, updated_at = $1,
        max_attempts = j.attempts + $6
    FROM target
    WHERE j.id = target.id AND j.status = 'failed'
    RETURNING j.id, j.attempts
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, detail, at)
    SELECT id, 'replayed', 'failed', 'pending', attempts, $4, jsonb_build_object('token', $3), $1
    FROM replayed
),
messages AS (
    INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
    SELECT id, $7,
           jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM $1) * 1000)::bigint),
           $1, $1, $1
    FROM replayed
),
outbox_replayed AS (
    UPDATE outbox o
    SET status = 'pending', attempts = 0, next_attempt_at = $1, replay_token = $3, updated_at = $1,
        last_error = NULL
    WHERE o.tenant_id = $2 AND o.status = 'dead_letter'
      AND ($5::uuid[] IS NULL OR o.job_id = ANY ($5))
      AND EXISTS (SELECT 1 FROM token)
    RETURNING o.id
)
SELECT (SELECT count(*) FROM replayed)        AS jobs_replayed,
       (SELECT count(*) FROM outbox_replayed) AS outbox_replayed,
       NOT EXISTS (SELECT 1 FROM token)       AS already_used
