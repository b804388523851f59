-- Outbox rows the relay should publish now (pending or failed, due), for
-- the metrics (`jobline_outbox_due`); served by the `outbox_due` partial
-- index, so it reads only what is due, never the sent history.
-- $1 now
SELECT count(*) AS n
FROM outbox
WHERE status IN ('pending', 'failed') AND next_attempt_at <= $1
