-- processing → pending for claims a worker took into its local queue and
-- never started (it stops, pauses, or held them too long): the attempt is
-- not spent, so `attempts` goes back down by one. Each row only through its
-- own claim and only from the worker that holds it (the attempt number will
-- be claimed again: the worker drops the claims from its queue first, so no
-- heartbeat or completion of it can follow). One `handed_back` event each,
-- carrying the attempt handed back, and, when $6, an outbox row so that the
-- job is published again (as after a stale release); a consumer that gives
-- its own message back passes false, or the job would be woken twice.
-- $1 now · $2 job ids · $3 attempts · $4 worker · $5 queue · $6 republish
WITH input AS (
    SELECT * FROM unnest($2::uuid[], $3::int4[]) AS i (id, attempt)
),
back AS (
    UPDATE jobs j
    SET status = 'pending', attempts = j.attempts - 1, run_after = least(j.run_after, $1),
        locked_by = NULL, locked_at = NULL, heartbeat_at = NULL, updated_at = $1
    FROM input i
    WHERE j.id = i.id AND j.status = 'processing' AND j.attempts = i.attempt AND j.locked_by = $4
    RETURNING j.id, i.attempt
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'handed_back', 'processing', 'pending', attempt, $4, $1 FROM back
),
outbox_rows AS (
    INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
    SELECT id, $5,
           jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM $1) * 1000)::bigint),
           $1, $1, $1
    FROM back
    WHERE $6
)
SELECT id FROM back
