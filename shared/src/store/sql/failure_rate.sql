-- Jobs that finished since $2, completed and failed for good, from
-- `job_counts` (minute buckets: compaction folds only what is older than an
-- hour). One index range per tenant is not needed: the table is small.
-- $1 tenant or NULL for all · $2 since
SELECT coalesce(sum(entered) FILTER (WHERE status = 'completed'), 0)::bigint AS completed,
       coalesce(sum(entered) FILTER (WHERE status = 'failed'), 0)::bigint AS failed
FROM job_counts
WHERE bucket >= date_trunc('minute', $2::timestamptz) AND ($1::text IS NULL OR tenant_id = $1)
