-- Retention of the dead letter's replay tokens: a token older than the
-- failed jobs' retention guards nothing that is still kept. Up to $2 rows.
-- $1 cutoff · $2 limit
DELETE FROM dead_letter_replays
WHERE ctid IN (SELECT ctid FROM dead_letter_replays WHERE created_at < $1
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING token
