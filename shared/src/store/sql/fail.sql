-- processing → pending (retry after backoff) or failed (the dead letter), only
-- through the current claim (its attempt and its holder): fail_job (migration
-- 0010). The retry policy (domain/retry.rs) chose $4 and $5; fail_job fails
-- the job anyway when its attempts are spent.
-- The consumer gives its message back to the broker with the backoff as the
-- delay (and the sweeper re-wakes due jobs whose message was lost).
-- $1 now · $2 job id · $3 attempt · $4 'pending' | 'failed' · $5 run_after
-- $6 error code · $7 failure reason · $8 worker
SELECT JOB_COLUMNS FROM fail_job($2, $3, $8, $6, $7, $5, $4 = 'failed', $1)
