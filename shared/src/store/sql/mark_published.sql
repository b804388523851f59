-- Outbox rows published: mark them sent and write each job's `published`
-- event. Rows already sent (by another publisher) are left alone, so a
-- duplicate publish never writes a second event.
-- $1 now · $2 outbox ids · $3 actor
WITH sent AS (
    UPDATE outbox
    SET status = 'sent', sent_at = $1, updated_at = $1, attempts = attempts + 1, last_error = NULL
    WHERE id = ANY ($2::int8[]) AND status IN ('pending', 'failed')
    RETURNING id, job_id, queue
)
INSERT INTO job_events (job_id, event, actor, detail, at)
SELECT job_id, 'published', $3, jsonb_build_object('queue', queue, 'outbox_id', id), $1
FROM sent
RETURNING job_id
