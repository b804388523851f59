-- pending → processing for the jobs some queue messages point at (a batch a
-- consumer received together: an SQS event's records, a broker receive),
-- each only if it is due (and of one of the worker's types, when it names
-- them): claim_jobs_by_id (migration 0010). A job not returned was not
-- claimable; the caller reads those jobs (jobs_by_ids.sql) to say why. An
-- id given twice is claimed once.
-- $1 now · $2 worker id · $3 job ids · $4 job types or NULL for all
SELECT JOB_COLUMNS FROM claim_jobs_by_id($2, $3, $4, $1)
