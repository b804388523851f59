-- pending → processing for up to $3 due jobs, in claim order: claim_jobs
-- (migration 0010, the SQL API's claim, says how: SKIP LOCKED, NO KEY
-- UPDATE, the fencing token, the local queue's rule).
-- $1 now · $2 worker id · $3 limit · $4 job types or NULL for all · $5 free slots
SELECT JOB_COLUMNS
FROM claim_jobs($2, $3::integer, $4, $5::integer, $1)
ORDER BY priority, run_after, created_at, id
