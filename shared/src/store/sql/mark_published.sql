-- Outbox rows published: mark them sent and write each job's `published`
-- event, for many publishers at once (each row with its publisher as the
-- actor). Rows already sent (by another publisher) are left alone, so a
-- duplicate publish never writes a second event. Returns the rows marked.
-- $1 now · $2 outbox ids · $3 actors (one per id)
WITH input AS (
    SELECT * FROM unnest($2::int8[], $3::text[]) AS i (id, actor)
),
sent AS (
    UPDATE outbox o
    SET status = 'sent', sent_at = $1, updated_at = $1, attempts = o.attempts + 1, last_error = NULL
    FROM input i
    WHERE o.id = i.id AND o.status IN ('pending', 'failed')
    RETURNING o.id, o.job_id, o.queue, i.actor
),
events AS (
    INSERT INTO job_events (job_id, event, actor, detail, at)
    SELECT job_id, 'published', actor, jsonb_build_object('queue', queue, 'outbox_id', id), $1
    FROM sent
)
SELECT id FROM sent
