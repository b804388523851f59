-- A publish attempt failed: count it, keep the error, and schedule the next
-- try with backoff; after $4 attempts the row goes to the dead letter, with
-- its job's tenant (the dead letter's index by tenant, migration 0011).
-- $1 now · $2 outbox ids · $3 error · $4 max attempts · $5 backoff base seconds · $6 cap seconds
UPDATE outbox o
SET attempts = o.attempts + 1,
    last_error = left($3, 2000),
    status = CASE WHEN o.attempts + 1 >= $4 THEN 'dead_letter'::outbox_status ELSE 'failed'::outbox_status END,
    tenant_id = CASE WHEN o.attempts + 1 >= $4 THEN j.tenant_id ELSE o.tenant_id END,
    next_attempt_at = $1 + make_interval(secs => least($6, $5 * power(2, o.attempts))),
    updated_at = $1
FROM jobs j
WHERE o.id = ANY ($2::int8[]) AND o.status IN ('pending', 'failed') AND j.id = o.job_id
RETURNING o.id, o.status::text AS status
