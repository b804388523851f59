-- pending | processing → cancelled: cancel_job (migration 0010). A worker
-- holding the claim learns it at its next heartbeat; its late complete or
-- fail changes nothing.
-- $1 now · $2 job id · $3 tenant or NULL · $4 actor
SELECT JOB_COLUMNS FROM cancel_job($2, $3, $4, $1)
