-- When the next outbox row becomes due (pending or failed), for the relay
-- listener's timer: one end of the `outbox_due` partial index.
SELECT min(next_attempt_at) AS at
FROM outbox
WHERE status IN ('pending', 'failed')
