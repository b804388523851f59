-- A publish attempt failed: count it, keep the error, and schedule the next
-- try with backoff; after $4 attempts the row goes to the dead letter.
-- $1 now · $2 outbox ids · $3 error · $4 max attempts · $5 backoff base seconds · $6 cap seconds
UPDATE outbox
SET attempts = attempts + 1,
    last_error = left($3, 2000),
    status = CASE WHEN attempts + 1 >= $4 THEN 'dead_letter'::outbox_status ELSE 'failed'::outbox_status END,
    next_attempt_at = $1 + make_interval(secs => least($6, $5 * power(2, attempts))),
    updated_at = $1
WHERE id = ANY ($2::int8[]) AND status IN ('pending', 'failed')
RETURNING id, status::text AS status
